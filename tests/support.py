"""Test helpers: real workers as subprocesses, kafka-python clients, bounded waits."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stockflow.connectors.local_workers import LocalWorker, free_port, http_get, parse_metric  # noqa: F401
from stockflow.streams.topics import Topics


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def post(url: str, body: Any, headers: dict | None = None) -> tuple[int, dict]:
    """POST JSON (a dict, or raw bytes as they are) and return (status, JSON body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # not there yet (connection refused, ...)
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def order_decided(url: str, order_id: str) -> Callable[[], Any]:
    """A ``wait_until`` check: the order's status document once it is past
    ``created`` (a decision was taken), else a falsy value."""
    return lambda: (r := http_get(f"{url}/orders/{order_id}")) and r[0] == 200 and r[1]["status"] != "created" and r[1]


class WorkerProc(LocalWorker):
    """A worker under test: ``kill`` defaults to SIGKILL."""

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60.0) -> int | None:
        return self.stop(sig, timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        try:
            super().wait_ready(timeout)
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None


@dataclass
class Cluster:
    """One test's workers, topics and clients, all under a fresh prefix."""

    bootstrap: str
    base_dir: Path
    partitions: int = 8
    prefix: str = field(default_factory=lambda: unique("sf"))
    workers: list[WorkerProc] = field(default_factory=list)
    _producer: KafkaProducer | None = None

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def worker_env(self, web_port: int, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env.update(
            {
                "STOCKFLOW_KAFKA_BOOTSTRAP": self.bootstrap,
                "STOCKFLOW_TOPIC_PREFIX": self.prefix,
                "STOCKFLOW_APP_ID": self.prefix,
                "STOCKFLOW_PARTITIONS": str(self.partitions),
                "STOCKFLOW_WEB_PORT": str(web_port),
                "STOCKFLOW_DATA_DIR": str(self.base_dir),
                "STOCKFLOW_LOG_LEVEL": "info",
                "STOCKFLOW_COMMIT_INTERVAL_S": "0.5",
            }
        )
        env.update(extra or {})
        return env

    def add_worker(self, start: bool = True, extra_env: dict | None = None, **kw) -> WorkerProc:
        port = free_port()
        w = WorkerProc(self.worker_env(port, extra_env), port, self.base_dir / f"worker-{port}.log")
        self.workers.append(w)
        if start:
            w.start(**kw)
        return w

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                linger_ms=5,
                max_in_flight_requests_per_connection=1,
            )
        return self._producer

    def send(self, logical: str, key: str | bytes | None, value: Any) -> None:
        topic = self.topics.name(logical)
        k = key.encode() if isinstance(key, str) else key
        if isinstance(value, (dict, list)):
            v = json.dumps(value).encode()
        elif isinstance(value, str):
            v = value.encode()
        else:
            v = value
        self.producer.send(topic, key=k, value=v)

    def flush(self) -> None:
        self.producer.flush(timeout=60)

    def read_all(self, logical: str, timeout: float = 5.0, min_count: int = 0) -> list[dict]:
        """Every record now on a topic (values JSON-decoded), bounded in time."""
        topic = self.topics.name(logical)
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
        )
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            if not tps:
                return []
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            out: list[dict] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=300, max_records=5000)
                for records in batch.values():
                    for r in records:
                        out.append({"key": r.key.decode() if r.key else None, "value": json.loads(r.value) if r.value else None, "partition": r.partition, "offset": r.offset})
                if all(consumer.position(tp) >= end[tp] for tp in tps) and len(out) >= min_count:
                    break
                if all(consumer.position(tp) >= end[tp] for tp in tps):
                    end = consumer.end_offsets(tps)
            return out
        finally:
            consumer.close()

    def stop_workers(self, timeout: float = 30) -> None:
        """SIGTERM every worker and wait for it (a stopped one is left as is)."""
        for w in self.workers:
            w.kill(signal.SIGTERM, timeout=timeout)

    def close(self) -> None:
        self.stop_workers()
        if self._producer is not None:
            self._producer.close(timeout=5)


def node_record(node_id: str, kind: str = "store", lat: float = 52.52, lon: float = 13.40, **kw) -> dict:
    rec = {
        "node_id": node_id,
        "kind": kind,
        "lat": lat,
        "lon": lon,
        "services": ["ship", "pickup", "curbside", "same_day"],
        "daily_capacity": None,
        "safety_stock": 0,
        "cost_per_order": 5.0,
        "cost_per_km": 0.1,
        "active": True,
    }
    rec.update(kw)
    return rec


_counter = iter(range(10**12))


def movement(sku: str, node_id: str, type_: str, qty: int | None = None, event_id: str | None = None, **kw) -> dict:
    rec = {
        "event_id": event_id or f"m-{next(_counter)}-{uuid.uuid4().hex[:6]}",
        "occurred_at": now_iso(),
        "sku": sku,
        "node_id": node_id,
        "type": type_,
    }
    if qty is not None:
        rec["qty"] = qty
    rec.update(kw)
    return rec


def movement_batch(sku: str, lines: list[dict], event_id: str | None = None, **kw) -> dict:
    """The envelope form: many movements of one SKU in one record."""
    rec = {
        "event_id": event_id or f"mb-{next(_counter)}-{uuid.uuid4().hex[:6]}",
        "occurred_at": now_iso(),
        "sku": sku,
        "movements": lines,
    }
    rec.update(kw)
    return rec


def order_create(order_id: str, lines: list[tuple[str, int]], method: str = "ship", lat: float = 52.52,
                 lon: float = 13.40, pickup_node_id: str | None = None, allow_partial: bool = True,
                 allow_backorder: bool = True, occurred_at: str | None = None, email: str | None = "c@example.com",
                 channel: str = "web", event_id: str | None = None) -> dict:
    return {
        "event_id": event_id or f"oc-{order_id}-{uuid.uuid4().hex[:6]}",
        "occurred_at": occurred_at or now_iso(),
        "type": "create",
        "order_id": order_id,
        "channel": channel,
        "customer": {"customer_id": f"cust-{order_id}", "email": email, "phone": "+49301234567"},
        "lines": [{"line_id": f"L{i + 1}", "sku": sku, "qty": qty, "unit_price": 19.99} for i, (sku, qty) in enumerate(lines)],
        "delivery": {"method": method, "pickup_node_id": pickup_node_id,
                     "address": None if method in ("pickup", "curbside") else {"lat": lat, "lon": lon, "country": "DE"}},
        "allow_partial": allow_partial,
        "allow_backorder": allow_backorder,
    }
