"""The one APA table type every result returns from ``.apa_table()``.

An :class:`ApaTable` holds a formatted body (a DataFrame of strings, one column per APA
column), a title, an optional table number and a note (N, exclusions, abbreviations). It
renders itself in Jupyter (``_repr_html_``), as clean HTML (:meth:`ApaTable.to_html`) and
as booktabs LaTeX (:meth:`ApaTable.to_latex`) and as a Word table (:meth:`ApaTable.to_docx`,
with python-docx); the report renders the same object to all three.

The layout follows the APA Publication Manual (7th ed., section 7.8): the number in bold
on its own line, the title in italics below it, horizontal rules only (top, under the
header, bottom), and the note under the table starting with *Note.*
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["ApaTable", "codebook_labels", "format_p"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {
    "β": r"$\beta$",
    "σ": r"$\sigma$",
    "τ": r"$\tau$",
    "ρ": r"$\rho$",
    "χ": r"$\chi$",
    "−": "-",
    "²": r"$^2$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "×": r"$\times$",
    "–": "--",
}
_LATEX_SPECIAL.update({"<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"})


def format_p(p: float) -> str:
    """A p value the APA way: three decimals without the leading zero, ``< .001`` below.

    Examples
    --------
    >>> from alliance.tables import format_p
    >>> format_p(0.0341), format_p(0.00002), format_p(1.0)
    ('.034', '< .001', '1.000')
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "< .001" if p < 0.001 else f"{p:.3f}".lstrip("0")


