# One command per chore; .ci/run calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The development set (the `dev` extra) and the runtime set, each exactly as uv.lock has it.
INSTALLED := $(VENV)/.installed
RUNTIME_INSTALLED := $(VENV)/.installed-runtime
# uv installs from uv.lock; it comes from PyPI through the machine's own pip, so nothing but
# Python needs to be there first. Bumped by hand (CONTRIBUTING.md).
UV_VERSION := 0.13.10
UV := build/uv/bin/uv
export UV_PYTHON_DOWNLOADS := never

NPM_INSTALLED := node_modules/.installed
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

.PHONY: run test reliability lint types fmt migrate contract spec examples compat client browser pgbouncer ha-tools ha prometheus bench deploy-check install lock audit sbom clean

# The runtime set only: no test or lint tools, so a first `make run` is quick.
run: $(RUNTIME_INSTALLED)
	$(BIN)/taskapi serve

# With npm around, the pinned node tools come too: tests/test_browser.py drives Chromium with them.
test: lint $(if $(shell command -v npm),$(NPM_INSTALLED))
	$(BIN)/pytest -m "not ha" --junitxml=reports/pytest.xml

# The HA suite alone, apart from `make test`: TaskAPI on a pg_auto_failover formation behind
# PgBouncer, through a planned failover and the SIGKILL of a primary (tests/test_ha.py).
ha: $(INSTALLED) ha-tools pgbouncer
	$(BIN)/pytest -m ha --junitxml=reports/ha.xml tests/test_ha.py

# The reliability suite alone: a login flood, a PostgreSQL outage, SIGTERM with requests in
# flight and a soak, against `taskapi serve --workers 2` on a PostgreSQL cluster of its own
# (initdb and pg_ctl). `make test` runs it too; its figures close pytest's output.
reliability: $(INSTALLED)
	$(BIN)/pytest -m reliability tests/reliability

