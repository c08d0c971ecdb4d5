# Titan Actors: the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   := $(CURDIR)/.titan
PYTEST := $(BIN)/python -m pytest --durations=15

.PHONY: run test test-long lint bench clean install dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per dependency set, renewed whenever the packaging files change.
$(VENV)/.installed-run: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,e2e]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed-run
	@mkdir -p $(DATA)
	$(BIN)/titanctl --version
	TITAN_DATA_DIR=$(DATA) $(BIN)/titanctl config show
	@echo
	@echo "Titan Actors is installed in $(VENV) (data in $(DATA))."
	@echo "The engine (master, workers, 'titanctl up', the quickstart pipeline) lands with issue 3;"
	@echo "until then 'make run' installs and shows the foundation: try '$(BIN)/titanctl --help'."

test: $(VENV)/.installed-dev
	$(PYTEST)

test-long: $(VENV)/.installed-dev
	$(PYTEST) -m "slow or not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src web sdk tests bench

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist .titan *.egg-info src/*.egg-info .hypothesis .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
