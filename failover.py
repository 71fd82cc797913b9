"""``stockflow failover``: the two reliability figures, on the local real broker.

- ``failover_s``: two workers in one consumer group (standby replicas as
  configured, 1 by default) hold K SKU-node keys; one is SIGKILLed, and the
  figure is the seconds from the kill until one round of ``GET /atp/{sku}``
  through the survivor answers 200 with the right figures for every sample.
- ``recovery_s``: the survivor is stopped and a fresh worker with an empty
  local store started: seconds from its start until /ready and the same
  sampled answers are right, i.e. the K keys restored from the changelog.

The samples are spread over every partition and include each partition's
last SKU: its `count` movements are the partition's last records, so a right
answer for it means the whole partition is in (in-order processing).

Progress goes to stderr; stdout carries a table, or exactly one JSON object
with ``--json``. Every process started here is stopped on exit, error or
Ctrl-C (SIGTERM too); every wait is bounded (``--timeout-scale``).
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .bench import (Producer, _bootstrap, _cleanup_stores, _interrupt, _metric, _nodes, _settings, _wait,
                    _worker_env, err, say)
from .connectors.local_workers import LocalWorker, free_port, http_get
from .streams.topics import Topics

WHAT = {
    "failover_s": "SIGKILL one of two workers until every sampled SKU answers right through the survivor (s)",
    "recovery_s": "fresh worker, empty store: restore from the changelog to /ready + right ATP (s)",
}


@dataclass(frozen=True)
class Load:
    """K SKU-node keys: ceil(K / nodes) SKUs x nodes, one `count` each."""

    skus: int
    node_ids: tuple[str, ...]

    @property
    def keys(self) -> int:
        return self.skus * len(self.node_ids)

    @staticmethod
    def sku(s: int) -> str:
        return f"F{s:07d}"

    @staticmethod
    def qty(s: int, j: int) -> int:
        # deterministic, so the expected answer needs no bookkeeping
        return (s * 7 + j * 13) % 97 + 1

    def want(self, s: int) -> dict[str, int]:
        return {nid: self.qty(s, j) for j, nid in enumerate(self.node_ids)}


def _partition(key: bytes, partitions: int) -> int:
    """Kafka's default (murmur2) partition: the producer's, aiokafka's and Faust's router's."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def pick_samples(n_skus: int, partitions: int, want: int) -> list[int]:
    """About ``want`` SKUs, the same number from every partition, first to last of each."""
    by_part: list[list[int]] = [[] for _ in range(partitions)]
    for s in range(n_skus):
        by_part[_partition(Load.sku(s).encode(), partitions)].append(s)
    per = max(1, math.ceil(want / partitions))
    out: list[int] = []
    for idx in by_part:
        if not idx:
            continue
        # the last one always: it proves the partition fully loaded
        spots = {len(idx) - 1}
        if per > 1:
            spots |= {round(i * (len(idx) - 1) / (per - 1)) for i in range(per)}
        out.extend(idx[i] for i in sorted(spots))
    return out


def wrong_samples(worker: LocalWorker, load: Load, samples: list[int]) -> list[int]:
    """The samples the worker does not answer right now (200 and every node's ATP)."""
    bad = []
    for s in samples:
        try:
            status, body = http_get(f"{worker.url}/atp/{load.sku(s)}", timeout=3)
        except OSError:
            bad.append(s)
            continue
        got = {r["node_id"]: r["atp"] for r in body.get("nodes", [])} if status == 200 and isinstance(body, dict) \
            else None
        if got != load.want(s):
            bad.append(s)
    return bad


