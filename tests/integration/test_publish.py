"""Write-audit-publish on real files and real processes: versions, rollback, a publish killed
before its swap, and a reader process that stays connected through a publish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import make_build_db

from marketing_warehouse.config import load_settings
from marketing_warehouse.serve.publish import (
    PublishError,
    list_versions,
    publish,
    rollback,
)

pytestmark = pytest.mark.integration
DS = date(2026, 11, 21)
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")}
    return base | {
        "MWH_DATA_DIR": str(tmp_path / "data"),
        "MWH_KEEP_VERSIONS": "3",
        "PYTHONPATH": str(SRC),
    }


@pytest.fixture
def settings(env):
    return load_settings(env)


def served_orders(path: Path) -> int:
    """The version marker of a serving file: orders per day in kpi_daily (same on every row)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        values = con.execute("select distinct orders from marts.kpi_daily").fetchall()
    finally:
        con.close()
    assert len(values) == 1, values
    return values[0][0]


def publish_version(settings, version: int):
    make_build_db(settings, version)
    return publish(settings, DS, f"run_{version}")


def test_publish_copies_marts_and_audit_only(settings):
    result = publish_version(settings, 1)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("select schema_name from duckdb_tables()").fetchall()}
        log = con.execute("select distinct run_id from audit.publish_log").fetchall()
    finally:
        con.close()
    assert schemas == {"marts", "audit"}
    assert log == [("run_1",)]
    assert result.row_counts["marts.kpi_daily"] == 5
    assert result.version_path.exists()
    assert os.path.samefile(result.version_path, settings.warehouse_path)


