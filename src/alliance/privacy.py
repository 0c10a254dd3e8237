"""Privacy helpers for tables and reports meant for sharing."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import html
import io
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from alliance._checks import require_columns

__all__ = [
    "MIN_CELL",
    "Identifiers",
    "find_identifiers",
    "identifier_values",
    "pseudonymize",
    "suppress_small_cells",
]

#: Cells describing fewer clients than this are suppressed in shared tables.
MIN_CELL = 5


def suppress_small_cells(
    table: pd.DataFrame, count: str = "n_clients", *, min_count: int = MIN_CELL
) -> pd.DataFrame:
    """Blank every value in rows that describe fewer than ``min_count`` clients.

    Parameters
    ----------
    table : pandas.DataFrame
        A summary table with a column counting clients per row.
    count : str, default "n_clients"
        That column.
    min_count : int, default 5
        Rows below this count are suppressed; their count reads ``"<5"``.

    Returns
    -------
    pandas.DataFrame
        A copy; suppressed values are missing and the count column is text.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.privacy import suppress_small_cells
    >>> t = pd.DataFrame({"site": ["A", "B"], "n_clients": [40, 3], "mean": [3.9, 4.4]})
    >>> suppress_small_cells(t)
      site n_clients  mean
    0    A        40   3.9
    1    B        <5   NaN
    """
    require_columns(table, "table", count=count)
    # a count already suppressed ("<5") is text; it stays as it is (idempotent)
    small = pd.to_numeric(table[count], errors="coerce") < min_count
    out = table.copy()
    if not small.any():
        return out
    others = [c for c in out.columns if c != count and pd.api.types.is_numeric_dtype(out[c])]
    out[others] = out[others].astype(float)
    out.loc[small, others] = np.nan
    out[count] = out[count].astype(object).where(~small, f"<{min_count}").astype(str)
    return out


def pseudonymize(values: pd.Series, salt: str, *, prefix: str = "P", length: int = 10) -> pd.Series:
    """Stable salted pseudonyms (HMAC-SHA-256) for identifiers.

    The same identifier and salt always give the same pseudonym; without the salt the
    mapping cannot be reversed or rebuilt. Keep the salt with the data, not the report.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.privacy import pseudonymize
    >>> p = pseudonymize(pd.Series(["C001", "C002", "C001"]), salt="keep-me-secret")
    >>> p.iloc[0] == p.iloc[2], p.iloc[0] != p.iloc[1], p.iloc[0][:1]
    (True, True, 'P')
    """
    if not salt:
        raise ValueError("a non-empty salt is needed; choose a secret phrase and keep it private")
    key = salt.encode("utf-8")
    uniques = pd.unique(values.astype(str))
    mapping = {
        u: prefix + hmac.new(key, u.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        for u in uniques
    }
    return values.astype(str).map(mapping).where(values.notna())


# -- the report's privacy guard -----------------------------------------------------------

_SPACE = re.compile(r"\s+")
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")
_TAG = re.compile(r"<[^>]*>")
_NUMBER_LIKE = re.compile(r"[+-]?\d+([.,]\d+)?")
#: Identifiers shorter than this, and purely numeric ones, are matched only where an
#: identifier can stand (table cells of identifier columns, labels, legends, headings).
SHORT_ID = 4


def _norm(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(text).replace("\xa0", " ")).strip().casefold()


@dataclass(frozen=True)
class Identifiers:
    """The identifier values a shared output may not show, and the columns they came from.

    Made by :func:`identifier_values`; used by :func:`find_identifiers`. Values are kept
    normalized (case folded, runs of white space as one space).
    """

    values: frozenset[str] = frozenset()
    columns: frozenset[str] = frozenset()

    @property
    def long(self) -> frozenset[str]:
        """Values distinctive enough to be looked for anywhere."""
        return frozenset(v for v in self.values if not _is_short(v))

    @property
    def short(self) -> frozenset[str]:
        """Short or purely numeric values (``7``, ``T1``, ``1024``)."""
        return frozenset(v for v in self.values if _is_short(v))

    def __bool__(self) -> bool:
        return bool(self.values)


def _is_short(value: str) -> bool:
    return len(value) < SHORT_ID or _NUMBER_LIKE.fullmatch(value) is not None


def _as_text(values: pd.Series) -> set[str]:
    values = values.dropna()
    out = set(values.astype(str))
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").dropna()
        whole = numbers[np.isfinite(numbers) & (numbers == np.round(numbers))]
        out |= {str(int(v)) for v in whole.unique()}
    if pd.api.types.is_datetime64_any_dtype(values):
        out |= set(values.dt.strftime("%Y-%m-%d"))
    return out


def identifier_values(study, *, therapists: bool = True, dates: bool = True) -> Identifiers:
    """Every client identifier of a study (and therapist ids and dates), as text.

    Parameters
    ----------
    study : Study
        The study whose identifiers may not appear in a shared output.
    therapists : bool, default True
        Include therapist identifiers.
    dates : bool, default True
        Include date columns (``date`` and any column the codebook types as a date).

    Returns
    -------
    Identifiers
        Also the codebook's other identifier columns: fields with ``"role": "identifier"``
        and the primary and foreign keys other than ``session``.

    Examples
    --------
    >>> import alliance
    >>> from alliance.privacy import identifier_values
    >>> ids = identifier_values(alliance.datasets.load_dataset("demo"))
    >>> "c001" in ids.values, "t01" in ids.short, "client" in ids.columns
    (True, True, True)
    """
    wanted = {"client"} | ({"therapist"} if therapists else set())
    if dates:
        wanted.add("date")
    for res in study.codebook.package.get("resources", []):
        schema = res.get("schema", {}) or {}
        keys = schema.get("primaryKey") or []
        keys = [keys] if isinstance(keys, str) else list(keys)
        for fk in schema.get("foreignKeys", []) or []:
            fields = fk.get("fields", [])
            keys += [fields] if isinstance(fields, str) else list(fields)
        for field in schema.get("fields", []) or []:
            name = field.get("name")
            if not isinstance(name, str):
                continue
            if (
                field.get("role") in ("identifier", "client", "therapist")
                or field.get("identifier") is True
            ):
                wanted.add(name)
            if dates and field.get("type") in ("date", "datetime"):
                wanted.add(name)
        wanted |= {k for k in keys if isinstance(k, str) and k not in ("session", "site")}
    if not therapists:
        wanted.discard("therapist")
    values: set[str] = set()
    found: set[str] = set()
    for frame in (study.sessions, study.clients, study.events):
        if frame is None:
            continue
        for col in frame.columns:
            if col in wanted:
                found.add(col)
                values |= _as_text(frame[col])
    values = {_norm(v) for v in values}
    values.discard("")
    return Identifiers(frozenset(values), frozenset(c.casefold() for c in found | wanted))


def _bounded(text: str, value: str) -> bool:
    """Is ``value`` in ``text`` with no letter or digit right before or after it?"""
    start = text.find(value)
    while start != -1:
        end = start + len(value)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(value, start + 1)
    return False


_RUN = re.compile(r"[^\W_]+")


def _long_hits(text: str, ids: Identifiers) -> set[str]:
    plain = _norm(_DATA_URI.sub(" ", text))
    untagged = _norm(_TAG.sub("", _DATA_URI.sub(" ", text)))
    runs = set(_RUN.findall(plain)) | set(_RUN.findall(untagged))
    hits = set()
    for value in ids.long:
        first = _RUN.match(value)  # a value starting with a letter or digit starts a run
        if first is not None and first.group() not in runs:
            continue
        if _bounded(plain, value) or _bounded(untagged, value):
            hits.add(value)
    return hits


def _labelled_hits(text: str, ids: Identifiers) -> set[str]:
    """Short ids written after their column's name: ``client 7``, ``therapist: T1``."""
    if not ids.short:
        return set()
    names = "|".join(re.escape(c) for c in sorted(ids.columns, key=len, reverse=True))
    pattern = re.compile(rf"(?<![^\W_])(?:{names})\s*[:=#]?\s*([^\s<>,;()\[\]]+)")
    hits = set()
    for match in pattern.finditer(_norm(_TAG.sub(" ", text))):
        token = _POSSESSIVE.sub("", match.group(1).rstrip(".:!?"))
        if token in ids.short:
            hits.add(token)
    return hits


