"""The one APA table type every result returns from ``.apa_table()``.

An :class:`ApaTable` holds a formatted body (a DataFrame of strings, one column per APA
column), a title, an optional table number and a note (N, exclusions, abbreviations). It
renders itself in Jupyter (``_repr_html_``), as clean HTML (:meth:`ApaTable.to_html`) and
as booktabs LaTeX (:meth:`ApaTable.to_latex`); the report renders the same object to Word.

The layout follows the APA Publication Manual (7th ed., section 7.8): the number in bold
on its own line, the title in italics below it, horizontal rules only (top, under the
header, bottom), and the note under the table starting with *Note.*
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

__all__ = ["ApaTable"]

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
_LATEX_UNICODE = {"β": r"$\beta$", "−": "-", "²": r"$^2$", "≤": r"$\leq$", "≥": r"$\geq$"}


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

    def __post_init__(self) -> None:
        if not isinstance(self.body, pd.DataFrame):
            raise TypeError(
                f"ApaTable.body must be a pandas DataFrame of formatted cells, not "
                f"{type(self.body).__name__}"
            )
        self.body = self.body.reset_index(drop=True).astype(object).where(self.body.notna(), "")
        self.body = self.body.astype(str)

    # ---- plain forms
    def to_frame(self) -> pd.DataFrame:
        """The body as a DataFrame of strings (a copy), e.g. to concatenate or save."""
        return self.body.copy()

    @property
    def label(self) -> str:
        """``"Table 3"`` when numbered, else empty."""
        return f"Table {self.number}" if self.number is not None else ""

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
            caption.append(f"<strong>{esc(self.label)}</strong>")
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
        for values in self.body.itertuples(index=False):
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
        for values in self.body.itertuples(index=False):
            out.append(" & ".join(_latex_escape(v) for v in values) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if self.note:
            out.append(
                r"\par\smallskip{\footnotesize\textit{Note.} " + _latex_escape(self.note) + "}"
            )
        out.append(r"\end{table}")
        return "\n".join(out) + "\n"
