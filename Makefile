# The README's two commands are `make lab` and `make test`; everything else here serves them.
# Override PYTHON to use another interpreter (3.11 or newer).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test setup system check clean

# Set up, then start the workbench on its embedded defaults: JupyterLab on the guided notebooks.
lab: setup
	$(BIN)/workbench lab notebooks/01-track-and-compare.ipynb

# Set up (system tools the tests drive, when this machine can install them), then run every test.
test: system setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[serve,ui,test]"
	touch $(STAMP)

# Docker engine, Chromium, debootstrap (for the local base image) and PostgreSQL, on Debian as root.
system:
	scripts/setup-system

check: setup
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) build dist *.egg-info
