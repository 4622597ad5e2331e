"""A campaign's CSV, parsed as it streams in: one row per contact, hostile input kept harmless.

Sans-I/O: :meth:`CampaignCsv.feed` takes bytes as they arrive (any chunking) and returns the contacts
they complete; :meth:`finish` flushes the last row. The first column is the destination (E.164 or a
SIP URI); further columns travel with the row as variables. UTF-8 with or without a BOM, CRLF or
LF, RFC 4180 quoting (a quoted field may hold commas, quotes and line breaks). A first row whose
first cell is not a destination but a name (``phone``, ``to``, ...) is the header and names the
variables. Invalid rows (not a destination, empty, over-long, control characters, not UTF-8) are
skipped and counted by line number, never echoed raw; duplicate destinations are dialled once unless
asked otherwise. Caps on bytes and rows end parsing with :class:`CsvRejected`, whose message says
which cap.

Records are cut where a line break falls outside quotes (an even count of ``"`` so far), and a
chunk's records then go through the standard library's C csv reader together: streaming, without a
character-by-character loop in Python (about 5 µs a row: a million-row file is a few seconds of CPU,
so the loader feeds small chunks and yields to the event loop between them).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass, field

from trunkline.calls.destinations import is_valid_destination

MAX_BYTES = 64 << 20
MAX_ROWS = 1_000_000
MAX_FIELD_CHARS = 1024
MAX_VARIABLES = 64
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,63}")
_BOM = "\ufeff"


class CsvRejected(ValueError):
    """The file as a whole cannot be used (a cap exceeded, or no valid row at all)."""


@dataclass(frozen=True, slots=True)
class Contact:
    row: int  # 1-based line number of the record's first line, as a spreadsheet shows it
    destination: str
    variables: dict[str, str]


@dataclass
class Skipped:
    """Rows left out, by reason, with the first few line numbers of each (for the campaign's report)."""

    counts: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, line: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        examples = self.lines.setdefault(reason, [])
        if len(examples) < 10:
            examples.append(line)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class CampaignCsv:
    def __init__(self, *, max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS, dedupe: bool = True) -> None:
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.dedupe = dedupe
        self.bytes_seen = 0
        self.rows_seen = 0
        self.header: list[str] | None = None
        self.skipped = Skipped()
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""  # text of a record not yet complete
        self._pending_line = 1
        self._pending_quotes = 0
        self._line = 1  # line number of the next line to start
        self._first = True
        self._seen: set[str] = set()
        self._names = _variable_names([])  # a variable's name by column, after the destination's

    def feed(self, data: bytes) -> list[Contact]:
        self.bytes_seen += len(data)
        if self.bytes_seen > self.max_bytes:
            raise CsvRejected(f"larger than {self.max_bytes} bytes")
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise CsvRejected(f"not UTF-8 text (byte {self.bytes_seen - len(data) + exc.start})") from None
        return self._records(text, final=False)

    def finish(self) -> list[Contact]:
        """The last record (a file need not end with a line break)."""
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvRejected("not UTF-8 text (it ends inside a character)") from None
        return self._records(text, final=True)

    def _records(self, text: str, final: bool) -> list[Contact]:
        if self._first and text:
            text = text.removeprefix(_BOM)
        lines = text.split("\n")
        tail = lines.pop()  # after the last line break: the start of a line still arriving
        records: list[tuple[int, str]] = []
        pending, quotes, first_line, line = self._pending, self._pending_quotes, self._pending_line, self._line
        for piece in lines:  # ``pending`` never ends in a line break: a partial line continues here
            line += 1
            quotes += piece.count('"')
            pending += piece
            if not quotes % 2:  # the line break is outside quotes: the record is whole
                records.append((first_line, pending))
                pending, quotes, first_line = "", 0, line
            elif len(pending) > MAX_FIELD_CHARS * MAX_VARIABLES:
                self.skipped.add("unterminated quote", first_line)
                pending, quotes, first_line = "", 0, line
            else:
                pending += "\n"  # inside quotes: the line break belongs to the field
        quotes += tail.count('"')
        pending += tail
        if final and pending:
            records.append((first_line, pending))
            pending, quotes = "", 0
        self._pending, self._pending_quotes, self._pending_line, self._line = pending, quotes, first_line, line
        return self._contacts(records)

    def _contacts(self, records: list[tuple[int, str]]) -> list[Contact]:
        records = [(line, text.removesuffix("\r")) for line, text in records if text.strip()]
        if not records:
            return []
        contacts: list[Contact] = []
        valid = is_valid_destination
        rows = csv.reader([text for _, text in records])
        for (line, text), cells in zip(records, rows):
            destination = cells[0].strip() if cells else ""
            if self._first:
                self._first = False
                if not valid(destination) and all(_HEADER_NAME.fullmatch(c.strip()) for c in cells):
                    self.header = [c.strip() for c in cells]
                    self._names = _variable_names(self.header)
                    continue
            self.rows_seen += 1
            if self.rows_seen > self.max_rows:
                raise CsvRejected(f"more than {self.max_rows} rows")
            if not destination:
                reason = "empty destination"
            elif len(text) > MAX_FIELD_CHARS and max(map(len, cells)) > MAX_FIELD_CHARS:
                reason = "over-long field"
            elif _CONTROL.search(text):
                reason = "control characters"
            elif not valid(destination):
                reason = "not a destination"
            elif self.dedupe and destination in self._seen:
                reason = "duplicate destination"
            else:
                if self.dedupe:
                    self._seen.add(destination)
                contacts.append(Contact(line, destination, dict(zip(self._names, cells[1:]))))
                continue
            self.skipped.add(reason, line)
        return contacts


def _variable_names(header: list[str]) -> list[str]:
    """Names for columns 2.. (at most MAX_VARIABLES): the header's, or ``columnN`` where it has none."""
    return [header[i] if i < len(header) and header[i] else f"column{i + 1}" for i in range(1, MAX_VARIABLES + 1)]