def _produce(bootstrap: str, topics: Topics, load: Load, stack: ExitStack) -> float:
    producer = Producer(bootstrap)
    stack.callback(producer.close)
    _nodes(producer, topics, list(load.node_ids), random.Random(5))
    now = datetime.now(timezone.utc).isoformat()
    say(f"producing {load.keys:,} count movements ({load.skus:,} SKUs x {len(load.node_ids)} nodes) "
        f"to {topics.movements}")
    t0 = time.monotonic()
    for s in range(load.skus):
        sku = load.sku(s)
        k = sku.encode()
        for j, nid in enumerate(load.node_ids):
            producer.send(topics.movements, k, json.dumps(
                {"event_id": f"f{s}-{j}", "occurred_at": now, "sku": sku, "node_id": nid, "type": "count",
                 "qty": load.qty(s, j)}).encode())
    producer.flush(600)
    return time.monotonic() - t0


class WorkerDied(Exception):
    """Not a RuntimeError on purpose: ``_wait`` retries those until its bound,
    and a dead worker will not come back."""


def _alive(*workers: LocalWorker) -> None:
    for w in workers:
        if not w.alive():
            raise WorkerDied(f"worker :{w.web_port} exited {w.proc.returncode}; log {w.log_path}:\n{w.tail()}")


def _wait_loaded(workers: list[LocalWorker], topic: str, load: Load, samples: list[int], timeout: float) -> None:
    """Until the samples are right, with a progress line now and then (a full
    load takes many minutes on a small machine)."""
    label = {"topic": topic}
    last_say = [time.monotonic()]

    def check() -> bool:
        _alive(*workers)
        if time.monotonic() - last_say[0] >= 15:
            last_say[0] = time.monotonic()
            done = sum(_metric(w, "stockflow_events_processed_total", label) for w in workers)
            say(f"  loading: {done:,.0f} of {load.keys:,} movements processed")
        return not wrong_samples(workers[0], load, samples)

    _wait("two workers: every sampled SKU right", check, timeout, every=1.0)


def _wait_standby_settled(survivor: LocalWorker, timeout: float) -> bool:
    """Until the survivor's consumer lag (its standby changelogs included)
    holds still across a gauge update (every 5 s): the standbys have caught
    up, so the kill measures a warm take-over, not a catch-up. False on timeout."""
    seen: list[float] = []

    def check() -> bool:
        _alive(survivor)
        seen.append(_metric(survivor, "stockflow_consumer_lag"))
        return len(seen) >= 2 and seen[-1] == seen[-2]

    try:
        _wait("survivor: standby replicas caught up", check, timeout, every=5.5)
        return True
    except RuntimeError:
        return False


def _measure_failover(victim: LocalWorker, survivor: LocalWorker, load: Load, samples: list[int],
                      timeout: float) -> tuple[float, int]:
    """(seconds from the SIGKILL to a round with every sample right, most samples wrong in one round)."""
    worst = [0]

    def check():
        _alive(survivor)
        bad = wrong_samples(survivor, load, samples)
        worst[0] = max(worst[0], len(bad))
        return not bad and time.monotonic()  # the end of the round: all of it was right

    t_kill = time.monotonic()
    victim.stop(signal.SIGKILL, 30)
    done = _wait("fail-over: every sampled SKU right through the survivor", check, timeout, every=0.2)
    return done - t_kill, worst[0]


def _measure_recovery(fresh: LocalWorker, store: Path, load: Load, samples: list[int], timeout: float) -> float:
    shutil.rmtree(store, ignore_errors=True)  # empty: everything must come from the changelog
    t0 = time.monotonic()
    fresh.start(wait_ready=False)
    fresh.wait_ready(timeout)

    def check():
        _alive(fresh)
        return not wrong_samples(fresh, load, samples) and time.monotonic()

    done = _wait("recovered worker: every sampled SKU right", check, timeout, every=0.2)
    return done - t0


