"""Port pairs from a range: bound, skipped when taken, recycled, and a clear error when exhausted."""

from __future__ import annotations

import socket

import pytest

from tests.media_engine.conftest import HOST, random_pool
from trunkline.media_engine.ports import PortPoolExhausted, RtpPortPool


def test_hands_out_bound_even_ports_with_rtcp_neighbour():
    pool = random_pool(10)
    lease = pool.acquire()
    try:
        assert lease.port % 2 == 0
        assert lease.rtp_socket.getsockname() == (HOST, lease.port)
        assert lease.rtcp_socket.getsockname() == (HOST, lease.port + 1)
        assert pool.leased == 1 and pool.capacity == 5
    finally:
        lease.release()
    assert pool.leased == 0


def test_skips_ports_another_socket_holds():
    pool = random_pool(6)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((HOST, pool.low + 1))  # the RTCP half of the first pair
    try:
        lease = pool.acquire()
        assert lease.port == pool.low + 2
        lease.release()
    finally:
        blocker.close()


def test_exhaustion_is_a_clear_error_and_release_recycles_last():
    pool = random_pool(4)
    first, second = pool.acquire(), pool.acquire()
    with pytest.raises(PortPoolExhausted, match=f"{pool.low}-{pool.high}"):
        pool.acquire()
    first.release()
    first.release()  # idempotent
    assert first.rtp_socket.fileno() == -1
    third = pool.acquire()
    assert third.port == first.port
    second.release()
    third.release()


def test_freed_ports_go_to_the_back_of_the_queue():
    pool = random_pool(8)
    first = pool.acquire()
    first.release()
    second = pool.acquire()
    assert second.port != first.port
    second.release()


def test_rejects_a_range_without_a_pair():
    with pytest.raises(ValueError):
        RtpPortPool(HOST, 30001, 30002)
