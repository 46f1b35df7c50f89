# Every target sets up .venv itself: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: venv test lint demo bench clean

$(STAMP): requirements.txt requirements-dev.txt artifacts/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .ruff_cache

demo: $(STAMP)
	bash demo/run.sh

# Benchmarks (not part of CI): wrk from Debian, MLflow (the baseline) in its own .venv-bench so the
# product's requirements never grow. See benchmarks/run.py; BENCH_ARGS="--only serving --duration 5".
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS  ?=
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BENCH_STAMP): benchmarks/requirements-bench.txt artifacts/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements-bench.txt
	@touch $(BENCH_STAMP)

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk; } \
		|| echo "warning: wrk could not be installed; the serving section will be skipped"
	@$(MAKE) --no-print-directory $(BENCH_STAMP) \
		|| echo "warning: MLflow could not be installed in $(BENCH_VENV); benchmarking our server alone"
	$(PY) benchmarks/run.py $(BENCH_ARGS)
