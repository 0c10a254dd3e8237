"""What a file is before any reader touches it: format, CSV dialect, header, ragged rows.

Shared by :mod:`alliance.io` and :mod:`alliance._stream` (so neither imports the other).
Every refusal is a :class:`ReadError` whose message names the problem and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

from alliance._checks import close_matches

#: File suffix -> format name.
FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".xlsx": "excel",
    ".xls": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".sav": "spss",
    ".zsav": "spss",
    ".dta": "stata",
}

#: Columns always read as text, exactly as written.
ID_COLUMNS = ("client", "therapist", "site")

#: Cells read as missing in CSV/TSV files (``nan`` and ``inf`` are not: they are reported).
NA_VALUES = ["", "NA", "N/A", "n/a", "#N/A", "NULL", "null"]

_SEPARATORS = (",", ";", "\t", "|")
_MAGIC = [
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one): save it as .xlsx, or unzip it"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file: save it as .xlsx or .csv"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PAR1", "a Parquet file: name it .parquet"),
    (b"$FL2", "an SPSS file: name it .sav"),
    (b"$FL3", "an SPSS file: name it .zsav"),
    (b"<stata_dta>", "a Stata file: name it .dta"),
    (b"\x1f\x8b", "a gzip file: name it .csv.gz"),
]


class ReadError(ValueError):
    """A file cannot be read as a table (not a table, bad encoding, ragged, duplicated names)."""


def format_of(path: Path) -> str:
    """The format name of a file from its suffix."""
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    known = ", ".join(sorted(FORMATS))
    raise ValueError(
        f"cannot tell the format of {path.name!r} from its name; use one of the suffixes "
        f"{known} (rename the file or convert it, e.g. save Excel sheets as .xlsx)"
    )


def require_file(path: Path) -> None:
    """A FileNotFoundError naming files with close names when ``path`` is missing."""
    if path.exists():
        if path.is_dir():
            raise ReadError(f"{path} is a folder, not a file; pass the file inside it")
        return
    near = (
        close_matches(path.name, [p.name for p in path.parent.glob("*")])
        if path.parent.exists()
        else []
    )
    tip = f" Files with close names: {', '.join(near)}." if near else ""
    raise FileNotFoundError(f"no file at {path}.{tip}")


def head_bytes(path: Path, size: int = 2**20) -> bytes:
    """The first ``size`` bytes (decompressed for .gz)."""
    with open(path, "rb") as raw:
        start = raw.read(2)
    if start == b"\x1f\x8b" and path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as handle:
            return handle.read(size)
    with open(path, "rb") as handle:
        return handle.read(size)


def check_binary(path: Path, fmt: str) -> None:
    """Refuse a file whose bytes are not those its suffix promises."""
    head = head_bytes(path, 4096) if fmt in ("csv", "tsv") else path.open("rb").read(16)
    if path.stat().st_size == 0:
        raise ReadError(
            f"{path.name} is empty (0 bytes): export the table again with a header row and "
            "one row per session"
        )
    if fmt in ("csv", "tsv"):
        for magic, what in _MAGIC:
            if head.startswith(magic):
                raise ReadError(f"{path.name} is not a text table but {what}")
        if b"\x00" in head:
            raise ReadError(
                f"{path.name} is not a text table (it holds binary bytes, or is UTF-16): "
                "save it from your program as CSV (UTF-8)"
            )
    elif fmt == "excel" and not head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise ReadError(f"{path.name} is not an Excel workbook: save it again as .xlsx")
    elif fmt == "parquet" and not head.startswith(b"PAR1"):
        raise ReadError(f"{path.name} is not a Parquet file: write it again as Parquet")


@dataclass
class Dialect:
    """How a CSV/TSV file is written."""

    sep: str
    decimal: str
    encoding: str


def _decode(raw: bytes, encoding: str | None, name: str) -> tuple[str, str]:
    if encoding is not None:
        try:
            return raw.decode(encoding), encoding
        except LookupError:
            raise ValueError(
                f"unknown encoding {encoding!r}: use e.g. utf-8, cp1252 or latin-1"
            ) from None
        except UnicodeDecodeError as err:
            raise ReadError(
                f"{name} is not valid {encoding} (byte {err.start}); pass the file's real "
                "encoding (encoding='cp1252' / --encoding cp1252), or leave it out to detect it"
            ) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        if err.start > len(raw) - 4:  # a character cut by the sample's end
            return raw[: err.start].decode("utf-8"), "utf-8"
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def sniff(
    path: Path,
    fmt: str,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
) -> Dialect:
    """Separator, decimal mark and encoding of a CSV/TSV file (given values are kept)."""
    if sep is not None and (len(sep) != 1 or sep in "\"'\n"):
        raise ValueError(f"sep must be one character such as ',' ';' '|' or a tab, got {sep!r}")
    if decimal is not None and decimal not in (".", ","):
        raise ValueError(f"decimal must be '.' or ',', got {decimal!r}")
    text, enc = _decode(head_bytes(path), encoding, path.name)
    lines = [ln for ln in text.splitlines()[:200] if ln.strip()]
    if sep is None:
        if fmt == "tsv":
            sep = "\t"
        else:
            sep = ","
            best = 1
            for cand in _SEPARATORS:
                rows = list(csv.reader(io.StringIO("\n".join(lines[:50])), delimiter=cand))
                if not rows:
                    continue
                width = len(rows[0])
                same = sum(len(r) == width for r in rows) / len(rows)
                if width > best and same >= 0.5:
                    best, sep = width, cand
    if decimal is None:
        decimal = "."
        if sep != ",":
            cells = [
                c for r in csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=sep) for c in r
            ]
            comma = sum(bool(re.fullmatch(r"-?\d+,\d+", c.strip())) for c in cells)
            point = sum(bool(re.fullmatch(r"-?\d+\.\d+", c.strip())) for c in cells)
            if comma > 0 and point == 0:
                decimal = ","
    return Dialect(sep, decimal, enc)


def open_text(path: Path, encoding: str):
    """The file as text (decompressed for .gz)."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def check_header(names: list[str], name: str) -> None:
    """Refuse duplicated column names, naming their positions (1 = first column)."""
    seen: dict[str, list[int]] = {}
    for i, col in enumerate(names, start=1):
        seen.setdefault(str(col), []).append(i)
    dups = {c: pos for c, pos in seen.items() if len(pos) > 1}
    if dups:
        shown = "; ".join(
            f"{c!r} at columns {', '.join(map(str, pos))}" for c, pos in list(dups.items())[:5]
        )
        raise ReadError(
            f"{name} has duplicated column names ({shown}); give every column its own name "
            "in the source file (e.g. wai_sr and wai_sr_therapist)"
        )


