# The two commands of the README. Everything else here serves them.
#   make tutorial   run every notebook, headless, quick profile -> runs/
#   make test       ruff, unit tests, browser tests (Chromium) + every notebook under nbval (--nbval-lax),
#                   then every Python block of README.md as written (pytest-markdown-docs)
#   make bench      the benchmark harness (not part of the two commands; see docs/results.md)
#   make test-fast  ruff and the unit tests not marked slow (no notebooks, no browser): a few minutes
#   make book       the website: docs/ and the notebooks as make tutorial executed them -> runs/book/

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

# The real polyp frames beside the checkout (the developers' and CI's machines) are used
# when KDAS_DATA_ROOT is not set; users point KDAS_DATA_ROOT at their own copy.
SHARED_DATA := $(abspath ../shared/data/polyp256)
ifeq ($(origin KDAS_DATA_ROOT), undefined)
  ifneq ($(wildcard $(SHARED_DATA)/TrainDataset),)
    export KDAS_DATA_ROOT := $(SHARED_DATA)
  endif
endif
# Likewise the real frames of two unseen sets (CVC-ColonDB, ETIS), scored beside the data root's
# test sets by the profiles on the real data (KDAS_TEST_ROOTS; the quick profile uses its own
# synthetic unseen set).
SHARED_UNSEEN := $(abspath ../shared/data/unseen256)
ifeq ($(origin KDAS_TEST_ROOTS), undefined)
  ifneq ($(wildcard $(SHARED_UNSEEN)/TestDataset),)
    export KDAS_TEST_ROOTS := $(SHARED_UNSEEN)
  endif
endif

.PHONY: tutorial test test-fast bench book install install-dev browser lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip compiles every installed file's bytecode (about 30 s of the install). Kept on purpose: with
# --no-compile, where PYTHONDONTWRITEBYTECODE is set (CI's and the developers' machine) every new
# process compiled torch's modules again; a clean-clone make test took 954 s against 834 s with it.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

tutorial: $(VENV)/.installed
	KDAS_PROFILE=quick $(BIN)/python -m kdas_utils.tutorial --out runs

# KDAS_PROGRESS=0: no progress bars in the notebooks' kernels (kdas_utils.notebook.progress_bars).
# --durations=15: the slowest tests at the end of the log (README, "Tests and notebooks", gives the last measured time).
# README.md runs in a pytest of its own: --markdown-docs also collects every .py file it is given,
# and tests/ holds scripts that run when imported.
test: $(VENV)/.installed-dev browser lint
	KDAS_PROFILE=quick MPLBACKEND=agg KDAS_PROGRESS=0 $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=15
	MPLBACKEND=agg KDAS_PROGRESS=0 $(BIN)/python -m pytest --markdown-docs README.md docs/*.md

test-fast: $(VENV)/.installed-dev lint
	KDAS_PROFILE=quick MPLBACKEND=agg KDAS_PROGRESS=0 $(BIN)/python -m pytest tests -m "not slow" --durations=10

# ruff: the code's format and lint (settings in pyproject.toml); `make format` rewrites the code.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check --quiet kdas_utils tests conftest.py
	$(BIN)/ruff check --quiet kdas_utils tests conftest.py

format: $(VENV)/.installed-dev
	$(BIN)/ruff format --quiet kdas_utils tests conftest.py
	$(BIN)/ruff check --fix --quiet kdas_utils tests conftest.py

# Debian's Chromium for tests/test_browser.py (Playwright drives it; no browser download).
# Installed as root where apt-get exists; elsewhere the browser tests say what to install and
# are skipped (under CI=true they fail instead).
browser:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$KDAS_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test: installing Debian's chromium for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	  else \
	    echo "make test: no chromium here and no root to install it (apt-get install chromium); browser tests will be skipped"; \
	  fi; }

# Speed and memory on this machine (see kdas_utils/bench/); writes benchmarks/results/*.json
# Sphinx with MyST-NB; runs no notebook (it takes runs/notebooks/ where newer, else the committed ones).
book: $(VENV)/.installed-dev
	$(BIN)/python -m kdas_utils.book --out runs/book

bench: $(VENV)/.installed
	$(BIN)/python -m kdas_utils.bench --notebooks

clean:
	rm -rf runs data/synthetic .pytest_cache
