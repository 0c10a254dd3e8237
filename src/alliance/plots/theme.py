"""One look for every figure: a seaborn theme, a colour-blind-safe palette, readable labels.

:func:`set_theme` sets seaborn's ``ticks`` style in the ``paper`` context with the
``colorblind`` palette (Okabe-Ito-like: distinguishable with the common colour-vision
deficiencies) and fonts that stay legible when a figure is printed at a journal's column
width (7 in / 17.5 cm for two columns: 8-10 pt text). Given a study, it also takes the
axis labels from the study's codebook, so a figure reads ``WAI-SR total (12-60)`` rather
than ``wai_sr``; every plotting function of :mod:`alliance.plots` asks :func:`label`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["COLUMN_WIDTH", "PALETTE", "label", "labels", "set_theme"]

#: The palette of every figure (seaborn's colour-blind-safe ``colorblind``).
PALETTE = "colorblind"

#: Width in inches of a figure spanning a journal's two columns (one column: half).
COLUMN_WIDTH = 7.0

#: Readable names of columns, set by :func:`set_theme` (codebook and given labels).
_LABELS: dict[str, str] = {}


def set_theme(
    study=None, *, labels: Mapping[str, str] | None = None, font_scale: float = 1.0
) -> dict[str, str]:
    """Use the package's figure theme, and take axis labels from a study's codebook.

    Parameters
    ----------
    study : alliance.Study, optional
        Its codebook's titles or descriptions, with the allowed range, label the axes
        (:func:`alliance.tables.codebook_labels` with ``ranges=True``).
    labels : mapping, optional
        Further labels, ``{"alliance": "WAI-SR item mean (1-5)"}``; they win over the
        codebook's.
    font_scale : float, default 1.0
        Scale of every font (1.0: 9 pt text, 8 pt ticks).

    Returns
    -------
    dict
        The labels now in use (column -> label).

    Examples
    --------
    >>> import alliance
    >>> study = alliance.datasets.load_dataset("demo")
    >>> labels = alliance.plots.set_theme(study)
    >>> alliance.plots.label("wai_sr"), alliance.plots.label("n_sessions", "Sessions")
    ('WAI-SR total (12-60)', 'Sessions')
    >>> ax = alliance.plots.mean_trajectory(study.sessions, "wai_sr")
    >>> ax.get_ylabel()
    'WAI-SR total (12-60), mean'
    """
    import matplotlib as mpl
    import seaborn as sns

    from alliance.tables import codebook_labels
    from alliance.terms import use_labels

    sns.set_theme(
        context="paper",
        style="ticks",
        palette=PALETTE,
        font_scale=font_scale,
        rc={
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 9 * font_scale,
            "axes.labelsize": 9 * font_scale,
            "legend.fontsize": 8 * font_scale,
            "legend.title_fontsize": 8 * font_scale,
            "xtick.labelsize": 8 * font_scale,
            "ytick.labelsize": 8 * font_scale,
            "legend.frameon": False,
            "figure.dpi": 110,
            "savefig.dpi": 144,
            "svg.hashsalt": "alliance",
        },
    )
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=sns.color_palette(PALETTE))
    _LABELS.clear()
    _LABELS.update(codebook_labels(study, ranges=True))
    _LABELS.update(dict(labels or {}))
    use_labels({**codebook_labels(study), **dict(labels or {})})
    return dict(_LABELS)


def labels() -> dict[str, str]:
    """The labels :func:`set_theme` set (column -> label; a copy).

    Examples
    --------
    >>> import alliance
    >>> _ = alliance.plots.set_theme(alliance.datasets.load_dataset("demo"))
    >>> alliance.plots.theme.labels()["phq9"]
    'PHQ-9 total (0-27)'
    """
    return dict(_LABELS)


def label(column: str | None, default: str | None = None) -> str:
    """A column's readable name: from :func:`set_theme`, else ``default``, else the name
    as :func:`alliance.terms.term_label` writes it (``phq9`` -> ``PHQ-9``).

    Examples
    --------
    >>> from alliance.plots import label
    >>> label("sessions_attended"), label("x", "the alliance"), label("phq9_lag1")
    ('Sessions attended', 'the alliance', 'PHQ-9, previous session')
    """
    from alliance.terms import term_label

    if column is None:
        return default or ""
    if column in _LABELS:
        return _LABELS[column]
    if default is not None:
        return default
    text = str(column)
    named = term_label(text)  # snake_case and questionnaires read as words; "phq" stays
    return named if "_" in text or named.upper() == named else text
