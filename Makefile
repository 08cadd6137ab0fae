# One command per chore; .ci/run calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

NPM_INSTALLED := node_modules/.installed
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

.PHONY: run test lint fmt migrate contract spec client deploy-check install clean

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

# The Dockerfile (hadolint), the compose file (the Compose Specification) and the Kubernetes
# manifests (rendered by kustomize, validated strictly against K8S_VERSION), all offline.
K8S_VERSION := 1.31.0
deploy-check: $(INSTALLED)
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	@mkdir -p build/k8s
	$(BIN)/kubectl kustomize deploy/k8s/base > build/k8s/base.yaml
	$(BIN)/kubectl kustomize deploy/k8s/overlays/production > build/k8s/production.yaml
	$(BIN)/kubernetes-validate --strict --kubernetes-version $(K8S_VERSION) \
		build/k8s/base.yaml build/k8s/production.yaml deploy/k8s/secret.example.yaml

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
