# One entry point for a fresh clone: every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
CLIENT := clients/python
NODE_STAMP := node_modules/.installed
# checkov pins its own dependency versions, so the Bicep checks get a venv of their own.
IAC_VENV := .venv-iac
IAC_STAMP := $(IAC_VENV)/.installed
PROMPT ?= A watercolor painting of a lighthouse on a rocky coast at sunrise
# The playground's end-to-end test drives Debian's chromium (playwright-core never downloads a browser).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup test lint typecheck unit integration up down demo bench clean fuzz

help:
	@echo "make demo    start the local stack and generate an image (PROMPT=\"...\")"
	@echo "make test    lint, type-check and run the whole test suite on its own stack"
	@echo "make up      start the local stack in the background (.local/stack.json)"
	@echo "make down    stop what make up started"
	@echo "make bench   print benchmark figures as JSON (FIGURES=\"overhead storage_ops\" for some)"
	@echo "make fuzz    schemathesis against the dev host for FUZZ_SECONDS (default 300)"
	@echo "make clean   remove the venv, node_modules and local state"

# The client distribution (clients/python) goes in editable, so `imagegen-client` runs the tree's code.
$(VENV_STAMP): requirements.txt requirements-dev.txt $(CLIENT)/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e ./$(CLIENT)
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(IAC_STAMP): requirements-iac.txt
	test -x $(IAC_VENV)/bin/python || $(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-iac.txt
	touch $@

setup: $(VENV_STAMP) $(NODE_STAMP) $(IAC_STAMP)

# Installed only when missing; `make demo` does not need it.
$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV_STAMP)
	$(PY) -m mypy

unit: $(VENV_STAMP) $(IAC_STAMP)
	$(PY) -m pytest tests/unit

integration: setup $(CHROMIUM)
	$(PY) -m pytest tests/integration

test: setup $(CHROMIUM)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(PY) -m pytest

up: $(VENV_STAMP) $(NODE_STAMP)
	$(PY) -m devtools.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devtools.stack down; fi

demo: $(VENV_STAMP) $(NODE_STAMP)
	$(PY) -m devtools.stack up
	$(VENV)/bin/imagegen-client "$(PROMPT)" -o images/generated_image.png

bench: setup
	@$(PY) -m bench $(FIGURES)

# The bounded run of the same test is part of make test (30 s); this one fuzzes longer.
FUZZ_SECONDS ?= 300
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MAX_EXAMPLES=500 $(PY) -m pytest tests/integration/test_fuzz.py --timeout=$$(( $(FUZZ_SECONDS) + 300 ))

clean: down
	rm -rf $(VENV) $(IAC_VENV) node_modules .local .mypy_cache .ruff_cache .pytest_cache test-output
	rm -rf $(CLIENT)/build $(CLIENT)/src/*.egg-info
