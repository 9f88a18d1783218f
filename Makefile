# The two commands the README promises: `make run` (local stack) and `make test` (whole suite).
# Both bootstrap what they need: a .venv with the package and its dev extras, and redis-server.
SERVICE := services/api-router-service
VENV    := .venv
BIN     := $(abspath $(VENV))/bin
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3

.PHONY: run test lint typecheck pytest bench bootstrap redis-server clean

run: bootstrap
	$(BIN)/api-router dev $(ARGS)

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

bootstrap: $(STAMP) redis-server

$(STAMP): $(SERVICE)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '$(SERVICE)[dev]'
	touch $@

redis-server:
	@scripts/ensure-redis-server.sh

clean:
	rm -rf $(VENV) .run
