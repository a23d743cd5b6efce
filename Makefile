# The two commands of the README. Everything else here serves them.
#   make tutorial   run every notebook, headless, quick profile -> runs/
#   make test       unit tests + every notebook under nbval (--nbval-lax)
#   make bench      the benchmark harness (not part of the two commands; see README)

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

.PHONY: tutorial test bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

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

test: $(VENV)/.installed-dev
	KDAS_PROFILE=quick MPLBACKEND=agg $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600

# Speed and memory on this machine (see kdas_utils/bench.py); writes benchmarks/results/*.json
bench: $(VENV)/.installed
	$(BIN)/python -m kdas_utils.bench --notebooks

clean:
	rm -rf runs data/synthetic .pytest_cache
