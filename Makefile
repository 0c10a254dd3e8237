# alliance: the project's DAG. `make help` lists the targets.
# The two commands of the README are `make report` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.DEFAULT_GOAL := help
.PHONY: help venv test lint format report notebooks data lock bench screenshots clean docs

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

venv: $(STAMP) ## create or refresh .venv from the pinned requirements.lock

test: $(STAMP) ## lint, then the whole test suite (doctests and notebooks included)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n 2 --dist loadfile -q
	$(PY) -m pytest -q -o addopts="" --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg notebooks/*.ipynb

lint: $(STAMP) ## ruff check and format check only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

REPORT_OUT ?= reports/demo
report: $(STAMP) ## the main job: build the reports from the bundled demo data into reports/
	$(VENV)/bin/alliance report --data demo --out $(REPORT_OUT) --format html,docx,latex

notebooks: $(STAMP) ## re-execute the committed notebooks in place (refreshes their outputs)
	$(PY) -m alliance.report refresh-notebooks

data: $(STAMP) ## regenerate the bundled demo and dyads datasets from their simulation scripts
	$(PY) -m alliance.datasets.make_demo
	$(PY) -m alliance.datasets.make_dyads

lock: ## re-resolve the pinned set (needs the network) into requirements.lock
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip && .lockenv/bin/pip install --quiet -e ".[dev]"
	{ echo "# Exact versions tested together (Python 3.11). Regenerate with: make lock"; \
	  .lockenv/bin/pip freeze --exclude-editable | grep -v '^alliance' | sort -f; } > requirements.lock
	$(PYTHON) scripts/write_environment.py
	rm -rf .lockenv

bench: $(STAMP) ## rerun every benchmark and rewrite benchmarks/results/ (about 15 minutes)
	$(PY) benchmarks/bench_lmm.py --huge
	$(PY) benchmarks/bench_gstudy.py
	$(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_change.py
	$(PY) benchmarks/bench_power.py
	$(PY) benchmarks/bench_scale.py

screenshots: $(STAMP) ## screenshots of the rendered report in headless Chromium (installs chromium)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) -m alliance.report screenshots reports/demo

clean: ## remove the virtual environment and everything made by code
	rm -rf $(VENV) reports/* data/processed/*
	@touch reports/.gitkeep data/processed/.gitkeep

docs: $(STAMP) ## build the documentation site into docs/_build/html (offline; warnings are errors)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
