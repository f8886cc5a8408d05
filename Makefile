# orderdb — every target bootstraps what it needs (a venv in .venv, pgTAP when run as root).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test pgtap bench lint system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test,lint]'
	touch $(STAMP)

# pgTAP, pg_prove and plpgsql_check from Debian (PostgreSQL 15 packages; the embedded PostgreSQL 18
# loads the same pgTAP files). Installed when missing and we are root; otherwise the tests say how.
system-deps:
	@bash .ci/system-deps

demo: $(STAMP)
	$(BIN)/orderdb demo

test: $(STAMP) system-deps
	$(BIN)/pytest

pgtap: $(STAMP) system-deps
	$(BIN)/python -m tests.devtools pgtap

# BENCH_ARGS: more options of orderdb bench, e.g. BENCH_ARGS="--json-file bench.json"
bench: $(STAMP)
	$(BIN)/orderdb bench $(BENCH_ARGS)

lint: $(STAMP) system-deps
	$(BIN)/ruff check orderdb tests
	$(BIN)/ruff format --check orderdb tests
	$(BIN)/mypy
	$(BIN)/squawk --config .squawk.toml migrations/*.sql
	$(BIN)/python -m tests.devtools plpgsql-check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
