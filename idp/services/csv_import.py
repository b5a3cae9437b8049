"""Reading CSV files for the bulk imports: decoding, the header, and each record's line number.

Shared by the GIAS organisation import (:mod:`idp.services.organisation_import`) and the
Authentix staff import (:mod:`idp.services.authentix_import`, :mod:`.authentix_csv`), which
take files from the same kind of source (a spreadsheet saved as CSV, usually cp1252, sometimes
UTF-8 with a BOM) and must treat them alike: a file that cannot be read at all is an
:class:`ImportFileError` raised before anything is written; a bad record is the caller's row
error, with the line it starts on, and never stops the rest.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TextIO

ENCODINGS = ("utf-8-sig", "cp1252")  # tried in order; latin-1 (never fails) is the last resort
ZIP_MAGIC = b"PK\x03\x04"

ProgressCallback = Callable[[int, int | None], None]
"""Called with (rows read so far, estimated total rows or None when unknown); the last call
has both equal, since the estimate (lines in the file) can over-count multi-line records."""

Source = str | os.PathLike[str] | TextIO
"""A file by path (decoded here) or an already-decoded text stream."""


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, not a CSV, required columns missing)."""


class RejectedRows:
    """For an import's result: its ``errors`` (one per rejected row) counted as ``rejected``,
    and the ", N rejected" its summary adds when there are any."""

    __slots__ = ()
    errors: Sequence[object]

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def rejected_note(self) -> str:
        return f", {self.rejected} rejected" if self.rejected else ""


def sniff_encoding(path: Path) -> tuple[str, int]:
    """Return the first encoding that decodes the whole file, and its number of lines.

    Decoding is checked over the whole file, not a sample, because one cp1252 "é" on line
    40,000 would otherwise abort an import that had already written 39,999 rows. One pass
    with incremental decoders costs a fraction of a second for the full register.
    """
    decoders = {name: codecs.getincrementaldecoder(name)() for name in ENCODINGS}
    lines = 0
    last = b""
    with path.open("rb") as f:
        head = f.read(4)
        if head.startswith(ZIP_MAGIC):
            raise ImportFileError(f"{path} is a zip archive: extract the CSV from it first")
        f.seek(0)
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            for name, decoder in list(decoders.items()):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    del decoders[name]
    for name, decoder in list(decoders.items()):
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            del decoders[name]
    if last and last != b"\n":
        lines += 1  # the last line has no newline but is still a line
    return next(iter(decoders), "latin-1"), lines


def decode(data: bytes) -> tuple[str, str]:
    """Decode an uploaded file as :func:`sniff_encoding` decides for a path: UTF-8 (with or
    without BOM), else cp1252, else latin-1. Returns (text, encoding)."""
    if data.startswith(ZIP_MAGIC):
        raise ImportFileError("this is a zip archive: extract the CSV file from it first")
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


@contextmanager
def open_source(source: Source) -> Iterator[tuple[TextIO, int | None, str | None]]:
    """Yield (text stream, estimated data rows, encoding) and close what we opened.

    A path is decoded with :func:`sniff_encoding`; a stream is used as it is (its encoding is
    not ours to know), and its rows are counted first when it can be rewound, so a progress
    bar has a length.
    """
    if not isinstance(source, str | os.PathLike):
        total = None
        if source.seekable():
            start = source.tell()
            total = max(sum(1 for _ in source) - 1, 0)
            source.seek(start)
        yield source, total, None
        return
    path = Path(source)
    try:
        encoding, lines = sniff_encoding(path)
        stream = path.open(encoding=encoding, newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with stream:
        yield stream, max(lines - 1, 0), encoding


def source_name(source: Source) -> str:
    """What the audit event calls the file: its name, or the stream's name."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    return str(getattr(source, "name", "<stream>"))


def read_header(reader: Iterator[list[str]]) -> list[str]:
    """The header record, each name without a BOM that survived decoding and without spaces
    around it (names are not otherwise changed: matching them is the caller's job)."""
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ImportFileError(f"the header row cannot be read: {exc}") from exc
    # A BOM can survive as "\ufeff" (utf-8 read as utf-8) or "ï»¿" (utf-8 read as cp1252).
    return [name.lstrip("\ufeff").removeprefix("ï»¿").strip() for name in header]


class RecordReader(Protocol):
    """What :func:`csv.reader` returns, as far as :func:`records` needs it."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def records(reader: RecordReader) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """Each non-blank record after the header with the line it starts on (the header is line
    1): (line, fields), or (line, the :class:`csv.Error`) for a record that cannot be read,
    after which reading goes on. ``reader.line_num`` is the record's last line meanwhile
    (a quoted field can span lines)."""
    previous_end = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield previous_end + 1, exc
            previous_end = reader.line_num
            continue
        line, previous_end = previous_end + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank lines and Excel's trailing ",,,," rows are not data
        yield line, fields
