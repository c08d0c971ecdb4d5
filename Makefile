# Titan Actors: the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   := $(CURDIR)/.titan
WEB_PORT ?= 5000
PYTEST := $(BIN)/python -m pytest --durations=15

.PHONY: run down test test-long lint bench dist clean install dev vendor

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

# The main job: a local cluster (kept running; `make down` stops it) and the quickstart pipeline.
run: $(VENV)/.installed-run
	@mkdir -p $(DATA)
	@TITAN_DATA_DIR=$(DATA) $(BIN)/titanctl up --port 0 --workers 2 --web-port $(WEB_PORT) \
		|| [ $$? -eq 1 ]
	TITAN_DATA_DIR=$(DATA) $(BIN)/titanctl submit pipelines/quickstart/pipeline.yaml --wait
	@echo "--- output of the job 'hello':"
	@TITAN_DATA_DIR=$(DATA) $(BIN)/titanctl logs hello
	@echo
	@echo "The cluster keeps running (data and logs in $(DATA))."
	@$(BIN)/python -c 'import json, sys; s = json.load(open(sys.argv[1])); \
		print("Web console: " + s["web"]["url"] if "web" in s else \
		      "Web console: not running (started with --no-web)")' $(DATA)/cluster.json
	@echo "Next:"
	@echo "  export TITAN_DATA_DIR=$(DATA)"
	@echo "  $(BIN)/titanctl submit pipelines/diamond/pipeline.yaml --wait"
	@echo "  $(BIN)/titanctl runs; $(BIN)/titanctl workers; $(BIN)/titanctl logs -f JOB"
	@echo "  make down        # stop the cluster (WEB_PORT=5001 make run: another console port)"

down: $(VENV)/.installed-run
	TITAN_DATA_DIR=$(DATA) $(BIN)/titanctl down

test: $(VENV)/.installed-dev
	$(PYTEST)

test-long: $(VENV)/.installed-dev
	$(PYTEST) -m "slow or not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src web sdk tests bench

# Re-fetch the web console's pinned front-end libraries from npm (see web/titan_web/static/vendor/VENDORED.md).
vendor:
	scripts/vendor_js.sh

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

# The wheel to install on other hosts (docs/deploy.md): dist/titan_actors-<version>-py3-none-any.whl
dist: $(VENV)/.installed-dev
	rm -rf dist build
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/*.whl

clean:
	rm -rf $(VENV) build dist .titan *.egg-info src/*.egg-info .hypothesis .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