_POSSESSIVE = re.compile(r"['’]s?$")
#: A short code of letters and digits (``T1``, ``c07``): distinctive inside a heading,
#: a caption or a legend entry, unlike a bare number (``Table 7``) or a short word.
_CODE = re.compile(r"(?=[^\W\d_]*\d)(?=\d*[^\W\d_])[^\W_]+")


def _inside_hits(texts, ids: Identifiers, *, whole: bool = True) -> set[str]:
    """Short ids in headings, captions, labels and legend entries (normalized texts).

    The whole text equal to a short id is a hit (a heading ``7``, a legend entry
    ``T1``; not with ``whole=False``, for figure texts such as a bar's count); inside a
    longer text only a code of letters and digits is (``Trajectory of C07``), never a
    bare number (``Table 7``, ``Figure 12``).
    """
    codes = [v for v in ids.short if _CODE.fullmatch(v)]
    hits = set()
    for text in texts:
        if whole and text in ids.short:
            hits.add(text)
        hits |= {v for v in codes if v in text and _bounded(text, v)}
    return hits


class _Cells(HTMLParser):
    """Tables (rows of (is_header, text, colspan)), headings and SVG texts of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[bool, str, int]]]] = []
        self.headings: list[str] = []
        self._stack: list = []  # open tables
        self._cell: list[str] | None = None
        self._cellinfo: tuple[bool, int] = (False, 1)
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._stack.append([])
            self.tables.append(self._stack[-1])
        elif tag == "tr" and self._stack:
            self._stack[-1].append([])
        elif tag in ("td", "th") and self._stack:
            span = dict(attrs).get("colspan") or "1"
            self._cell = []
            self._cellinfo = (tag == "th", int(span) if span.isdigit() else 1)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6", "caption", "figcaption", "label"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._stack:
            if not self._stack[-1]:
                self._stack[-1].append([])
            header, span = self._cellinfo
            self._stack[-1][-1].append((header, _norm("".join(self._cell)), span))
            self._cell = None
        elif tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6", "caption", "figcaption", "label"):
            if self._heading is not None:
                self.headings.append(_norm("".join(self._heading)))
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


def _expand(row: list[tuple[bool, str, int]]) -> list[tuple[bool, str]]:
    cells = []
    for header, text, span in row:
        cells += [(header, text)] * max(span, 1)
    return cells


def _table_hits(
    rows: list[list[str]], header_rows: int | list[bool] | None, ids: Identifiers
) -> set[str]:
    """Short ids in the columns a header row names as identifier columns.

    ``header_rows``: how many leading rows are headers, or one flag per row (an HTML row
    of ``<th>`` cells only), or None when any row may name columns.
    """
    hits: set[str] = set()
    id_cols: set[int] = set()
    for i, row in enumerate(rows):
        named = {j for j, text in enumerate(row) if text in ids.columns}
        if isinstance(header_rows, list):
            is_header = header_rows[i]
        else:
            is_header = header_rows is None or i < header_rows
        if named and is_header:
            id_cols |= named
            continue
        hits |= {row[j] for j in id_cols if j < len(row) and row[j] in ids.short}
    return hits


def _html_hits(text: str, ids: Identifiers) -> set[str]:
    if not ids.short:
        return set()
    parser = _Cells()
    with contextlib.suppress(Exception):  # a malformed page is still checked as text
        parser.feed(_DATA_URI.sub(" ", text))
        parser.close()
    hits = _inside_hits(parser.headings, ids)
    for table in parser.tables:
        rows = [_expand(r) for r in table if r]
        # a header row is all <th> (pandas writes row labels as <th> too, so a row whose
        # label is "rater" and whose values say "client" names no identifier column)
        headers = [all(h for h, _ in r) for r in rows]
        hits |= _table_hits([[t for _, t in r] for r in rows], headers, ids)
    for block in re.findall(r"<pre[^>]*>(.*?)</pre>", text, flags=re.S | re.I):
        hits |= _text_table_hits(html.unescape(_TAG.sub("", block)), ids)
    return hits


def _text_table_hits(text: str, ids: Identifiers) -> set[str]:
    """Short ids in a printed DataFrame or Series (columns aligned by white space)."""
    hits: set[str] = set()
    ends: set[int] = set()  # right edge of identifier columns (pandas right-aligns)
    index = False  # a line naming an identifier alone: the rows below start with one
    first = True  # the first line of a block is the header of a printed table
    for line in text.casefold().splitlines():
        tokens = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", line)]
        if not tokens:
            first = True
            continue
        header, first = first, False
        named = [t for t in tokens if t[0] in ids.columns]
        if named and (header or (len(tokens) == 1 and tokens[0][1] == 0)):
            if len(tokens) == 1 and tokens[0][1] == 0:
                index = True
            else:
                ends |= {end for _, _, end in named}
            continue
        for token, start, end in tokens:
            if token in ids.short and (end in ends or (index and start == 0)):
                hits.add(token)
    return hits


def _svg_hits(text: str, ids: Identifiers) -> set[str]:
    """Short ids in a figure's legend, or as tick labels of an axis named for identifiers."""
    if not ids.short:
        return set()
    try:
        root = ElementTree.fromstring(
            text.encode("utf-8"),
            ElementTree.XMLParser(target=ElementTree.TreeBuilder(insert_comments=True)),
        )
    except ElementTree.ParseError:
        return _text_table_hits(_TAG.sub("\n", text), ids)
    texts: list[tuple[str, str]] = []  # (where, text)

    def walk(node, where: str) -> None:
        gid = str(node.get("id", "")) if not callable(node.tag) else ""
        if gid.startswith("legend"):
            where = "legend"
        elif gid.startswith(("xtick", "ytick")) and where != "legend":
            where = "tick"
        if callable(node.tag):  # a comment: matplotlib writes each text as one
            texts.append((where, _norm(node.text or "")))
        elif str(node.tag).endswith(("text", "tspan")):
            texts.append((where, _norm("".join(node.itertext()))))
        for child in node:
            walk(child, where)

    walk(root, "")
    labelled = any(w == "" and t in ids.columns for w, t in texts)
    hits = _inside_hits([t for w, t in texts if w == "legend"], ids)
    hits |= _inside_hits([t for w, t in texts if w == ""], ids, whole=False)  # titles
    if labelled:
        hits |= {t for w, t in texts if w == "tick" and t in ids.short}
    return hits


