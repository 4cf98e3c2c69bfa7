# lt-diffusion: the two commands are `make book` and `make test` (see README.md).
# Both create .venv if needed, install once (a stamp keyed on the contents of
# pyproject.toml and constraints.txt), and are quiet on success.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
JB     := $(VENV)/bin/jupyter-book

# torch and torchvision are installed first, at the versions of the lock.
TORCH_PINS := $(shell grep -E '^(torch|torchvision)==' constraints.txt)
# pip warns once per package about local index folders that some machines configure; not news.
PIP_NOISE  := is ignored: it is neither a file nor a directory
# The stamp's name changes whenever pyproject.toml or constraints.txt changes.
DEPS_HASH  := $(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
STAMP      := $(VENV)/.lt-installed-$(DEPS_HASH)

# Offline assets: ../shared/assets when it exists, unless the caller chose a folder.
ifeq ($(origin LT_DIFFUSION_ASSETS),undefined)
  ifneq ($(wildcard ../shared/assets),)
    export LT_DIFFUSION_ASSETS := $(abspath ../shared/assets)
  endif
endif

# Per-cell time limit for the smoke notebooks (seconds).
NBVAL_CELL_TIMEOUT ?= 300
# Upper bound for any single test item (pytest-timeout), so a hang cannot eat the CI budget.
TEST_TIMEOUT ?= 900
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
PYTEST_ARGS ?=

.PHONY: help book test install mathjax gpu-bundle clean distclean

help:
	@echo "make book        build the HTML book into _build/html"
	@echo "make test        unit tests, book build + browser check, smoke notebooks (nbval)"
	@echo "make gpu-bundle  pack the book-scale runs for a GPU machine (scripts/make_gpu_bundle.py)"
	@echo "make clean       remove build outputs (keeps .venv); make distclean also removes .venv"

install: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "make: installing into $(VENV) (torch: $(TORCH_PINS))"
	@$(PIP) install -q -c constraints.txt $(TORCH_PINS) 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@$(PIP) install -q -c constraints.txt -e '.[test,book]' 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@rm -f $(VENV)/.lt-installed-*
	@touch $@

mathjax:
	@scripts/vendor_mathjax.sh

book: $(STAMP) mathjax
	@mkdir -p _build
	@if ! $(JB) build -W --keep-going --all -q . > _build/book.log 2>&1; then \
	    grep -E 'WARNING|ERROR|Error' _build/book.log || tail -n 40 _build/book.log; \
	    echo "make book: the build failed; full log in _build/book.log" >&2; exit 1; \
	fi
	@echo "Book: file://$(CURDIR)/_build/html/index.html"

# One pytest run: the unit tests (tests/) and every notebook under nbval, so that the
# last line is pytest's summary. No notebooks yet is fine; a failing one fails the run.
test: $(STAMP) mathjax
	@$(PY) -m pytest -q -p no:cacheprovider \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT) --timeout=$(TEST_TIMEOUT) \
	    $(PYTEST_ARGS) tests $(NOTEBOOKS)

gpu-bundle: $(STAMP)
	@$(PY) scripts/make_gpu_bundle.py

clean:
	rm -rf _build _vendor .cache/mathjax .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache *.egg-info