def ragged_lines(path: Path, dialect: Dialect, limit: int = 5) -> tuple[int, list[tuple[int, int]]]:
    """The header's width and the first ``limit`` rows of another width, read as a stream.

    For files too big for :func:`scan_csv`, which reads the whole text: only called
    once a reader has found the rows uneven, to name their lines.
    """
    found: list[tuple[int, int]] = []
    width = 0
    with (
        contextlib.suppress(csv.Error, UnicodeDecodeError),
        open_text(path, dialect.encoding) as handle,
    ):
        reader = csv.reader(handle, delimiter=dialect.sep)
        width = len(next(reader, None) or [])
        for row in reader:
            if not row or (len(row) > width and not any(c.strip() for c in row[width:])):
                continue
            if len(row) != width:
                found.append((reader.line_num, len(row)))
                if len(found) >= limit:
                    break
    return width, found


def ragged_message(name: str, width: int, sep: str, ragged: list[tuple[int, int]]) -> str:
    """The message for rows with another number of fields than the header."""
    shown = ", ".join(f"line {ln} ({n} fields)" for ln, n in ragged[:5])
    more = f" and {len(ragged) - 5} more" if len(ragged) > 5 else ""
    label = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}.get(sep, repr(sep))
    return (
        f"{name} has rows with a different number of fields than its header "
        f"({width}, separator {label}): {shown}{more}. Fix those lines (a separator inside "
        "a value needs quotes), or pass the right separator (sep=... / --sep)"
    )


def scan_csv(path: Path, dialect: Dialect) -> list[str]:
    """Header names of a CSV file; refuses duplicated names, ragged rows and bad encoding."""
    ragged: list[tuple[int, int]] = []
    try:
        with open_text(path, dialect.encoding) as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise ReadError(
            f"{path.name} is not valid {dialect.encoding} beyond its first part (byte "
            f"{err.start} of a later chunk); pass its encoding, e.g. encoding='cp1252' "
            "(--encoding cp1252)"
        ) from None
    if '"' not in text and "\r" not in text:  # no quoting: count separators per line
        lines = text.split("\n")
        header = lines[0].split(dialect.sep) if lines and lines[0].strip() else None
        if header is None:
            raise ReadError(f"{path.name} has no header row: it is empty")
        width = len(header) - 1
        sep = dialect.sep
        for number, line in enumerate(lines[1:], start=2):
            n = line.count(sep)
            if n != width and line.strip():
                cells = line.split(sep)
                if n > width and not any(c.strip() for c in cells[width + 1 :]):
                    continue
                ragged.append((number, n + 1))
        width += 1
    else:
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.sep)
            header = next(reader, None)
            if header is None:
                raise ReadError(f"{path.name} has no header row: it is empty")
            width = len(header)
            for row in reader:
                if not row or (len(row) > width and not any(c.strip() for c in row[width:])):
                    continue
                if len(row) != width:
                    ragged.append((reader.line_num, len(row)))
        except csv.Error as err:
            raise ReadError(
                f"{path.name} cannot be read as CSV ({err}); save it again as CSV"
            ) from None
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    check_header(header, path.name)
    if ragged:
        raise ReadError(ragged_message(path.name, width, dialect.sep, ragged))
    return header
