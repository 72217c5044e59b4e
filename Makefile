# Two newcomer commands: `make quickstart` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test quickstart clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps vos-benchmark
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q --durations=15 tests

quickstart: setup
	$(PY) -m libs.quickstart --out quickstart

clean:
	rm -rf quickstart output .pytest_cache