def test_keeps_the_last_n_versions_and_rolls_back(settings, env):
    for version in (1, 2, 3, 4):
        publish_version(settings, version)
    versions = list_versions(settings)
    assert len(versions) == 3  # MWH_KEEP_VERSIONS
    assert [v.is_current for v in versions] == [False, False, True]
    assert served_orders(settings.warehouse_path) == 4

    # default: the version before the one being served
    back = rollback(settings)
    assert back.id == versions[1].id
    assert served_orders(settings.warehouse_path) == 3
    assert [v.is_current for v in list_versions(settings)] == [False, True, False]

    # the documented command, by a unique part of a version id
    mwh = [str(Path(sys.executable).parent / "mwh"), "rollback"]
    listing = subprocess.run([*mwh, "--list"], env=env, capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines() == [
        f"{'*' if v.is_current else ' '} {v.id}" for v in list_versions(settings)
    ]
    oldest = versions[0].id
    done = subprocess.run(
        [*mwh, "--to", oldest[:20]], env=env, capture_output=True, text=True, check=True
    )
    assert oldest in done.stdout
    assert served_orders(settings.warehouse_path) == 2

    with pytest.raises(PublishError, match="nothing earlier"):
        rollback(settings)
    bad = subprocess.run([*mwh, "--to", "no-such-version"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "no version matches" in bad.stderr

    # the next publish prunes the oldest kept versions but never the one being served
    publish_version(settings, 5)
    assert served_orders(settings.warehouse_path) == 5
    assert len(list_versions(settings)) == 3


def test_versions_follow_the_publish_order_when_the_clock_goes_back(settings, env):
    make_build_db(settings, 1)
    publish(settings, DS, "run_1", now=datetime(2026, 11, 22, 2, 0))
    make_build_db(settings, 2)
    publish(settings, DS, "run_2", now=datetime(2026, 11, 23, 2, 0))
    # the machine's clock is six years behind during the next publish
    make_build_db(settings, 3)
    publish(settings, date(2026, 11, 23), "run_3", now=datetime(2020, 11, 24, 2, 0))
    versions = list_versions(settings)
    assert [v.sequence for v in versions] == [1, 2, 3]
    assert [v.is_current for v in versions] == [False, False, True]
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        stamps = con.execute(
            "select run_id, min(published_at) from audit.publish_log group by 1 order by 1"
        ).fetchall()
    finally:
        con.close()
    assert stamps[-1] == ("run_3", datetime(2020, 11, 24, 2, 0))  # the clock, as it was

    mwh = [str(Path(sys.executable).parent / "mwh"), "rollback"]
    done = subprocess.run(mwh, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert versions[1].id in done.stdout
    assert served_orders(settings.warehouse_path) == 2

    # the next publish (clock right again) prunes the oldest, never the skewed newest
    make_build_db(settings, 4)
    publish(settings, date(2026, 11, 24), "run_4", now=datetime(2026, 11, 25, 2, 0))
    assert [v.sequence for v in list_versions(settings)] == [2, 3, 4]
    assert served_orders(settings.warehouse_path) == 4


def test_a_run_that_publishes_again_replaces_its_own_version(settings):
    publish_version(settings, 1)
    publish_version(settings, 2)
    make_build_db(settings, 3)
    for _attempt in range(4):  # the same run's task retried, e.g. after a later step failed
        publish(settings, DS, "run_2")
    versions = list_versions(settings)
    assert len(versions) == 2 and versions[-1].is_current
    assert served_orders(settings.warehouse_path) == 3
    assert served_orders(versions[0].path) == 1  # the previous run's version is still kept


def test_versions_named_before_sequence_numbers_come_first(settings):
    publish_version(settings, 1)
    (first,) = list_versions(settings)
    legacy = first.path.with_name("warehouse.20261122T020000123456.2026-11-21.a1b2c3.duckdb")
    first.path.rename(legacy)  # the name an earlier release gave it
    publish_version(settings, 2)
    versions = list_versions(settings)
    assert versions[0].id == "20261122T020000123456.2026-11-21.a1b2c3"
    assert [v.is_current for v in versions] == [False, True]
    assert versions[1].sequence == 1
    rollback(settings)
    assert served_orders(settings.warehouse_path) == 1


KILLED_PUBLISH = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import date, datetime
    from marketing_warehouse.serve import publish
    from marketing_warehouse.config import load_settings

    def die(source, serving):  # the process dies right before the atomic rename
        print("killing before swap", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    publish._swap = die
    publish.publish(load_settings(), date(2026, 11, 21), "run_killed")
    """
)


def test_a_publish_killed_before_the_swap_leaves_the_serving_file_intact(settings, env):
    publish_version(settings, 1)
    make_build_db(settings, 2)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PUBLISH], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert "killing before swap" in killed.stdout
    leftovers = list(settings.warehouse_path.parent.glob(".warehouse.*.tmp.duckdb*"))
    assert leftovers  # the half-published file is still there ...
    assert served_orders(settings.warehouse_path) == 1  # ... and readers still see version 1

    # a partially written file (a crash mid-write) is not a database, and readers never open it
    partial = settings.warehouse_path.parent / ".warehouse.run_partial.tmp.duckdb"
    partial.write_bytes(b"DUCK" + os.urandom(1000))
    assert served_orders(settings.warehouse_path) == 1

    # the next publish cleans both up and goes through
    publish_version(settings, 3)
    assert served_orders(settings.warehouse_path) == 3
    assert not list(settings.warehouse_path.parent.glob(".warehouse.*.tmp.duckdb*"))
    assert len(list(settings.layout.versions.glob("*.duckdb"))) == 2  # the killed run left none


READER = textwrap.dedent(
    """
    import json, sys
    import duckdb

    path = sys.argv[1]
    QUERY = ("select count(*), min(orders), max(orders), "
             "(select count(*) from marts.fct_orders) from marts.kpi_daily")
    con = duckdb.connect(path, read_only=True)
    print(json.dumps(con.execute(QUERY).fetchone()), flush=True)
    sys.stdin.readline()  # stays connected while the parent publishes
    print(json.dumps(con.execute(QUERY).fetchone()), flush=True)
    con.close()
    con = duckdb.connect(path, read_only=True)
    print(json.dumps(con.execute(QUERY).fetchone()), flush=True)
    con.close()
    """
)


def test_a_connected_reader_neither_blocks_nor_breaks_a_publish(settings):
    publish_version(settings, 1)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.warehouse_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = json.loads(reader.stdout.readline())
        assert before == [5, 1, 1, 5]

        # the reader holds its read-only connection while the new version is swapped in
        publish_version(settings, 2)
        assert served_orders(settings.warehouse_path) == 2

        reader.stdin.write("go\n")
        reader.stdin.flush()
        same_connection = json.loads(reader.stdout.readline())
        new_connection = json.loads(reader.stdout.readline())
        assert reader.wait(timeout=60) == 0, reader.stderr.read()
    finally:
        if reader.poll() is None:
            reader.kill()
    assert same_connection == [5, 1, 1, 5]  # still the whole of version 1, never a mix
    assert new_connection == [5, 2, 2, 10]  # a new connection sees version 2