def _cell(value: object, digits: int, *, no_zero: bool = False, integers: bool = True) -> str:
    """One number as text: integers as integers, others rounded to ``digits``.

    With ``integers=False`` (a column holding fractions too) a whole number is written
    with ``digits`` decimals like the rest of its column (``0.00`` beside ``0.39``).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and not integers:
        value = value + 0.0
    elif isinstance(value, int) or (isinstance(value, float) and float(value).is_integer()):
        if abs(value) < 1e15:
            return str(int(value))
    if isinstance(value, float):
        text = f"{value:.{digits}f}".replace("-", "\u2212" if False else "-")
        if no_zero:
            text = text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text
        return text
    return str(value)


def _py(value: object) -> object:
    """A numpy scalar as the Python number it holds."""
    return value.item() if hasattr(value, "item") else value


def _is_number(value: object) -> bool:
    value = _py(value)
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def _blank(value: object) -> str:
    return (
        ""
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        else str(value)
    )


def _header(name: str) -> str:
    """``n_clients`` -> ``N clients``, ``ci_low`` -> ``CI low``; other spellings are kept."""
    if name != name.lower() or ("_" not in name and " " in name):
        return name
    words = [w for w in name.split("_") if w]
    if not words:
        return name
    if len(words) == 1 and len(name) <= 2:
        return _ACRONYMS.get(name, name)  # p, r, b, n
    out = [_ACRONYMS.get(w, w) for w in words]
    if out[0] == words[0]:
        out[0] = out[0].capitalize()
    return " ".join(out)


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _p_cell(value: object) -> str:
    if _is_number(value):
        return format_p(float(_py(value)))
    text = _blank(value)
    return format_p(float(text)) if _NUMBER.match(text.strip()) else text


def _text_numbers(cells: list[str], digits: int, *, no_zero: bool = False) -> list[str]:
    """Numbers written as text (a CSV read back): counts as integers, long decimals rounded.

    Cells already formatted (``"0.00"``, ``"[0.35, 0.61]"``, ``"< .001"``) are kept; a
    cell is rounded only when it has more than ``digits + 1`` decimals, and ``"300.0"``
    reads ``"300"``.
    """
    out = []
    for cell in cells:
        text = cell.strip()
        if not _NUMBER.match(text):
            out.append(cell)
            continue
        whole, _, decimals = text.partition(".")
        if "e" in text.lower():
            out.append(_cell(float(text), digits, no_zero=no_zero))
        elif decimals and set(decimals) == {"0"} and len(decimals) == 1:
            out.append(whole)
        elif len(decimals) > digits + 1:
            out.append(_cell(float(text), digits, no_zero=no_zero))
        else:
            out.append(text)
    # one number of decimals in a column: 42.5 beside 42.84 reads 42.50
    places = [len(c.partition(".")[2]) for c in out if _NUMBER.match(c.strip()) and "." in c]
    if places and min(places) != max(places):
        width = max(places)
        out = [f"{float(c):.{width}f}" if _NUMBER.match(c.strip()) and "." in c else c for c in out]
        if no_zero:
            out = [c.replace("0.", ".", 1) if c.startswith(("0.", "-0.")) else c for c in out]
    return out


#: Words of a header written the APA way (``ci_low`` -> ``CI low``).
_ACRONYMS = {"ci": "CI", "se": "SE", "sd": "SD", "icc": "ICC", "n": "N", "rci": "RCI", "aic": "AIC"}


#: Column names that hold p values (shown as ``.034`` / ``< .001``).
_P_COLUMNS = {"p", "p_value", "pvalue", "p-value", "p_adj", "p (adjusted)"}
#: Column names that hold correlations (no leading zero, APA 6.36).
_R_COLUMNS = {"r", "rho", "alpha", "icc", "omega"}


def _latex_escape(text: object) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for char, repl in _LATEX_UNICODE.items():
        out = out.replace(char, repl)
    return out


@dataclass
class ApaTable:
    """A formatted APA-style table: body, title, number and note.

    Attributes
    ----------
    body : pandas.DataFrame
        The cells as text, already rounded and formatted (e.g. ``"[-2.82, -1.21]"``,
        ``"< .001"``); its columns are the table's header. The index is not shown.
    title : str
        The table's title (shown in italics).
    number : int, optional
        The table's number in the report (``Table 1``); None leaves it to the report.
    note : str
        The general note: N, exclusions and abbreviations (shown after *Note.*).
    sections : tuple of (int, str)
        Subheadings spanning the table (e.g. ``(0, "Fixed effects")``,
        ``(3, "Random effects")``), each shown before the body row of its position.

    Examples
    --------
    >>> import pandas as pd
    >>> from alliance.tables import ApaTable
    >>> t = ApaTable(pd.DataFrame({"Term": ["alliance"], "b": ["-2.01"]}),
    ...              title="Early alliance and end PHQ-9", number=1, note="N = 120 clients.")
    >>> t.to_frame().columns.tolist()
    ['Term', 'b']
    >>> print(t.to_latex().splitlines()[3])
    \\toprule
    """

    body: pd.DataFrame
    title: str = ""
    number: int | None = None
    note: str = ""
    sections: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.body, pd.DataFrame):
            raise TypeError(
                f"ApaTable.body must be a pandas DataFrame of formatted cells, not "
                f"{type(self.body).__name__}"
            )
        self.body = self.body.reset_index(drop=True).astype(object).where(self.body.notna(), "")
        self.body = self.body.astype(str)
        self.sections = tuple((int(i), str(label)) for i, label in self.sections)
        bad = [i for i, _ in self.sections if not 0 <= i <= len(self.body)]
        if bad:
            raise ValueError(
                f"ApaTable.sections positions {bad} lie outside the body's {len(self.body)} rows"
            )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        title: str = "",
        note: str = "",
        number: int | None = None,
        digits: int = 2,
        labels: dict[str, str] | None = None,
        bounded: tuple[str, ...] | list[str] = (),
    ) -> ApaTable:
        """An APA table from a table of numbers: integers as integers, the rest rounded.

        p columns (``p``, ``p_value``) read ``.034`` / ``< .001`` and correlation-like columns
        (``r``, ``alpha``, ``icc``) have no leading zero; a named index becomes the first
        column and a 0..n index is dropped; headers are taken from ``labels`` (e.g. the
        codebook's), else ``snake_case`` reads ``Snake case``. Columns named in ``bounded``
        (values that cannot exceed 1, such as the CI of an alpha) lose the leading zero too.

        Examples
        --------
        >>> import pandas as pd
        >>> from alliance.tables import ApaTable
        >>> t = ApaTable.from_frame(pd.DataFrame({"n_clients": [300.0], "r": [0.312],
        ...                                       "p": [0.0004]}), title="Sizes")
        >>> t.to_frame().iloc[0].tolist(), t.to_frame().columns.tolist()
        (['300', '.31', '< .001'], ['N clients', 'r', 'p'])
        """
        data = frame.copy()
        if data.index.name is not None or not isinstance(data.index, pd.RangeIndex):
            if any(n is not None for n in data.index.names):
                data = data.reset_index()
        data = data.reset_index(drop=True)
        labels = dict(labels or {})
        body = {}
        for col in data.columns:
            key = str(col)
            low = key.lower()
            values = data[col]
            no_zero = low in _R_COLUMNS or key in bounded
            if low in _P_COLUMNS:
                cells = [_p_cell(v) for v in values]
            elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                whole = bool(
                    values.dropna().map(lambda v: float(v).is_integer() or math.isinf(v)).all()
                )
                cells = [_cell(_py(v), digits, no_zero=no_zero, integers=whole) for v in values]
            else:
                cells = _text_numbers([_blank(v) for v in values], digits, no_zero=no_zero)
            body[labels.get(key, _header(key))] = cells
        return cls(pd.DataFrame(body), title=title, number=number, note=note)

    @classmethod
    def stack(
        cls,
        tables: list[ApaTable],
        labels: list[str] | None = None,
        *,
        title: str = "",
        note: str = "",
        number: int | None = None,
    ) -> ApaTable:
        """Several APA tables as one, each under its own subheading (e.g. two models).

        Columns are the union of the tables' columns in order of appearance (a cell a table
        lacks is blank); each table's own subheadings are kept below its label.

        Examples
        --------
        >>> import pandas as pd
        >>> from alliance.tables import ApaTable
        >>> a = ApaTable(pd.DataFrame({"Term": ["alliance"], "b": ["-2.01"]}))
        >>> b = ApaTable(pd.DataFrame({"Term": ["alliance"], "b": ["-1.50"]}))
        >>> both = ApaTable.stack([a, b], ["Model 1", "Model 2"], title="Two models")
        >>> both.to_frame()["b"].tolist(), both.sections
        (['-2.01', '-1.50'], ((0, 'Model 1'), (1, 'Model 2')))
        """
        tables = list(tables)
        if labels is not None and len(labels) != len(tables):
            raise ValueError(f"stack() got {len(tables)} tables but {len(labels)} labels")
        columns: list[str] = []
        for t in tables:
            columns += [c for c in t.body.columns if c not in columns]
        bodies, sections, offset = [], [], 0
        for i, t in enumerate(tables):
            if labels is not None:
                sections.append((offset, str(labels[i])))
            sections += [(offset + j, label) for j, label in t.sections]
            bodies.append(t.body.reindex(columns=columns, fill_value=""))
            offset += len(t.body)
        body = pd.concat(bodies, ignore_index=True) if bodies else pd.DataFrame(columns=columns)
        return cls(body, title=title, number=number, note=note, sections=tuple(sections))

    def rename(self, terms) -> ApaTable:
        """A copy whose first-column cells read ``terms[cell]`` (e.g. readable term names).

        ``terms`` is a mapping (cells it lacks stay) or a function of the cell, such as
        :func:`alliance.terms.term_labeller`.

        Examples
        --------
        >>> import pandas as pd
        >>> from alliance.tables import ApaTable
        >>> t = ApaTable(pd.DataFrame({"Term": ["alliance_early"], "b": ["-3.29"]}))
        >>> t.rename({"alliance_early": "Early alliance"}).to_frame()["Term"].tolist()
        ['Early alliance']
        >>> t.rename(str.upper).to_frame()["Term"].tolist()
        ['ALLIANCE_EARLY']
        """
        body = self.body.copy()
        swap = terms if callable(terms) else (lambda v: terms.get(v, v))
        if len(body.columns):
            first = body.columns[0]
            body[first] = body[first].map(swap)
        return ApaTable(
            body, title=self.title, number=self.number, note=self.note, sections=self.sections
        )

    def label_terms(self, labels: dict[str, str] | None = None) -> ApaTable:
        """A copy whose ``Term`` column reads as a results section does (``alliance_within``
        -> ``Alliance, within client``), by :func:`alliance.terms.term_label`.

        Tables whose first column is not ``Term`` come back unchanged.

        Examples
        --------
        >>> import pandas as pd
        >>> from alliance.tables import ApaTable
        >>> t = ApaTable(pd.DataFrame({"Term": ["phq9_lag1", "sessions_elapsed"]}))
        >>> t.label_terms({"phq9": "PHQ-9 total"}).to_frame()["Term"].tolist()
        ['PHQ-9 total, previous session', 'Sessions elapsed']
        """
        from alliance.terms import term_labeller

        if not len(self.body.columns) or self.body.columns[0] != "Term":
            return self.rename({})
        return self.rename(term_labeller(labels))

    # ---- plain forms
    def to_frame(self) -> pd.DataFrame:
        """The body as a DataFrame of strings (a copy), e.g. to concatenate or save."""
        return self.body.copy()

    @property
    def label(self) -> str:
        """``"Table 3"`` when numbered, else empty."""
        return f"Table {self.number}" if self.number is not None else ""

    def _rows(self):
        """``("section", label)`` and ``("row", values)`` in print order."""
        heads: dict[int, list[str]] = {}
        for i, label in self.sections:
            heads.setdefault(i, []).append(label)
        rows = list(self.body.itertuples(index=False))
        for i in range(len(rows) + 1):
            for label in heads.get(i, []):
                yield "section", label
            if i < len(rows):
                yield "row", [str(v) for v in rows[i]]

    def __str__(self) -> str:
        lines = [x for x in (self.label, self.title) if x]
        lines.append(self.body.to_string(index=False))
        if self.note:
            lines.append(f"Note. {self.note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()

    # ---- HTML
    def to_html(self) -> str:
        """A self-contained HTML table: caption (number, title), header, body, note; no index.

        The markup is plain (``<table class="alliance-apa">``) with a small inline style for
        the APA rules, so it reads well in Jupyter, in a report and pasted into an editor.
        """
        esc = html.escape
        cls = "alliance-apa"
        rule = "border-top: 1px solid currentColor;"
        cells = "padding: 0.15em 0.8em; text-align: {align};"
        parts = [f'<table class="{cls}" style="border-collapse: collapse; border: none;">']
        caption = []
        if self.label:
            caption.append(f'<strong class="apa-number">{esc(self.label)}</strong>')
        if self.title:
            caption.append(f"<em>{esc(self.title)}</em>")
        if caption:
            parts.append(
                '<caption style="caption-side: top; text-align: left;">'
                + "<br>".join(caption)
                + "</caption>"
            )
        head = "".join(
            f'<th style="{cells.format(align="left" if i == 0 else "center")} '
            f'border-bottom: 1px solid currentColor;">{esc(str(c))}</th>'
            for i, c in enumerate(self.body.columns)
        )
        parts.append(f'<thead style="{rule}"><tr>{head}</tr></thead>')
        rows = []
        span = max(len(self.body.columns), 1)
        for kind, values in self._rows():
            if kind == "section":
                rows.append(
                    f'<tr><td colspan="{span}" style="{cells.format(align="left")}">'
                    f"<em>{esc(values)}</em></td></tr>"
                )
                continue
            row = "".join(
                f'<td style="{cells.format(align="left" if i == 0 else "center")}">'
                f"{esc(str(v))}</td>"
                for i, v in enumerate(values)
            )
            rows.append(f"<tr>{row}</tr>")
        parts.append(
            f'<tbody style="border-bottom: 1px solid currentColor;">{"".join(rows)}</tbody>'
        )
        if self.note:
            span = max(len(self.body.columns), 1)
            parts.append(
                f'<tfoot><tr><td colspan="{span}" style="text-align: left; padding-top: 0.3em;">'
                f"<em>Note.</em> {esc(self.note)}</td></tr></tfoot>"
            )
        parts.append("</table>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    # ---- LaTeX
    def to_latex(self) -> str:
        """A booktabs ``table`` environment: caption, tabular, note (``\\usepackage{booktabs}``)."""
        cols = list(self.body.columns)
        spec = "l" + "c" * (len(cols) - 1)
        out = [r"\begin{table}[htbp]"]
        caption = ": ".join(x for x in (self.label, self.title) if x)
        if caption:
            out.append(r"\caption{" + _latex_escape(caption) + "}")
        out += [r"\begin{tabular}{" + spec + "}", r"\toprule"]
        out.append(" & ".join(_latex_escape(c) for c in cols) + r" \\")
        out.append(r"\midrule")
        for kind, values in self._rows():
            if kind == "section":
                out.append(
                    rf"\multicolumn{{{len(cols)}}}{{l}}{{\textit{{{_latex_escape(values)}}}}} \\"
                )
                continue
            out.append(" & ".join(_latex_escape(v) for v in values) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if self.note:
            out.append(
                r"\par\smallskip{\footnotesize\textit{Note.} " + _latex_escape(self.note) + "}"
            )
        out.append(r"\end{table}")
        return "\n".join(out) + "\n"

    # ---- Word
    def to_docx(self, target):
        """Write the table to Word: number (bold), title (italic), rules, note.

        Parameters
        ----------
        target : str, pathlib.Path or docx.document.Document
            A ``.docx`` file to write (a new document holding this table), or an open
            python-docx document to append the table to.

        Returns
        -------
        pathlib.Path or docx.document.Document
            The file written, or the document appended to.

        Examples
        --------
        >>> import tempfile, pandas as pd, docx
        >>> from alliance.tables import ApaTable
        >>> t = ApaTable(pd.DataFrame({"Term": ["alliance"], "b": ["-2.01"]}), title="Fit",
        ...              number=1, note="N = 120 clients.")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = t.to_docx(tmp + "/t.docx")
        ...     docx.Document(path).tables[0].cell(1, 1).text
        '-2.01'
        """
        import docx

        if isinstance(target, str | Path):
            document = docx.Document()
            self._append_docx(document)
            path = Path(target)
            document.save(path)
            return path
        if not hasattr(target, "add_table"):
            raise TypeError(
                "to_docx() takes a file path or a python-docx Document "
                f"(docx.Document()), not {type(target).__name__}"
            )
        self._append_docx(target)
        return target

    def _append_docx(self, document) -> None:
        from docx.enum.table import WD_TABLE_ALIGNMENT
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.shared import Pt

        if self.label:
            para = document.add_paragraph()
            para.add_run(self.label).bold = True
            para.paragraph_format.space_after = Pt(0)
            para.paragraph_format.keep_with_next = True
        if self.title:
            para = document.add_paragraph()
            para.add_run(self.title).italic = True
            para.paragraph_format.keep_with_next = True
        cols = list(self.body.columns)
        rows = list(self._rows())
        width = max(len(cols), 1)
        table = document.add_table(rows=1 + len(rows), cols=width)
        table.alignment = WD_TABLE_ALIGNMENT.CENTER
        cells = table._cells  # once: table.cell(i, j) rebuilds this list on every call
        grid = [cells[i * width : (i + 1) * width] for i in range(1 + len(rows))]
        texts = [[str(c) for c in cols], *[v if k == "row" else [""] * width for k, v in rows]]
        for i, (row, values) in enumerate(zip(grid, texts, strict=True)):
            if i and rows[i - 1][0] == "section":
                continue
            for j, (cell, value) in enumerate(zip(row, values, strict=False)):
                para = cell.paragraphs[0]
                run = para.add_run(value)
                run.font.size = Pt(10)
                if j and not (i and rows[i - 1][0] == "section"):
                    para.alignment = WD_ALIGN_PARAGRAPH.CENTER
        _apa_rules(grid)
        for i, (kind, label) in enumerate(rows, start=1):
            if kind == "section":  # one cell across the table, in italics
                merged = grid[i][0].merge(grid[i][-1]) if width > 1 else grid[i][0]
                for extra in merged.paragraphs[1:]:  # the merged cells' empty paragraphs
                    extra._p.getparent().remove(extra._p)
                run = merged.paragraphs[0].add_run(label)
                run.italic = True
                run.font.size = Pt(10)
        if self.note:
            para = document.add_paragraph()
            para.add_run("Note.").italic = True
            para.add_run(" " + self.note)
            for run in para.runs:
                run.font.size = Pt(10)


def _apa_rules(grid) -> None:
    """Horizontal rules only: above the header, below it and below the last row."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    def border(cell, side: str) -> None:
        props = cell._tc.get_or_add_tcPr()
        borders = props.find(qn("w:tcBorders"))
        if borders is None:
            borders = OxmlElement("w:tcBorders")
            props.append(borders)
        edge = OxmlElement(f"w:{side}")
        edge.set(qn("w:val"), "single")
        edge.set(qn("w:sz"), "6")
        edge.set(qn("w:color"), "000000")
        borders.append(edge)

    last = len(grid) - 1
    for i, row in enumerate(grid):
        for cell in row:
            if i == 0:
                border(cell, "top")
                border(cell, "bottom")
            if i == last:
                border(cell, "bottom")


