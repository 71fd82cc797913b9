"""``stockflow simulate`` as a subprocess against the session broker and a real
worker: the seeded day goes in, the fulfilment actor answers stockflow's
releases, and orders get shipped, cancelled and never oversold."""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from ..support import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_simulate_drives_a_worker_through_fulfilment(cluster):
    w = cluster.add_worker()
    env = cluster.worker_env(free_port())
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "stockflow.cli", "simulate", "--duration", "8", "--rate", "150", "--skus", "200"],
        env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 8 s of traffic plus a drain bounded at 8 s, plus start-up and the snapshot
    assert took < 50, (took, proc.stdout)
    assert "fulfilment_updates" in proc.stdout, proc.stdout

    updates_topic = cluster.topics.fulfillment_updates
    wait_until(lambda: w.metric("stockflow_events_processed_total", {"topic": updates_topic}) > 0, 30,
               what="the worker processing fulfilment updates")

    def statuses() -> Counter:
        latest = {}
        for rec in cluster.read_all("order_status"):
            latest[rec["value"]["order_id"]] = rec["value"]["status"]
        return Counter(latest.values())

    seen = wait_until(lambda: (lambda c: c if c["shipped"] + c["delivered"] > 0 else None)(statuses()), 30,
                      interval=1.0, what="orders shipped or delivered")
    assert sum(seen.values()) > 50, seen  # ~180 orders were created

    notes = Counter(r["value"]["type"] for r in cluster.read_all("notifications"))
    assert notes["cancelled"] + notes["partially_cancelled"] > 0, notes
    assert notes["shipped"] > 0 and notes["delivered"] > 0, notes

    # The actor only reports on what was released to it: the only dead letters
    # its updates may cause are races (a cancel crossing a shipment), never an
    # unknown shipment or order, a wrong node or a malformed record.
    dead = Counter(r["value"]["error"] for r in cluster.read_all("deadletter")
                   if r["value"]["source_topic"] == updates_topic)
    assert set(dead) <= {"invalid_transition"}, dead
    assert w.metric("stockflow_oversell_violations_total") == 0