def run(args) -> dict:
    if args.keys < 1 or args.nodes < 1 or args.samples < 1:
        raise RuntimeError("sizes: --keys, --nodes and --samples must be > 0")
    n_nodes = min(args.nodes, args.keys)
    load = Load(math.ceil(args.keys / n_nodes), tuple(f"FN{i:02d}" for i in range(n_nodes)))
    slow = max(1.0, args.timeout_scale)
    stamp = f"failover{datetime.now():%Y%m%d%H%M%S}"
    data_dir = Path(os.environ.get("STOCKFLOW_DATA_DIR", ".stockflow"))
    run_dir = (data_dir / "failover" / stamp).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    t_run = time.monotonic()
    with ExitStack() as stack:
        stack.callback(_cleanup_stores, run_dir)
        bootstrap = _bootstrap(stack, data_dir)
        from .streams.admin import ensure_topics

        settings = _settings(bootstrap, stamp, run_dir)
        ensure_topics(settings)
        topics = Topics(stamp)
        samples = pick_samples(load.skus, settings.partitions, args.samples)
        out["produce_s"] = _produce(bootstrap, topics, load, stack)

        env = _worker_env(bootstrap, stamp, run_dir)
        workers = []
        for name in ("a", "b"):
            w = LocalWorker.create(env, free_port(), run_dir / f"worker-{name}.log")
            stack.callback(w.stop, signal.SIGTERM, 60)
            workers.append(w.start(wait_ready=False))
        say(f"two workers (:{workers[0].web_port}, :{workers[1].web_port}) loading {load.keys:,} keys; "
            f"{len(samples)} samples over {settings.partitions} partitions")
        t0 = time.monotonic()
        for w in workers:
            w.wait_ready(slow * 180)
        _wait_loaded(workers, topics.movements, load, samples, slow * (300 + load.keys / 100))
        out["load_s"] = time.monotonic() - t0
        victim, survivor = workers
        out["standby_settled"] = _wait_standby_settled(survivor, slow * (60 + load.keys / 5000))
        if not out["standby_settled"]:
            say("[yellow]the survivor's lag did not settle: the fail-over may include standby catch-up[/]")

        say(f"failover_s: SIGKILL :{victim.web_port}, asking :{survivor.web_port}")
        out["failover_s"], out["samples_wrong_max"] = _measure_failover(
            victim, survivor, load, samples, slow * (120 + load.keys / 2000))
        out["samples_right_failover"] = len(samples)  # the measurement ends on a round with all right

        say(f"recovery_s: fresh worker, empty store, restoring {load.keys:,} keys from the changelog")
        survivor.stop(signal.SIGTERM, 120)
        port = free_port()
        fresh = LocalWorker.create(env, port, run_dir / "worker-fresh.log")
        stack.callback(fresh.stop, signal.SIGTERM, 60)
        store = settings.model_copy(update={"web_port": port}).worker_dir()
        out["recovery_s"] = _measure_recovery(fresh, store, load, samples, slow * (300 + load.keys / 1000))
        out["samples_right_recovery"] = len(samples)
        fresh.stop(signal.SIGTERM, 60)
    out.update(keys=load.keys, skus=load.skus, nodes=len(load.node_ids), samples=len(samples),
               partitions=settings.partitions, standby_replicas=settings.table_standby_replicas,
               session_timeout_s=settings.session_timeout_s, seconds=time.monotonic() - t_run)
    return _rounded(out)


def _rounded(out: dict) -> dict:
    # the two figures first, as the issue lists them
    first = {k: out[k] for k in ("failover_s", "recovery_s", "keys")}
    rest = {k: v for k, v in out.items() if k not in first}
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in {**first, **rest}.items()}


def main(args) -> int:
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: everything started is stopped
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        res = run(args)
    except (RuntimeError, WorkerDied) as exc:
        err.print(f"[red]stockflow failover: {exc}[/]")
        return 1
    if args.json:
        print(json.dumps(res))
        return 0
    t = Table(title="stockflow failover")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("what")
    for k, what in WHAT.items():
        t.add_row(k, f"{res[k]:.1f}", what)
    Console().print(t)
    say(", ".join(f"{k} {v}" for k, v in res.items() if k not in WHAT))
    return 0
