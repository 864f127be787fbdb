# The README's two commands are `make lab` and `make test`; everything else here serves them.
# Override PYTHON to use another interpreter (3.11 or newer).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov (the outside checker of the Kubernetes manifests in the tests) pins many packages that clash
# with MLflow's, so it lives in its own virtual environment.
CHECKOV := .tools/checkov/bin/checkov
# The JupyterLab extension: its own distribution, built from source with Node (npm) when installed.
EXT := extensions/workbench-jupyterlab
EXT_STAMP := $(VENV)/.labextension
EXT_SOURCES := $(EXT)/pyproject.toml $(EXT)/package.json $(EXT)/package-lock.json $(EXT)/tsconfig.json \
	$(wildcard $(EXT)/src/*.ts $(EXT)/schema/*.json $(EXT)/style/*.css $(EXT)/style/*.js $(EXT)/style/icons/*.svg \
	$(EXT)/jupyter-config/server-config/*.json)

.PHONY: lab test setup system tools check lint-ext clean

# Set up, then start the workbench on its embedded defaults: JupyterLab on the guided notebooks.
lab: setup
	$(BIN)/workbench lab notebooks/01-track-and-compare.ipynb

# Set up (system tools the tests drive, when this machine can install them), then run every test.
test: system setup tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP) $(EXT_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[serve,ui,test]"
	touch $(STAMP)

# Editable: the server extension's Python is used in place; the TypeScript is rebuilt when it changes.
# Installing enables the server extension; it changes no Lab-wide settings (`workbench lab` passes its own).
$(EXT_STAMP): $(STAMP) $(EXT_SOURCES)
	@command -v npm >/dev/null || { echo "setup: the JupyterLab extension is built with Node.js 20+ and npm; install them (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	rm -rf $(EXT)/workbench_jupyterlab/labextension
	$(BIN)/python -m pip install --quiet -e ./$(EXT)
	touch $(EXT_STAMP)

# Tools the tests run as outside checkers, each in its own environment.
tools: $(CHECKOV)

$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet --upgrade pip
	.tools/checkov/bin/python -m pip install --quiet "checkov>=3.2,<4"

# Docker engine, Chromium, debootstrap (for the local base image) and PostgreSQL, on Debian as root.
system:
	scripts/setup-system

# Static checks: mypy on the core and the widgets, the import contracts of the layers (pyproject.toml's
# [tool.importlinter]), ESLint on the extension's TypeScript. (The extension's unit tests run with the
# test suite: tests/extensions/test_frontend_model.py.)
check: setup lint-ext
	$(BIN)/python -m mypy
	$(BIN)/python -m mypy --explicit-package-bases widgets
	$(BIN)/lint-imports --no-cache

lint-ext: setup
	cd $(EXT) && npm run lint

clean:
	rm -rf $(VENV) .tools build dist *.egg-info
	rm -rf $(EXT)/node_modules $(EXT)/lib $(EXT)/build $(EXT)/tsconfig.tsbuildinfo $(EXT)/workbench_jupyterlab/labextension
