"""The table file: round trip, atomic writes, resume after a kill, merge, refusals, corruption."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lookup_tables import DeviceMismatchError, LookupTable, LutConfig, TableFileError, build_table
from lookup_tables.grid import backbone_key
from lookup_tables.table import sidecar_path
from tests.lookup_tables.conftest import FAST, tiny_space_dict, write_experiment


def test_round_trip_keeps_every_row_and_the_fingerprint(tiny_table_path, tiny_space):
    table = LookupTable.load(tiny_table_path)
    assert len(table) == 1 + len(tiny_space.op_shapes())
    assert backbone_key(tiny_space) in table and all(s.key in table for s in tiny_space.op_shapes())
    fp = table.fingerprint
    assert fp["backend"] == "torch" and fp["device"] == "cpu" and fp["dtype"] == "float32" and fp["threads"] == 1
    assert table.meta["protocol"]["repeats"] == 5 and table.meta["created"]
    side = json.loads(sidecar_path(tiny_table_path).read_text())
    assert side["fingerprint"] == fp and side["rows"] == len(table)
    copy = tiny_table_path.parent / "copy.parquet"
    table.save(copy)
    again = LookupTable.load(copy)
    assert again.records() == table.records()
    assert not [p for p in os.listdir(tiny_table_path.parent) if p.endswith(".tmp")]


def test_rebuild_skips_measured_rows_and_fills_missing_ones(tiny_table_path, tmp_path, tiny_space):
    path = tmp_path / "t.parquet"
    table = LookupTable.load(tiny_table_path)
    dropped = tiny_space.op_shapes()[0].key
    table.rows = table.rows.drop(index=dropped)
    table.save(path)
    kept = {k: table.row(k)["measured_at"] for k in table.keys()}
    rebuilt = build_table(tiny_space, FAST, path, progress=False)
    assert dropped in rebuilt and len(rebuilt) == len(kept) + 1
    assert {k: rebuilt.row(k)["measured_at"] for k in kept} == kept


def test_loading_while_saves_replace_the_file_never_reads_a_torn_table(tiny_table_path, tmp_path):
    """A build saves after every row while others (a second ``lut build``, ``lut show``) load
    the same file: each load must see one whole version, old or new, never a mix."""
    table = LookupTable.load(tiny_table_path)
    path = tmp_path / "t.parquet"
    LookupTable(table.rows.iloc[:1].reset_index(drop=True), table.meta).save(path)
    saves, done = [0], threading.Event()

    def save_growing_versions():
        while not done.is_set():
            n = 1 + saves[0] % len(table)  # each version differs in size from the last
            LookupTable(table.rows.iloc[:n].reset_index(drop=True), table.meta).save(path)
            saves[0] += 1

    writer = threading.Thread(target=save_growing_versions)
    writer.start()
    seen = set()
    try:
        while saves[0] < 300:
            seen.add(len(LookupTable.load(path)))
    finally:
        done.set()
        writer.join()
    assert len(seen) > 1, "no save landed between the loads"


def test_a_killed_build_leaves_a_readable_table_and_resumes(tmp_path):
    cfg = write_experiment(tmp_path / "exp.yaml", tiny_space_dict(), lut={"warmup": 2, "repeats": 60})
    out = tmp_path / "lut.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "lut", "build", cfg, "--out", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if out.exists() and len(LookupTable.load(out)) >= 2:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    partial = LookupTable.load(out)
    assert 2 <= len(partial) < 10, "the build was not caught mid-way"
    measured = {k: partial.row(k)["measured_at"] for k in partial.keys()}
    from search_spaces.space import SearchSpace

    full = build_table(SearchSpace.from_dict(tiny_space_dict()), FAST, out, progress=False)
    assert len(full) == 10
    assert {k: full.row(k)["measured_at"] for k in measured} == measured


def test_tables_of_one_device_merge_and_another_device_is_refused(tiny_table_path, tmp_path, tiny_space, mid_space):
    table = LookupTable.load(tiny_table_path)
    a = LookupTable(table.rows.iloc[:4].reset_index(drop=True), table.meta)
    b = LookupTable(table.rows.iloc[3:].reset_index(drop=True), table.meta)
    assert sorted(a.merge(b).keys()) == sorted(table.keys())
    analytic = build_table(mid_space, LutConfig(backend="analytic", device="cpu"), tmp_path / "a.parquet",
                           progress=False)
    with pytest.raises(DeviceMismatchError, match="backend="):
        table.merge(analytic)
    assert len(table.merge(analytic, allow_other_device=True)) == len(table)  # same keys, other values
    with pytest.raises(DeviceMismatchError, match="refusing to mix devices"):
        build_table(mid_space, FAST, tmp_path / "a.parquet", progress=False)


def test_a_table_of_another_dtype_is_refused_for_prediction(tiny_table_path):
    from search_spaces.space import SearchSpace

    half = SearchSpace.from_dict(tiny_space_dict(dtype="float16"))
    with pytest.raises(DeviceMismatchError, match="float32.*float16"):
        LookupTable.load(tiny_table_path).predict(half, half.empty)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_parquet_is_a_clear_error(tiny_table_path, tmp_path, damage):
    path = tmp_path / "bad.parquet"
    data = tiny_table_path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not parquet at all" * 10, "empty": b""}[damage])
    with pytest.raises(TableFileError, match="bad.parquet"):
        LookupTable.load(path)


def test_a_sidecar_that_does_not_match_is_refused(tiny_table_path, tmp_path):
    path = tmp_path / "t.parquet"
    LookupTable.load(tiny_table_path).save(path)
    side = json.loads(sidecar_path(path).read_text())
    side["fingerprint"]["device_name"] = "NVIDIA H100"
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(TableFileError, match="sidecar does not match"):
        LookupTable.load(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(TableFileError, match="not valid JSON"):
        LookupTable.load(path)
