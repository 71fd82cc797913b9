"""``stockflow failover --json`` end to end with tiny sizes against the session broker.

Two real workers load 2,000 SKU-node keys, one is SIGKILLed, the survivor
must answer every sample right, then a fresh worker restores from the
changelog. The sizes are tiny, so the figures mean nothing here: the test
checks the output's contract (one JSON object, both figures positive and
finite, every sample answered right) and that nothing is left running.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from stockflow import failover

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_failover_json_has_both_figures(kafka_bootstrap, tmp_path):
    env = dict(os.environ)
    env["STOCKFLOW_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    env["STOCKFLOW_DATA_DIR"] = str(tmp_path)
    # the shortest session the settings allow: the kill is noticed sooner
    env["STOCKFLOW_SESSION_TIMEOUT_S"] = "6"
    env.pop("STOCKFLOW_TABLE_STANDBY_REPLICAS", None)
    argv = [sys.executable, "-m", "stockflow.cli", "failover", "--json", "--keys", "2000", "--nodes", "10",
            "--timeout-scale", "2"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]

    res = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert isinstance(res, dict)
    for k in ("failover_s", "recovery_s"):
        v = res[k]
        assert isinstance(v, (int, float)) and not isinstance(v, bool), k
        assert math.isfinite(v) and v > 0, (k, v)
    assert res["keys"] == 2000 and res["nodes"] == 10 and res["skus"] == 200
    assert res["standby_replicas"] == 1
    assert res["samples"] >= 24
    assert res["samples_right_failover"] == res["samples"]
    assert res["samples_right_recovery"] == res["samples"]
    # the kill took something away: the victim's samples went unanswered for a while
    assert 0 < res["samples_wrong_max"] <= res["samples"]
    # every local store is dropped on exit (logs stay)
    assert not list(tmp_path.glob("failover/*/worker-*/"))


def test_samples_cover_every_partition_up_to_its_last_sku():
    partitions = 8
    samples = failover.pick_samples(200, partitions, 24)
    assert len(samples) == len(set(samples)) == 24
    by_part: dict[int, list[int]] = {}
    for s in range(200):
        by_part.setdefault(failover._partition(failover.Load.sku(s).encode(), partitions), []).append(s)
    assert {failover._partition(failover.Load.sku(s).encode(), partitions) for s in samples} == set(by_part)
    assert {idx[-1] for idx in by_part.values()} <= set(samples)
