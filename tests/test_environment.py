"""environment.yml carries exactly the pins of requirements.lock."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_the_lock():
    lock = {
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {p for p in pip_section if "==" in p}
    assert pins == lock, f"drift: only in lock {lock - pins}, only in env {pins - lock}"
    assert "python=3.11" in env["dependencies"]


def test_every_direct_dependency_is_pinned():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text().lower()
    for spec in project["dependencies"]:
        name = spec.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
        assert f"\n{name}==" in lock or f"\n{name.replace('-', '_')}==" in lock, name
