"""``stockflow bench``: throughput of one worker against the local real broker.

For now two figures (the full harness of the performance issue adds the
rest): ``ingest_eps``, inventory movements taken to committed state and
availability events end to end, and ``orders_per_s``, orders of about 3
lines allocated end to end (plan, reserve at the SKU owners, decide).
Figures are measured from the worker's own /metrics, so they include Kafka
round trips, not just Python.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from kafka import KafkaProducer

from .connectors.demo import _bootstrap, console
from .connectors.local_workers import LocalWorker, free_port
from .streams.events import Node
from .streams.topics import Topics


def _wait_metric(worker: LocalWorker, name: str, target: float, timeout: float, labels: dict | None = None) -> float:
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        try:
            value = worker.metric(name, labels)
        except (OSError, RuntimeError):
            value = 0.0
        if value >= target:
            return time.monotonic()
        time.sleep(0.2)
    raise RuntimeError(f"{name} reached {value:.0f} of {target:.0f} in {timeout}s")


def run(args) -> dict:
    rng = random.Random(args.seed)
    prefix = f"bench{datetime.now():%Y%m%d%H%M%S}"
    topics = Topics(prefix)
    data_dir = Path(os.environ.get("STOCKFLOW_DATA_DIR", ".stockflow"))
    run_dir = data_dir / "bench" / prefix
    now = datetime.now(timezone.utc).isoformat()
    with ExitStack() as stack:
        bootstrap = _bootstrap(stack, data_dir)
        env = {"STOCKFLOW_KAFKA_BOOTSTRAP": bootstrap, "STOCKFLOW_TOPIC_PREFIX": prefix,
               "STOCKFLOW_APP_ID": prefix, "STOCKFLOW_DATA_DIR": str(run_dir)}
        worker = LocalWorker.create(env, free_port(6166), run_dir / "worker.log")
        stack.callback(worker.stop, signal.SIGTERM, 30)
        worker.start(timeout=180)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, batch_size=512 * 1024)
        stack.callback(producer.close, 5)

        node_ids = [f"N{i:02d}" for i in range(args.nodes)]
        for i, nid in enumerate(node_ids):
            n = Node(node_id=nid, kind="dc" if i < 3 else "store", lat=48 + rng.random() * 6, lon=7 + rng.random() * 7,
                     services=("ship", "pickup", "same_day"), cost_per_order=3 + rng.random() * 5, cost_per_km=0.02)
            producer.send(topics.nodes, key=nid.encode(), value=n.model_dump_json().encode())
        producer.flush()
        skus = [f"B{i:05d}" for i in range(args.skus)]

        # ingest: counts spread over SKUs and nodes
        movements = []
        for i in range(args.movements):
            sku = skus[i % len(skus)]
            movements.append((sku, json.dumps({"event_id": f"bm{i}", "occurred_at": now, "sku": sku,
                                                "node_id": rng.choice(node_ids), "type": "receipt",
                                                "qty": rng.randint(5, 50)}).encode()))
        t0 = time.monotonic()
        for sku, value in movements:
            producer.send(topics.movements, key=sku.encode(), value=value)
        producer.flush()
        done = _wait_metric(worker, "stockflow_events_processed_total", len(movements), 600, {"topic": topics.movements})
        ingest_eps = len(movements) / (done - t0)

        # orders: about 3 lines each, over the stocked SKUs
        before = worker.metric("stockflow_allocations_total")
        t0 = time.monotonic()
        for i in range(args.orders):
            lines = [{"line_id": f"L{j}", "sku": rng.choice(skus), "qty": 1} for j in range(rng.choice([2, 3, 3, 4]))]
            order = {"event_id": f"bo{i}", "occurred_at": now, "type": "create", "order_id": f"BO-{i}",
                     "channel": "web", "customer": {"customer_id": f"c{i}", "email": "b@example.com"},
                     "lines": lines, "delivery": {"method": "ship", "address": {"lat": 52.5, "lon": 13.4}}}
            producer.send(topics.order_commands, key=f"BO-{i}".encode(), value=json.dumps(order).encode())
        producer.flush()
        done = _wait_metric(worker, "stockflow_allocations_total", before + args.orders, 600)
        orders_per_s = args.orders / (done - t0)
        return {
            "ingest_eps": round(ingest_eps, 1),
            "orders_per_s": round(orders_per_s, 1),
            "movements": len(movements),
            "orders": args.orders,
            "skus": args.skus,
            "nodes": args.nodes,
        }


def main(args) -> int:
    figures = run(args)
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            console.print(f"{k:>14}: {v}")
    return 0
