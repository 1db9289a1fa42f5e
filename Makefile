# Two commands do everything: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what it needs on first use.
# CPU torch by default; for a CUDA build: make demo TORCH=torch  (or any pip spec of a CUDA wheel).

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-slow test-gpu bench studies setup browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sslsan demo $(ARGS)

# The page test (tests/test_serve.py) drives a real headless Chromium: Debian's package, installed here once
# when missing (as root, e.g. CI); Playwright only drives it and never downloads a browser. Without it that
# test fails, unless SSLSAN_ALLOW_NO_BROWSER=1 (or SSLSAN_CHROMIUM=/path/to/chromium points at another one).
browser:
	@if [ -x /usr/bin/chromium ] || [ -x "$$SSLSAN_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test (once)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium fonts-dejavu-core; } > /tmp/sslsan-apt-chromium.log 2>&1 \
		|| { tail -5 /tmp/sslsan-apt-chromium.log; echo "warning: could not install chromium: the browser test will fail"; }; \
	else \
		echo "note: no chromium, and apt-get needs root: the browser test fails unless SSLSAN_ALLOW_NO_BROWSER=1"; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The CUDA path against the CPU (tests/test_gpu.py; skipped without CUDA). Needs a CUDA build of torch:
# make test-gpu TORCH=torch  (on a fresh .venv)
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu -rs

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The experiments behind docs/demo_results.md: the demo's recipe at 96/160/224 px, per-epoch snapshots and the
# Table-4 rows, 3 seeds each, then the tables (benchmarks/results/demo_studies/tables.md). About 5 CPU-hours;
# every step resumes. Not part of `make test`.
STUDY = nice -n 10 $(BIN)/python benchmarks/demo_studies.py
studies: $(STAMP)
	$(STUDY) data
	$(STUDY) budget --seeds 0 1 2
	$(STUDY) train --size 96 --seeds 0 1 2 --variants s s_ls n n_ln s_n
	$(STUDY) train --size 160 --seeds 0 1 2
	$(STUDY) train --size 224 --seeds 0 1 2
	$(STUDY) report

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
