"""Recover the pre and post HAM-D scores of ``claus_2020`` from a published figure.

The R package clinicalsignificance (Claus, Wager & Bonnet, 2024) ships the data set
``claus_2020`` (Claus, Scherbaum & Bonnet, 2020, Psychotherapy and Psychosomatics,
89(4), 258-260; data https://osf.io/rc754/; 43 patients, HAM-D at four measurements)
only as binary R data. Its own test suite commits the figure
``tests/testthat/_snaps/plot/distribution-jt-plot.svg`` (repository
pedscience/clinicalsignificance, commit e0bf90facba76bc83b02d2fdbf29b530303ab88e), made by
``plot(cs_distribution(claus_2020, id, time, hamd, pre = 1, post = 4,
reliability = 0.80))``: one circle per patient with both scores (40 of the 43), pre on x
and post on y. HAM-D totals are integers, so the circles' centres give the scores
exactly: the axis ticks map 10 -> 220.71 and 20 -> 439.21 (x) and 10 -> 401.14 and
20 -> 233.72 (y) svg points, and every decoded value lies within 0.001 of an integer.

The coordinates below are copied from that figure in the order it draws them (the
package's order of patients). Patient ids and the treatment arm are not in the figure;
the ids written here are 1..40 in that order. Run ``python
tests/reference/make_claus2020_data.py`` to rewrite ``data/claus2020_hamd.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CIRCLES = """
548.46 350.91  329.96 384.40  614.01 501.59  657.71 150.02  461.06 417.88
570.31 283.95  679.56 317.43  461.06 535.07  592.16 434.62  614.01 451.36
504.76 350.91  526.61 66.31   614.01 417.88  570.31 434.62  592.16 334.17
701.41 116.53  592.16 233.72  548.46 99.79   614.01 334.17  548.46 166.76
482.91 401.14  526.61 267.21  526.61 200.24  461.06 434.62  395.51 233.72
592.16 535.07  548.46 350.91  592.16 267.21  482.91 535.07  504.76 300.69
548.46 300.69  548.46 166.76  570.31 434.62  482.91 468.10  526.61 200.24
504.76 233.72  570.31 267.21  614.01 166.76  526.61 417.88  461.06 150.02
"""


def decode() -> tuple[np.ndarray, np.ndarray]:
    xy = np.array(CIRCLES.split(), dtype=float).reshape(-1, 2)
    pre = 10 + (xy[:, 0] - 220.71) * 10 / (439.21 - 220.71)
    post = 10 - (xy[:, 1] - 401.14) * 10 / (401.14 - 233.72)
    for v in (pre, post):
        if np.abs(v - np.round(v)).max() > 0.01:
            raise ValueError("a decoded score is not an integer; check the coordinates")
    return np.round(pre).astype(int), np.round(post).astype(int)


def main() -> None:
    pre, post = decode()
    out = Path(__file__).parent / "data" / "claus2020_hamd.csv"
    lines = ["client,session,hamd"]
    for i, (a, b) in enumerate(zip(pre, post, strict=True), start=1):
        lines += [f"{i},1,{a}", f"{i},4,{b}"]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