def codebook_labels(study, *, ranges: bool = False) -> dict[str, str]:
    """Readable names of a study's columns from its codebook, for table headers and axes.

    A field's ``title`` is used, else the lead of its description (``"WAI-SR total: sum of
    the 12 items"`` reads ``WAI-SR total``); with ``ranges`` the codebook's minimum and
    maximum follow (``WAI-SR total (12-60)``).

    Parameters
    ----------
    study : alliance.Study or alliance.study.Codebook or None
        The study (or its codebook); None gives an empty mapping.
    ranges : bool, default False
        Append the allowed range, ``(12-60)``, where the codebook gives both ends.

    Returns
    -------
    dict
        Column name -> label, for the columns the codebook describes well enough.

    Examples
    --------
    >>> import alliance
    >>> from alliance.tables import codebook_labels
    >>> study = alliance.datasets.load_dataset("demo")
    >>> codebook_labels(study)["wai_sr"], codebook_labels(study, ranges=True)["phq9"]
    ('WAI-SR total', 'PHQ-9 total (0-27)')
    """
    codebook = getattr(study, "codebook", study)
    labels: dict[str, str] = {}
    if codebook is None or not hasattr(codebook, "field"):
        return labels
    for table in ("sessions", "clients"):
        try:
            names = codebook.fields(table)["name"].astype(str).tolist()
        except (KeyError, ValueError, AttributeError):
            continue
        for name in names:
            spec = codebook.field(table, name) or {}
            label = str(spec.get("title") or "").strip()
            if not label:
                description = str(spec.get("description") or "")
                lead = description.split(":")[0].strip()
                label = lead if lead and len(lead) <= 24 and lead != description else ""
            if not label:
                continue
            bounds = spec.get("constraints") or {}
            low, high = bounds.get("minimum"), bounds.get("maximum")
            if ranges and _is_number(low) and _is_number(high):
                label += f" ({_cell(float(low), 2)}-{_cell(float(high), 2)})"
            labels[name] = label
    return labels
