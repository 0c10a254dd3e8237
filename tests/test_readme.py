"""The README's five-minute tour runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_tour_runs(capsys):
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A five-minute tour") :]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    exec(compile(code, "README tour", "exec"), {})
    printed = capsys.readouterr().out
    assert (
        "Study('demo', 3688 sessions, 300 clients, 111 events, 30 therapists, 73765 segments, "
        "7376 coders)"
    ) in printed
    assert "wai[t-1] -> phq9[t]" in printed and "0.289 58.1" in printed