def _csv_hits(text: str, ids: Identifiers) -> set[str]:
    if not ids.short:
        return set()
    try:
        rows = [[_norm(c) for c in r] for r in csv.reader(io.StringIO(text))]
    except csv.Error:
        return set()
    return _table_hits(rows, 1, ids)


def _notebook_hits(text: str, ids: Identifiers) -> set[str]:
    try:
        nb = json.loads(text)
    except ValueError:
        return _long_hits(text, ids)
    hits: set[str] = set()

    def joined(value) -> str:
        return "".join(value) if isinstance(value, list) else str(value or "")

    for cell in nb.get("cells", []):
        source = joined(cell.get("source"))
        hits |= _long_hits(source, ids)
        if cell.get("cell_type") == "markdown":
            hits |= _html_hits(source, ids) | _labelled_hits(source, ids)
            headings = re.findall(r"^ {0,3}#{1,6}\s+(.*)$", source, flags=re.M)
            hits |= _inside_hits([_norm(h.rstrip("# ")) for h in headings], ids)
        for output in cell.get("outputs", []) or []:
            data = output.get("data", {}) or {}
            for kind, body in [("text/plain", output.get("text")), *data.items()]:
                if body is None or kind.startswith("image/png"):
                    continue
                body = joined(body)
                found = find_identifiers(body, ids, kind={"text/html": "html"}.get(kind, "text"))
                if kind == "image/svg+xml":
                    found = find_identifiers(body, ids, kind="svg")
                hits |= found
    return hits


