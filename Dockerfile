# The project's Airflow image: the official Airflow image plus our pinned dependencies and package.
FROM apache/airflow:3.3.2-python3.11

USER airflow
# The runtime lock: the versions of requirements.lock without the dev extra (pytest, ruff ...),
# which only `make` installs for the tests.
COPY --chown=airflow:root requirements-runtime.lock /opt/mwh/requirements-runtime.lock
RUN pip install --no-cache-dir -r /opt/mwh/requirements-runtime.lock
COPY --chown=airflow:root pyproject.toml README.md /opt/mwh/
COPY --chown=airflow:root src /opt/mwh/src
RUN pip install --no-cache-dir --no-deps -e /opt/mwh
COPY --chown=airflow:root dags /opt/mwh/dags
COPY --chown=airflow:root dbt_project /opt/mwh/dbt_project
COPY --chown=airflow:root expectations /opt/mwh/expectations
COPY --chown=airflow:root bi /opt/mwh/bi
# The manifest Cosmos renders the dbt tasks from, built once into the image.
RUN MWH_PROJECT_DIR=/opt/mwh MWH_DATA_DIR=/tmp/mwh mwh dbt-parse
ENV MWH_PROJECT_DIR=/opt/mwh
