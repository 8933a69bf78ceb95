# The two commands: `make run` (the nightly job once, on demo data if landing is empty) and
# `make test` (the whole suite). Both bootstrap the virtualenv from requirements.lock first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9
# Superset has its own virtualenv: it pins SQLAlchemy < 2 and older pandas/numpy than the warehouse
BI_VENV  := .bi/venv
BI_STAMP := $(BI_VENV)/.installed-stamp

.PHONY: run test test-fast lint format airflow bench bench-extraction clean install postgres docs \
	bi bi-install chromium jre

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@echo "Installing pinned dependencies from requirements.lock ..."
	@$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.lock
	@$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	@touch $(STAMP)

## make run [DATE=YYYY-MM-DD]: run the nightly DAG once through Airflow and print a summary
run: $(STAMP)
	$(BIN)/mwh run $(if $(DATE),--date $(DATE))

## make test: lint, then the whole test suite (unit + integration; starts its own PostgreSQL) in
## two processes (pytest-xdist), each test file in one of them so that its module fixtures (a DAG
## run, a dbt build) are made once, the longest files first; the 15 slowest tests are listed at
## the end. `make bi-install` brings Superset's own virtualenv and Chromium for the BI tests.
## `mwh dbt-parse` first installs the vendored dbt packages and writes the manifest
## Cosmos renders from, once; every other dbt command writes the target folder of its own data
## folder, so the two processes never write the same dbt files
test: $(STAMP) postgres bi-install jre
	$(BIN)/ruff check src dags tests
	$(BIN)/ruff format --check src dags tests
	$(BIN)/mwh dbt-parse >/dev/null
	$(BIN)/pytest -n 2 --dist loadfile --durations=15

## make test-fast: lint, the unit tests and the dbt unit tests (no DAG run, no PostgreSQL). The dbt
## unit tests (`unit_tests:` in models/**/_<folder>__unit_tests.yml) run in
## tests/unit/test_dbt_unit_tests.py: `dbt build --empty` on the zero-row raw schema files makes
## every input exist with its column types (dbt reads them; no data is needed), then
## `dbt test --select test_type:unit` -- offline, about 30 s. Nightly builds leave them out.
## Two processes (pytest-xdist); the unit tests share no module fixture.
test-fast: $(STAMP)
	$(BIN)/ruff check src dags tests
	$(BIN)/ruff format --check src dags tests
	$(BIN)/mwh dbt-parse >/dev/null
	$(BIN)/pytest tests/unit -q -n 2

## make airflow: a real local Airflow (scheduler, dag-processor, api-server) on http://localhost:8080
airflow: $(STAMP)
	$(BIN)/mwh airflow standalone

## make postgres: install the PostgreSQL server package when initdb is missing (tests start their
## own throwaway cluster with it; needs root and Debian's registry)
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ echo "Installing the PostgreSQL server (Debian package postgresql) for the tests ..."; \
		  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

## make jre: Debian's Java runtime for Apache Spark (MWH_ENGINE=spark, and the Spark tests of
## `make test`), when java is missing (needs root and Debian's registry)
jre:
	@command -v java >/dev/null 2>&1 || \
		{ echo "Installing a Java runtime (Debian package openjdk-17-jre-headless) for Spark ..."; \
		  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

## make bi-install: Superset's own virtualenv (.bi/venv) from bi/superset-requirements.txt, and
## Debian's chromium for the dashboard screenshots of the BI tests (needs root and Debian's registry)
bi-install: $(BI_STAMP) chromium

$(BI_STAMP): bi/superset-requirements.txt $(STAMP)
	@test -x $(BI_VENV)/bin/python || $(PYTHON) -m venv $(BI_VENV)
	@echo "Installing Superset into $(BI_VENV) from bi/superset-requirements.txt ..."
	@$(BIN)/uv pip install --python $(BI_VENV)/bin/python --quiet -r bi/superset-requirements.txt
	@touch $(BI_STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || \
		{ echo "Installing Chromium (Debian package chromium) for the dashboard screenshots ..."; \
		  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## make bi: Superset on MWH_BI_URL (http://127.0.0.1:8088) on the serving DuckDB file, read-only, with
## the six dashboards of bi/superset-assets/ imported; SQLite metadata and the local admin password in
## data/bi/ (after `make run`: it needs a published warehouse)
bi: $(STAMP) $(BI_STAMP)
	$(BIN)/mwh bi start

## make docs: serve dbt docs and GX data docs on http://127.0.0.1:8081
docs: $(STAMP)
	$(BIN)/mwh docs

## make bench [SCALES=0.1,1 | SCALE=s] [DAYS=n]: at each scale, demo data, then the nightly run,
## dbt alone, the DuckDB floor and an incremental night; then the incremental night's growth from
## the smallest to the largest scale, the demo `make run` twice and the targets table, in one
## invocation (default scales: bench.DEFAULT_SCALES); JSON in data/bench/bench-<scales>-<time>.json
bench: $(STAMP)
	$(BIN)/mwh bench full $(if $(SCALES),--scales $(SCALES)) $(if $(SCALE),--scale $(SCALE)) \
		$(if $(DAYS),--days $(DAYS))

## make bench-extraction [LINES=1000000]: extraction throughput beside DuckDB's own read_csv
bench-extraction: $(STAMP)
	$(BIN)/mwh bench extraction $(if $(LINES),--lines $(LINES))

lint: $(STAMP)
	$(BIN)/ruff check src dags tests

format: $(STAMP)
	$(BIN)/ruff format src dags tests
	$(BIN)/ruff check --fix src dags tests

clean:
	rm -rf data .airflow dbt_project/target dbt_project/logs
