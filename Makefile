# One command per chore; .ci/run calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

NPM_INSTALLED := node_modules/.installed
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

.PHONY: run test lint fmt migrate contract spec client bench install clean

run: $(INSTALLED)
	$(BIN)/taskapi serve

test: lint
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(INSTALLED)
	$(BIN)/taskapi db upgrade

# The deep contract pass: the spec linted, TypeScript types generated and type-checked, then
# Schemathesis against live servers on SQLite and PostgreSQL (reports/contract-*.xml).
contract: spec $(INSTALLED)
	$(BIN)/python tests/contract/run.py

spec: $(NPM_INSTALLED)
	npm run --silent lint:spec
	npm run --silent types
	npm run --silent typecheck

# A Python SDK generated from the spec, into build/client (pip install ./build/client).
client: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/openapi-python-client generate \
		--path openapi/openapi.yaml --meta setup --output-path build/client --overwrite

# Timings under wrk on PostgreSQL, not part of `make test`: tests/bench/run.py, options in
# BENCH_ARGS (make bench BENCH_ARGS='--scenarios list,get'). wrk comes from apt when we are root.
bench: $(INSTALLED)
	@command -v wrk >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
			&& { apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; }; } \
		|| { echo "make bench needs wrk: apt-get install wrk (Debian, Ubuntu) or brew install wrk"; exit 1; }
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "TaskAPI needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(NPM_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) node_modules build dist .mypy_cache .pytest_cache .ruff_cache reports