lint: $(INSTALLED)
	$(UV) lock --check --offline \
		|| { echo "uv.lock does not match pyproject.toml: run make lock"; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(BIN)/zizmor --offline --quiet .github/workflows
	$(BIN)/pre-commit validate-config .pre-commit-config.yaml
	@$(BIN)/datamodel-codegen $(SPEC_TYPES_OPTIONS) --output $(VENV)/spec_types.py
	@diff -u $(SPEC_TYPES) $(VENV)/spec_types.py \
		|| { echo "$(SPEC_TYPES) is not what openapi/openapi.yaml says: run make types"; exit 1; }

# The spec's schemas and the list's query parameters as TypedDicts, for handlers, serializers
# and mypy. Run it after every change to openapi/openapi.yaml; make lint fails until then.
SPEC_TYPES := taskapi/web/spec_types.py
SPEC_TYPES_OPTIONS := --input openapi/openapi.yaml --input-file-type openapi \
	--openapi-scopes schemas parameters paths --use-operation-id-as-name \
	--output-model-type typing.TypedDict --no-use-closed-typed-dict --strict-nullable \
	--enum-field-as-literal all --target-python-version 3.11 --disable-timestamp \
	--formatters ruff-format ruff-check \
	--custom-file-header '"""The spec'"'"'s types, generated from openapi/openapi.yaml by `make types`: do not edit."""'

types: $(INSTALLED)
	$(BIN)/datamodel-codegen $(SPEC_TYPES_OPTIONS) --output $(SPEC_TYPES)

fmt: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(INSTALLED)
	$(BIN)/taskapi db upgrade

# The deep contract pass: the spec linted, TypeScript types generated and type-checked, the
# spec compared with its last release, then Schemathesis against live servers on SQLite and
# PostgreSQL (reports/contract-*.xml). The published examples run in `make test`.
contract: spec compat $(INSTALLED)
	$(BIN)/python tests/contract/run.py

# What changed for clients since the newest release in openapi/released/: fails on a breaking
# change and lists the notes (renames in generated SDKs). `make test` runs the same check
# against every release of the current major version (tests/test_spec_compat.py).
compat: $(INSTALLED)
	$(BIN)/python tests/contract/compat.py --accept openapi/accepted-breaks.yaml \
		$$(ls openapi/released/*.yaml | sort -V | tail -n 1) openapi/openapi.yaml

# examples/ type-checked and run against live servers on both databases. `make test` runs the
# same tests, but skips the TypeScript one until the npm tools are installed.
examples: $(INSTALLED) $(NPM_INSTALLED)
	$(BIN)/pytest tests/test_examples.py

spec: $(NPM_INSTALLED)
	npm run --silent lint:spec
	npm run --silent types
	npm run --silent typecheck

# A Python SDK generated from the spec, into build/client (pip install ./build/client).
client: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/openapi-python-client generate \
		--path openapi/openapi.yaml --meta setup --output-path build/client --overwrite

# Chromium for tests/test_browser.py: Debian's package, installed with apt-get when it is missing
# (as root, or through passwordless sudo). Playwright never downloads a browser of its own.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
browser: $(NPM_INSTALLED)
	$(call debian_tool,browser,[ -x "$(CHROMIUM)" ],$(CHROMIUM) --version 2>/dev/null,chromium fonts-dejavu-core,tests/test_browser.py)

# PgBouncer for tests/test_pgbouncer.py.
pgbouncer:
	$(call debian_tool,pgbouncer,command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ],/usr/sbin/pgbouncer --version | head -n 1,pgbouncer,tests/test_pgbouncer.py)

# pg_auto_failover for tests/test_ha.py: pg_autoctl, and the monitor's extension for Debian's
# PostgreSQL 15 (the server the tests' clusters run on).
ha-tools:
	$(call debian_tool,ha-tools,command -v pg_autoctl >/dev/null,pg_autoctl --version | head -n 1,postgresql-15-auto-failover,tests/test_ha.py)

# Prometheus and promtool for tests/test_prometheus.py and deploy-check's rule tests.
PROMETHEUS ?= /usr/bin/prometheus
prometheus:
	$(call debian_tool,prometheus,[ -x "$(PROMETHEUS)" ] && command -v promtool >/dev/null,$(PROMETHEUS) --version 2>&1 | head -n 1,prometheus,tests/test_prometheus.py)

# $(call debian_tool,NAME,CHECK,VERSION,PACKAGES,TESTS): a tool from Debian's packages for the
# tests that need it. Installed with apt-get (as root, or through passwordless sudo) when the
# shell test CHECK fails, with `apt-get update` only if the plain install does; without apt-get,
# TESTS skip, saying why. VERSION is a command that prints what is installed.
define debian_tool
	@if $(2); then \
		echo "$(1): $$($(3))"; \
	elif command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get install -y -qq --no-install-recommends $(4) \
			|| { $(SUDO) apt-get update -qq \
				&& $(SUDO) apt-get install -y -qq --no-install-recommends $(4); }; \
	else \
		echo "$(1): not installed and no apt-get; $(5) will skip"; \
	fi
endef

# Timings under wrk on PostgreSQL, not part of `make test`: tests/bench/run.py, options in
# BENCH_ARGS (make bench BENCH_ARGS='--scenarios list,get'). wrk comes from apt when we are root.
BENCH_VENV := build/bench-venv
# TaskAPI as the image installs it: the locked runtime set with the tracing extra (loaded only
# when an OTEL_* variable turns traces on) and the package itself, not editable.
$(BENCH_VENV)/.installed: $(UV) uv.lock pyproject.toml openapi/openapi.yaml $(shell find taskapi migrations -name '*.py')
	rm -rf $(BENCH_VENV)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --frozen --no-editable --extra tracing \
		--quiet --python $(PYTHON)
	@touch $@

bench: $(INSTALLED) $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
			&& { apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; }; } \
		|| { echo "make bench needs wrk: apt-get install wrk (Debian, Ubuntu) or brew install wrk"; exit 1; }
	TASKAPI_BIN=$(CURDIR)/$(BENCH_VENV)/bin/taskapi $(BIN)/python -m tests.bench.run $(BENCH_ARGS)

# The Dockerfile (hadolint), the compose file (the Compose Specification), the Kubernetes
# manifests (rendered by kustomize, validated strictly against K8S_VERSION) and the alert rules
# (promtool's checks and the unit tests beside them), all offline.
K8S_VERSION := 1.31.0
deploy-check: $(INSTALLED) prometheus
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	@mkdir -p build/k8s
	$(BIN)/kubectl kustomize deploy/k8s/base > build/k8s/base.yaml
	$(BIN)/kubectl kustomize deploy/k8s/overlays/production > build/k8s/production.yaml
	$(BIN)/kubernetes-validate --strict --kubernetes-version $(K8S_VERSION) \
		build/k8s/base.yaml build/k8s/production.yaml deploy/k8s/secret.example.yaml

install: $(INSTALLED)

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "TaskAPI needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
		--no-deps --target build/uv uv==$(UV_VERSION)

# Exactly the locked development set: anything else in the venv is removed.
$(INSTALLED): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra dev --quiet --python $(PYTHON)
	@touch $@ $(RUNTIME_INSTALLED)

# The locked runtime set; a venv that has the development set already keeps it.
$(RUNTIME_INSTALLED): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --inexact --quiet --python $(PYTHON)
	@touch $@

# Resolve pyproject.toml's ranges into uv.lock: after changing a dependency (versions already
# locked stay unless the change needs others), or with LOCK_ARGS=--upgrade to take every new
# release the ranges allow. `make lint` fails while the lock and pyproject.toml disagree.
lock: $(UV)
	$(UV) lock $(LOCK_ARGS)

# What the runtime set is (CycloneDX, the image carries the same) and what is known against it.
sbom: $(UV)
	@mkdir -p reports
	$(UV) export --frozen --format cyclonedx1.5 --quiet --output-file reports/sbom.cdx.json

audit: $(INSTALLED)
	@mkdir -p reports
	$(BIN)/python tests/audit.py reports/pip-audit.json

$(NPM_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) node_modules build dist .mypy_cache .pytest_cache .ruff_cache reports