def find_identifiers(text: str, ids: Identifiers, *, kind: str = "html") -> set[str]:
    """Identifier values that a page or file shows (empty when it shows none).

    Every value is looked for as a whole sequence (spaces and punctuation included,
    runs of white space as one space, ignoring case) in the entity-decoded text, with no
    letter or digit right before or after it. Short or purely numeric values would match
    any table of counts, so they are looked for only where an identifier can stand:
    cells of a column headed by an identifier column's name (HTML and CSV tables,
    printed DataFrames), headings, captions and labels, figure legends, tick labels of
    an axis named for an identifier, and after the column's name (``client 7``). In a
    heading, caption, label or legend entry a short id is found as its whole text, or
    inside it when it is a code of letters and digits (``Trajectory of C07``); a bare
    number inside it (``Table 7``, ``Figure 12``) is not an identifier.

    Parameters
    ----------
    text : str
        The page or file.
    ids : Identifiers
        From :func:`identifier_values`.
    kind : {"html", "svg", "csv", "ipynb", "text"}, default "html"
        What ``text`` is.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.privacy import Identifiers, find_identifiers
    >>> ids = Identifiers(frozenset({"anna maria berg", "12"}), frozenset({"client"}))
    >>> sorted(find_identifiers("<p>Seen: ANNA&nbsp;Maria  Berg.</p>", ids))
    ['anna maria berg']
    >>> find_identifiers("<table><tr><th>n</th></tr><tr><td>12</td></tr></table>", ids)
    set()
    >>> find_identifiers("<table><tr><th>client</th></tr><tr><td>12</td></tr></table>", ids)
    {'12'}
    """
    if not ids:
        return set()
    if kind == "ipynb":
        return _notebook_hits(text, ids)
    hits = _long_hits(text, ids) | _labelled_hits(text, ids)
    if kind == "html":
        hits |= _html_hits(text, ids)
    elif kind == "svg":
        hits |= _svg_hits(text, ids)
    elif kind == "csv":
        hits |= _csv_hits(text, ids)
    else:
        hits |= _text_table_hits(text, ids)
    return hits
