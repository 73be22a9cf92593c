# Zombie Lab: `make lab` opens the course, `make test` runs every test. Linux only.
#
#   make lab     set up .venv (once), then open the course in JupyterLab
#   make test    set up .venv (once), then ruff + every test (+ the `user` tests as uid 1000 when root)
#   make check   ruff + the fast tests (not marked `slow`): the inner loop, a few minutes
#   make lint    ruff only
#   make bench   the benchmarks (bench/run.py), if present
#   make clean   remove .venv and caches
#
# Variables: PYTHON=/path/to/python3 (interpreter for the venv), LAB_ARGS="--no-browser --port=8899"
# (extra arguments for jupyter lab), PYTEST_ARGS="-k zombie -x" (extra arguments for pytest),
# BENCH_ARGS (extra arguments for bench/run.py).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian's /usr/bin/python3 when there is one: a pyenv or conda python under /root or $HOME
# may be unreadable to other users, and the unprivileged test run reuses this venv.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt pyproject.toml

LAB_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

NOTEBOOK := notebooks/00-start-here.ipynb
# git keeps no empty folders: lint only what exists.
LINT_PATHS := $(wildcard labkit tests bench tools classroom)
# The lab's own init, as a child subreaper that kills and reaps everything left when its command
# ends: a failing test or benchmark cannot leave zombies or orphans on the machine.
UNDER_PAUSE := $(VPY) -m labkit.pause --subreaper --drain --
IS_ROOT := $(filter 0,$(shell id -u))

.PHONY: help venv lab test check lint bench clean

help:
	@echo "Zombie Lab (Linux only)"
	@echo "  make lab     set up .venv, then open the course in JupyterLab"
	@echo "  make test    set up .venv, then run every test (ruff, pytest; as uid 1000 too when root)"
	@echo "  make check   ruff + the fast tests (not marked slow): the inner loop"
	@echo "  make site    execute every notebook and render it to site/ (the executed edition)"
	@echo "  make lint    ruff check"
	@echo "  make bench   run bench/run.py"
	@echo "  make clean   remove .venv and caches"
	@echo "Variables: PYTHON=$(PYTHON) LAB_ARGS='$(LAB_ARGS)' PYTEST_ARGS='$(PYTEST_ARGS)'"

venv: $(STAMP)

# A real file: the venv is (re)installed only when a requirements file or pyproject.toml changes.
$(STAMP): $(REQUIREMENTS)
	@echo "==> setting up $(VENV) with $(PYTHON) ($$($(PYTHON) --version 2>&1))"
	@if [ ! -x $(VPY) ]; then \
	  $(PYTHON) -m venv $(VENV) || { \
	    rm -rf $(VENV); \
	    echo "make: could not create $(VENV) with $(PYTHON)."; \
	    echo "      Debian/Ubuntu: sudo apt-get install python3-venv make gcc"; \
	    echo "      or choose another interpreter: make PYTHON=/path/to/python3 ..."; \
	    exit 1; }; \
	fi
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -r requirements-dev.txt -e .
	@touch $@
	@echo "==> $(VENV) is ready"

# The file browser starts at the repository (as on Binder); the course opens at the notebook.
lab: $(STAMP)
	@test -e $(NOTEBOOK) || echo "make: $(NOTEBOOK) is missing; JupyterLab opens anyway"
	$(VPY) -m jupyter lab --ServerApp.root_dir="$(CURDIR)" $(if $(IS_ROOT),--allow-root) \
	  $(LAB_ARGS) $(NOTEBOOK)

lint: $(STAMP)
	$(VPY) -m ruff check $(LINT_PATHS)

# Every step runs even when an earlier one fails; the summary says what failed.
test: $(STAMP)
	@failed=""; \
	echo "==> [1/3] ruff check $(LINT_PATHS)"; \
	$(VPY) -m ruff check $(LINT_PATHS) || failed="$$failed ruff"; \
	echo "==> [2/3] pytest as uid $$(id -u), under the lab's init (python -m labkit.pause)"; \
	$(UNDER_PAUSE) $(VPY) -m pytest $(PYTEST_ARGS) || failed="$$failed pytest(uid-$$(id -u))"; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "==> [3/3] pytest as uid 1000, the tests marked 'user' (tests/as-user.sh)"; \
	  bash tests/as-user.sh $(PYTEST_ARGS) || failed="$$failed pytest(uid-1000)"; \
	else \
	  echo "==> [3/3] skipped: this run already is unprivileged (uid $$(id -u))"; \
	fi; \
	if [ -n "$$failed" ]; then echo "==> make test: FAILED:$$failed"; exit 1; fi; \
	echo "==> make test: all passed"

# The inner loop: what can be wrong in a minute or two. `make test` is still the whole suite.
check: $(STAMP)
	@failed=""; \
	echo "==> ruff check $(LINT_PATHS)"; \
	$(VPY) -m ruff check $(LINT_PATHS) || failed="$$failed ruff"; \
	echo "==> pytest -m 'not slow' as uid $$(id -u), under the lab's init"; \
	$(UNDER_PAUSE) $(VPY) -m pytest -m "not slow" $(PYTEST_ARGS) || failed="$$failed pytest"; \
	if [ -n "$$failed" ]; then echo "==> make check: FAILED:$$failed"; exit 1; fi; \
	echo "==> make check: all passed"

bench: $(STAMP)
	@if [ -f bench/run.py ]; then \
	  $(UNDER_PAUSE) $(VPY) bench/run.py $(BENCH_ARGS); \
	else \
	  echo "make: no bench/run.py yet"; \
	fi

# The executed edition: every notebook run headless here (its kernel under the lab's init, as in
# tests/test_notebooks.py) and rendered to static HTML in site/ (site/index.html links them).
.PHONY: site
site: $(STAMP)
	$(UNDER_PAUSE) $(VPY) tools/make_site.py --notebooks notebooks --out site

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
	find . -path ./.git -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
	  -type d -prune -exec rm -rf {} +
