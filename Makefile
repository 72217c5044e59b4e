# Two newcomer commands: `make quickstart` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DALI_STAMP := $(VENV)/.dali-installed

.PHONY: setup setup-dali setup-browser test quickstart clean

# The project (importable as `stm_cycle` from any folder: pyproject.toml) and what it needs, without DALI.
setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps vos-benchmark
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# NVIDIA DALI (data_backend DALI) and its CUDA libraries, about 0.6 GB: for `make test` (CI tests its CPU
# operators) and for GPU machines; `make setup` and `make quickstart` leave it out.
setup-dali: $(DALI_STAMP)

$(DALI_STAMP): $(STAMP) requirements-dali.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dali.txt
	touch $(DALI_STAMP)

# Debian's chromium for the browser-app test (Playwright drives it; no browser is downloaded elsewhere).
# Needs root for apt-get; skipped when /usr/bin/chromium exists. Without it the browser test skips
# (and fails under CI=true).
setup-browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium is installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null && \
		echo "chromium: installed $$(/usr/bin/chromium --version 2>/dev/null)"; \
	else echo "chromium: not installed; run 'sudo make setup-browser' for the browser test"; fi

test: setup setup-dali
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

quickstart: setup
	$(PY) -m libs.quickstart --out quickstart

clean:
	rm -rf quickstart output .pytest_cache
