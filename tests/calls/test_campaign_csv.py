"""Campaign CSVs as they stream in: the same contacts however the bytes are cut, RFC 4180 quoting,
headers, and hostile input skipped or refused with a reason, never dialled."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.calls.campaign_csv import CampaignCsv, Contact, CsvRejected

SAMPLE = (
    "\ufeffphone,name,note\r\n"
    "+15550001111,Ada,\"first, best\"\r\n"
    "\r\n"
    "sip:bob@carrier.example,Bob,\"says \"\"hi\"\"\nand bye\"\r\n"
    "5550002222,Eve,too short\r\n"
    "+15550001111,Ada again,duplicate\r\n"
    "=cmd|' /C calc'!A0,Mallory,formula\r\n"
    "+15550003333,\"Ctl\x07\",bell\r\n"
    "+15550004444"
).encode()


def parse(data: bytes, chunk: int = 1 << 16, **options) -> tuple[list[Contact], CampaignCsv]:
    parser = CampaignCsv(**options)
    contacts = []
    for start in range(0, len(data), chunk):
        contacts += parser.feed(data[start:start + chunk])
    return contacts + parser.finish(), parser


def test_rows_header_quoting_and_what_is_skipped_with_line_numbers():
    contacts, parser = parse(SAMPLE)
    assert parser.header == ["phone", "name", "note"]
    assert contacts == [
        Contact(2, "+15550001111", {"name": "Ada", "note": "first, best"}),
        Contact(4, "sip:bob@carrier.example", {"name": "Bob", "note": 'says "hi"\nand bye'}),
        Contact(10, "+15550004444", {}),
    ]
    assert parser.skipped.counts == {"not a destination": 2, "duplicate destination": 1, "control characters": 1}
    assert parser.skipped.lines["not a destination"] == [6, 8]


def test_duplicates_can_be_kept():
    contacts, _ = parse(b"+15550001111\n+15550001111\n", dedupe=False)
    assert [c.row for c in contacts] == [1, 2]


def test_no_header_means_numbered_variables():
    contacts, parser = parse(b"+15550001111,Ada,VIP\n")
    assert parser.header is None and contacts[0].variables == {"column2": "Ada", "column3": "VIP"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(SAMPLE) - 1), max_size=12))
def test_the_same_contacts_however_the_bytes_arrive(cuts):
    expected, _ = parse(SAMPLE)
    points = [0, *sorted(set(cuts)), len(SAMPLE)]
    parser = CampaignCsv()
    contacts = []
    for a, b in zip(points, points[1:]):
        contacts += parser.feed(SAMPLE[a:b])
    assert contacts + parser.finish() == expected


@pytest.mark.parametrize("data, options, problem", [
    (b"+15550001111\n" * 100, {"max_bytes": 1000}, "larger than 1000 bytes"),
    (b"".join(b"+1555000%04d\n" % i for i in range(50)), {"max_rows": 10}, "more than 10 rows"),
    (b"+15550001111\n\xff\xfe\x00garbage", {}, "not UTF-8 text"),
    (os.urandom(64) + b"\xff", {}, "not UTF-8 text"),
])
def test_caps_and_binary_garbage_refuse_the_file(data, options, problem):
    with pytest.raises(CsvRejected, match=problem):
        parse(data, **options)


def test_an_unterminated_quote_costs_its_rows_not_the_file():
    data = b'+15550001111,"never closed\n' + b"x" * 70_000 + b"\n+15550002222\n"
    contacts, parser = parse(data, chunk=4096)
    assert parser.skipped.counts == {"unterminated quote": 1} and parser.skipped.lines["unterminated quote"] == [1]
    assert contacts == [Contact(3, "+15550002222", {})]
