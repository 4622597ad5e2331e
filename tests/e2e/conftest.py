"""Fixtures shared by the end-to-end tests."""

import pytest


@pytest.fixture
async def peers():
    """SIPp processes started by a test, always stopped and cleaned up."""
    running = []

    async def start(peer):
        running.append(peer)
        await peer.astart()
        await peer.await_ready()
        return peer

    yield start
    for peer in running:
        peer.kill()
        peer.cleanup()
