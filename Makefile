# StateLab: `make run` starts a working lab on this machine; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint bench loadtest install install-dev clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q .
	touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q '.[dev]'
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

run: install
	$(PY) -m backend.config.runlab

test: install-dev
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy backend workers
	$(VENV)/bin/lint-imports --no-logo
	DJANGO_SETTINGS_MODULE=backend.config.settings.test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=backend.config.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

bench: install-dev
	$(PY) -m workers.bench

# 50 users for 5 minutes against a throw-away lab on loopback (docs/performance.md,
# "Load test"); e.g. `make loadtest LOADTEST_ARGS="--users 20 --minutes 1"`.
loadtest: install-dev
	$(PY) -m workers.benchmarks.loadtest $(LOADTEST_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
