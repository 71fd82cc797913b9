"""``stockflow bench``: stockflow against its baselines on the local real broker.

One run measures (``FIGURES``, the keys of ``--json``):

- ``raw_limit_eps``: a plain aiokafka consumer over the movements topic
  (assigned all partitions, from the beginning), orjson decode, a dict
  update per (sku, node): the ceiling for any Python consumer. The median
  of ``RAW_PASSES`` passes, each a fresh consumer.
- ``naive_faust_eps``: a one-event-at-a-time Faust agent with a RocksDB table
  over the same topic (``bench_naive_faust``, its own process).
  An extra figure beside it, ``faust_floor_eps``: Faust set up as the worker
  sets it up, doing nothing with the events (``bench_naive_faust --floor``),
  and ``output_floor_eps``: the same, writing the four records the worker
  writes per movement and nothing else (``--floor --outputs``).
- ``quix_eps``: the same aggregation with Quix Streams (``bench_quix``, its
  own process).
- ``ingest_eps`` / ``ingest_ratio``: a stockflow worker taking the same
  movements to committed state (tables, changelog, availability events).
- ``orders_per_s``: orders of about 3 lines allocated end to end (an extra
  figure beside it, ``records_per_order``: what the worker wrote for them,
  per topic, from the run's topics' end offsets before and after; another,
  ``orders_domain_us``: the same orders through the worker's pure functions
  in this process, no broker, ``bench_domain``).
- ``order_p50_ms`` / ``order_p99_ms``: create command to allocation decision
  (the records' Kafka timestamps) at a fixed offered load.
- ``rss_mb``: peak resident memory (VmHWM) of a worker holding K SKU-node keys.
- ``recovery_s``: a fresh worker with an empty local store restoring them
  from the changelog until /ready and a correct ATP answer.

The four throughput figures read the same pre-produced backlog of N
movements, and each is the events taken between the (N/10)-th and the N-th
divided by the time in between: the first tenth is an untimed warm-up, so
no figure includes process start, group join, recovery or producing. Progress goes to stderr; stdout
carries the table, or exactly one JSON object with ``--json``.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

from rich.console import Console
from rich.table import Table

from . import bench_domain
from .connectors.local_workers import LocalWorker, free_port, http_get
from .streams.events import MAX_BATCH_MOVEMENTS, Node
from .streams.topics import Topics

FIGURES = (
    "raw_limit_eps",
    "naive_faust_eps",
    "quix_eps",
    "ingest_eps",
    "ingest_ratio",
    "orders_per_s",
    "order_p50_ms",
    "order_p99_ms",
    "rss_mb",
    "recovery_s",
)

WHAT = {
    "raw_limit_eps": "plain aiokafka consumer, orjson decode, dict update (events/s)",
    "naive_faust_eps": "one-event-at-a-time Faust agent + RocksDB table (events/s)",
    "quix_eps": "Quix Streams, stateful per-key sum, RocksDB state (events/s)",
    "ingest_eps": "stockflow worker: movements to tables, changelog, availability events (events/s)",
    "ingest_ratio": "ingest_eps / raw_limit_eps",
    "orders_per_s": "orders of ~3 lines allocated end to end by one worker",
    "order_p50_ms": "create command to allocation decision, median (ms)",
    "order_p99_ms": "create command to allocation decision, 99th percentile (ms)",
    "rss_mb": "peak resident memory of the worker holding the SKU-node keys (MiB)",
    "recovery_s": "fresh worker, empty store: restore from the changelog to /ready + right ATP (s)",
}

# The raw consumer reads a default backlog in about a tenth of a second, and
# one pass moved by up to 55% between runs minutes apart (docs/benchmarks.md,
# session 21): the median of several steadies ``ingest_ratio``'s denominator.
RAW_PASSES = 5

DOC_START = "<!-- bench:start -->"
DOC_END = "<!-- bench:end -->"
DOC_PATH = Path(__file__).resolve().parent / "docs" / "benchmarks.md"

err = Console(stderr=True)


def say(msg: str) -> None:
    err.print(f"[dim]{datetime.now():%H:%M:%S}[/] {msg}")


# ----------------------------------------------------------------- helpers
def _bootstrap(stack: ExitStack, data_dir: Path) -> str:
    given = os.environ.get("STOCKFLOW_KAFKA_BOOTSTRAP")
    if given:
        say(f"Kafka: using {given} (STOCKFLOW_KAFKA_BOOTSTRAP)")
        return given
    from .kafka_local import broker

    kafka_dir = data_dir / "kafka"
    running = broker.status(kafka_dir)
    if running:
        say(f"Kafka: already running at {running.bootstrap}")
        return running.bootstrap
    say("Kafka: starting the local Apache Kafka broker...")
    info = broker.start(port=free_port(9092), data_dir=kafka_dir)
    stack.callback(broker.stop, kafka_dir)
    say(f"Kafka: {info.bootstrap}")
    return info.bootstrap


def _settings(bootstrap: str, prefix: str, run_dir: Path):
    from .settings import load

    return load(kafka_bootstrap=bootstrap, topic_prefix=prefix, app_id=prefix, data_dir=run_dir)


def _worker_env(bootstrap: str, prefix: str, run_dir: Path) -> dict:
    return {"STOCKFLOW_KAFKA_BOOTSTRAP": bootstrap, "STOCKFLOW_TOPIC_PREFIX": prefix,
            "STOCKFLOW_APP_ID": prefix, "STOCKFLOW_DATA_DIR": str(run_dir)}


class Producer:
    """Bulk producing with Kafka's default (murmur2) partitioner: confluent-kafka
    when installed (it comes with quixstreams), kafka-python otherwise."""

    def __init__(self, bootstrap: str, linger_ms: int = 20) -> None:
        try:
            from confluent_kafka import Producer as CProducer
        except ImportError:
            CProducer = None
        if CProducer is not None:
            self._c = CProducer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                                 "partitioner": "murmur2_random", "queue.buffering.max.messages": 500_000,
                                 "batch.size": 1_000_000, "enable.idempotence": False})
            self._k = None
        else:
            from kafka import KafkaProducer

            self._c = None
            self._k = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms,
                                    batch_size=512 * 1024)

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int | None = None) -> None:
        if self._c is not None:
            while True:
                try:
                    if timestamp_ms is None:
                        self._c.produce(topic, value=value, key=key)
                    else:
                        self._c.produce(topic, value=value, key=key, timestamp=timestamp_ms)
                    break
                except BufferError:
                    self._c.poll(0.05)
            self._c.poll(0)
        else:
            self._k.send(topic, key=key, value=value, timestamp_ms=timestamp_ms)

    def flush(self, timeout: float = 120.0) -> None:
        if self._c is not None:
            left = self._c.flush(timeout)
            if left:
                raise RuntimeError(f"{left} records not delivered in {timeout}s")
        else:
            self._k.flush(timeout)

    def close(self) -> None:
        if self._c is not None:
            self._c.flush(10)
        else:
            self._k.close(5)


def _wait(what: str, check, timeout: float, every: float = 0.2):
    """Poll ``check()`` (falsy = not yet) until it answers or ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except (OSError, RuntimeError, ValueError) as exc:
            last_exc = exc
        time.sleep(every)
    raise RuntimeError(f"{what}: not done in {timeout:.0f}s" + (f" (last error: {last_exc})" if last_exc else ""))


def _metric(worker: LocalWorker, name: str, labels: dict | None = None) -> float:
    try:
        return worker.metric(name, labels)
    except (OSError, RuntimeError):
        return 0.0


def _vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc status")


def _cpu_s(pid: int) -> float:
    """CPU seconds a process has used, every thread, user and system."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Exact percentile (nearest rank) of the values."""
    s = sorted(values)
    if not s:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(s)))
    return s[rank - 1]


def _nodes(producer: Producer, topics: Topics, node_ids: list[str], rng) -> dict[str, Node]:
    nodes = {}
    for i, nid in enumerate(node_ids):
        n = nodes[nid] = Node(node_id=nid, kind="dc" if i < 3 else "store", lat=48 + rng.random() * 6,
                              lon=7 + rng.random() * 7, services=("ship", "pickup", "same_day"),
                              cost_per_order=3 + rng.random() * 5, cost_per_km=0.02)
        producer.send(topics.nodes, nid.encode(), n.model_dump_json().encode())
    producer.flush()
    return nodes


def _create_topic(bootstrap: str, name: str, partitions: int, compacted: bool = False) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="stockflow-bench")
    try:
        configs = {"cleanup.policy": "compact"} if compacted else {}
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def _delete_topics(bootstrap: str, stamp: str) -> None:
    """Delete this run's topics: stockflow's, the baselines' and Quix's own
    (every name carries the run's stamp). A failure is reported, not raised:
    the figures are already measured."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="stockflow-bench")
    except Exception as exc:
        say(f"topics of {stamp} not deleted: {exc!r}")
        return
    try:
        names = sorted(t for t in admin.list_topics() if stamp in t)
        for i in range(0, len(names), 50):
            admin.delete_topics(names[i:i + 50], timeout_ms=30_000)
        say(f"deleted this run's {len(names)} topics")
    except Exception as exc:
        say(f"topics of {stamp} not all deleted: {exc!r}")
    finally:
        admin.close()


# ------------------------------------------------------------ baselines
async def _raw_consume(bootstrap: str, topic: str, n: int, warmup: int, timeout: float,
                       start: dict[int, int] | None = None) -> tuple[float, int]:
    """Records/s from the warm-up-th record to the n-th; from ``start``
    (partition -> offset) the records are envelopes, every line counted."""
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 30
        while not parts and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise RuntimeError(f"raw consumer: no partitions for {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        for tp in tps if start else ():
            consumer.seek(tp, start.get(tp.partition, 0))
        atp: dict[tuple[str, str], int] = {}
        seen = 0
        first = None
        deadline = time.monotonic() + timeout
        while seen < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw consumer: {seen} of {n} in {timeout:.0f}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for r in records:
                    m = orjson.loads(r.value)
                    if start:
                        sku = m["sku"]
                        for line in m["movements"]:
                            k = (sku, line["node_id"])
                            atp[k] = atp.get(k, 0) + line["qty"]
                        continue
                    k = (m["sku"], m["node_id"])
                    atp[k] = atp.get(k, 0) + m["qty"]
                seen += len(records)
                if first is None and seen >= warmup:
                    first, first_n = time.monotonic(), seen
        done = time.monotonic()
        return (seen - first_n) / max(done - first, 1e-6), len(atp)
    finally:
        await consumer.stop()


def _subprocess_rate(stack: ExitStack, name: str, argv: list[str], result: Path, log: Path, timeout: float) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    stack.callback(stop)

    def check():
        if result.exists():
            return json.loads(result.read_text())
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"stockflow bench: {name} exited {proc.returncode}; log {log}:\n{tail}")
        return None

    got = _wait(f"{name} (log {log})", check, timeout, every=0.2)
    stop()
    return (got["n"] - got["from"]) / max(got["done"] - got["first"], 1e-6)


# ------------------------------------------------------------ the run
@dataclass
class Sizes:
    movements: int
    orders: int
    skus: int
    nodes: int
    rate: float
    latency_seconds: float
    rss_keys: int
    envelope: int = 0
    envelope_movements: int = 0


def _measure_ingest(worker: LocalWorker, topic: str, n: int, warmup: int, timeout: float) -> float:
    """Start the worker on the backlog; rate from the warm-up-th processed event to the N-th."""
    worker.start(wait_ready=False)
    label = {"topic": topic}
    first = _wait("stockflow worker: warm-up movements processed",
                  lambda: (v := _metric(worker, "stockflow_events_processed_total", label)) >= max(1, warmup)
                  and (time.monotonic(), v), timeout, every=0.1)
    t_first, v_first = first
    if v_first >= n:
        raise RuntimeError("the worker took the whole backlog between two polls: raise --movements")
    done = _wait("stockflow worker: movements processed",
                 lambda: _metric(worker, "stockflow_events_processed_total", label) >= n and time.monotonic(),
                 timeout, every=0.1)
    return (n - v_first) / max(done - t_first, 1e-6)


def _order(i: int, prefix: str, skus: list[str], rng, occurred_at: str) -> tuple[str, bytes]:
    oid = f"{prefix}-{i}"
    lines = [{"line_id": f"L{j}", "sku": rng.choice(skus), "qty": 1} for j in range(rng.choice([2, 3, 3, 4]))]
    order = {"event_id": f"e{oid}", "occurred_at": occurred_at, "type": "create", "order_id": oid,
             "channel": "web", "customer": {"customer_id": f"c{i}", "email": "b@example.com"},
             "lines": lines, "delivery": {"method": "ship", "address": {"lat": 52.5, "lon": 13.4}}}
    return oid, json.dumps(order).encode()


def _order_timestamps(bootstrap: str, topic: str, wanted: set[str], timeout: float,
                      first_only: bool = False) -> dict[str, list[int]]:
    """order_id -> Kafka timestamps (ms) of the topic's records about it,
    in offset order; with ``first_only``, reading stops once every wanted
    order has one."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: dict[str, list[int]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    oid = json.loads(r.value).get("order_id")
                    if oid in wanted:
                        found.setdefault(oid, []).append(r.timestamp)
            if (first_only and len(found) == len(wanted)) or all(consumer.position(tp) >= ends[tp] for tp in tps):
                return found
        raise RuntimeError(f"{topic}: read records of {len(found)} of {len(wanted)} orders in {timeout:.0f}s")
    finally:
        consumer.close()


def _first_decisions(bootstrap: str, topic: str, wanted: set[str], timeout: float) -> dict[str, int]:
    """order_id -> Kafka timestamp (ms) of its first allocation record."""
    return {oid: ts[0] for oid, ts in _order_timestamps(bootstrap, topic, wanted, timeout, first_only=True).items()}


HOPS = ("create_reserve", "reserve_answer", "answer_decision")


def latencies_after_warmup(created: dict[str, int], decided: dict[str, int], warmup: int) -> list[float]:
    """The latencies (ms) of the orders offered after the first ``warmup``,
    in the order they were offered (``created``'s order). The same rule as
    the throughput figures' untimed first tenth: at a low offered load the
    first second or two of the phase held most of the slow orders, with the
    broker slow to acknowledge the worker's writes (docs/benchmarks.md,
    session 20)."""
    return [float(decided[o] - t) for o, t in list(created.items())[warmup:] if o in decided]


def hop_latencies(created: dict[str, int], reserves: dict[str, list[int]], answers: dict[str, list[int]],
                  decided: dict[str, int]) -> dict[str, list[float]]:
    """Each order's way from create to decision, cut at its three hops
    (record timestamps, ms): the order's worker sends its reserve requests
    (``create_reserve``), the SKUs' owners answer (``reserve_answer``, to
    the last answer before the decision), the order's worker decides
    (``answer_decision``). The three add up to the order's latency. Orders
    decided without a reserve request (nothing to reserve) are left out."""
    hops: dict[str, list[float]] = {h: [] for h in HOPS}
    for oid, t0 in created.items():
        t3 = decided.get(oid)
        if t3 is None:
            continue
        sent = [t for t in reserves.get(oid, ()) if t <= t3]
        heard = [t for t in answers.get(oid, ()) if sent and sent[0] <= t <= t3]
        if not heard:
            continue
        t1, t2 = sent[0], max(heard)
        hops["create_reserve"].append(float(t1 - t0))
        hops["reserve_answer"].append(float(t2 - t1))
        hops["answer_decision"].append(float(t3 - t2))
    return hops


def run(args) -> dict:
    import random

    rng = random.Random(args.seed)
    sizes = Sizes(args.movements, args.orders, args.skus, args.nodes, args.rate, args.latency_seconds, args.rss_keys,
                  getattr(args, "envelope", 0), getattr(args, "envelope_movements", 0))
    if sizes.movements < 20 or sizes.orders < 1 or sizes.skus < 1 or sizes.nodes < 1 or sizes.rss_keys < 1 \
            or sizes.rate <= 0 or sizes.latency_seconds <= 0 or sizes.envelope < 0 \
            or sizes.envelope > MAX_BATCH_MOVEMENTS or (sizes.envelope and sizes.envelope_movements < 20 * sizes.envelope):
        raise RuntimeError(f"sizes: --movements >= 20, the other sizes > 0, --envelope 0 to {MAX_BATCH_MOVEMENTS}, "
                           "--envelope-movements >= 20 envelopes")
    stamp = f"bench{datetime.now():%Y%m%d%H%M%S}"
    data_dir = Path(os.environ.get("STOCKFLOW_DATA_DIR", ".stockflow"))
    run_dir = (data_dir / "bench" / stamp).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat()
    slow = max(1.0, args.timeout_scale)
    out: dict = {}
    extra: dict = {}
    t_run = time.monotonic()
    with ExitStack() as stack:
        stack.callback(_cleanup_stores, run_dir)
        bootstrap = _bootstrap(stack, data_dir)
        # Runs before the broker stops and after every worker has (an exit
        # stack unwinds in reverse): left behind, each run's topics piled up
        # to thousands of partitions and the broker no longer started in time.
        stack.callback(_delete_topics, bootstrap, stamp)
        from .streams.admin import ensure_topics

        # ---- the shared backlog: nodes + movements on stockflow's own topic
        prefix = stamp
        topics = Topics(prefix)
        settings = _settings(bootstrap, prefix, run_dir)
        ensure_topics(settings)
        producer = Producer(bootstrap)
        stack.callback(producer.close)
        node_ids = [f"N{i:02d}" for i in range(sizes.nodes)]
        nodes = _nodes(producer, topics, node_ids, rng)
        skus = [f"B{i:05d}" for i in range(sizes.skus)]
        say(f"producing {sizes.movements:,} movements to {topics.movements}")
        movements = []  # kept for the pure path's stock (bench_domain)
        for i in range(sizes.movements):
            sku = skus[i % len(skus)]
            value = json.dumps({"event_id": f"bm{i}", "occurred_at": now, "sku": sku, "node_id": rng.choice(node_ids),
                                "type": "receipt", "qty": rng.randint(5, 50)}).encode()
            movements.append(value)
            producer.send(topics.movements, sku.encode(), value)
        producer.flush()
        backlog_timeout = slow * (180 + sizes.movements / 100)
        warmup = sizes.movements // 10  # not timed: start-up, group join, first fetches

        # ---- raw limit
        say(f"raw_limit_eps: aiokafka consumer over the backlog, median of {RAW_PASSES} passes")
        passes = [asyncio.run(_raw_consume(bootstrap, topics.movements, sizes.movements, warmup, backlog_timeout))
                  for _ in range(RAW_PASSES)]
        rates = extra["raw_passes_eps"] = [eps for eps, _ in passes]
        out["raw_limit_eps"] = median(rates)
        extra["raw_keys"] = passes[0][1]
        say(f"raw_limit_eps: {out['raw_limit_eps']:,.0f} events/s (passes "
            + ", ".join(f"{eps:,.0f}" for eps in rates) + ")")

        def faust_baseline(name: str, app_id: str, slug: str, *flags: str) -> float:
            """A bench_naive_faust run over the backlog, in its own process."""
            result = run_dir / f"{slug}.json"
            return _subprocess_rate(
                stack, name,
                ["-m", "stockflow.bench_naive_faust", *flags, "--bootstrap", bootstrap, "--topic", topics.movements,
                 "--app-id", app_id, "--data-dir", str(run_dir / f"{slug}-store"),
                 "--partitions", str(settings.partitions), "--expect", str(sizes.movements), "--warmup", str(warmup),
                 "--result", str(result)],
                result, run_dir / f"{slug}.log", backlog_timeout)

        # ---- naive Faust
        say("naive_faust_eps: one-event-at-a-time Faust agent")
        naive_id = f"{prefix}-naive"
        _create_topic(bootstrap, f"{naive_id}-atp-changelog", settings.partitions, compacted=True)
        out["naive_faust_eps"] = faust_baseline("naive Faust", naive_id, "naive-faust")

        # ---- the worker's Faust path with nothing to do (extra, not one of the figures)
        say("faust_floor_eps: the worker's Faust path, no work")
        extra["faust_floor_eps"] = faust_baseline("Faust floor", f"{prefix}-floor", "faust-floor", "--floor")
        say(f"faust_floor_eps: {extra['faust_floor_eps']:,.0f} events/s")
        say("output_floor_eps: the same, writing the worker's four records per movement")
        from .bench_naive_faust import output_topics

        out_prefix = f"{prefix}-ofloor-out"
        for name in output_topics(out_prefix):
            _create_topic(bootstrap, name, settings.partitions)
        extra["output_floor_eps"] = faust_baseline("output floor", f"{prefix}-ofloor", "output-floor", "--floor",
                                                   "--outputs", out_prefix)
        say(f"output_floor_eps: {extra['output_floor_eps']:,.0f} events/s")

        # ---- Quix Streams
        say("quix_eps: Quix Streams application")
        result = run_dir / "quix.json"
        out["quix_eps"] = _subprocess_rate(
            stack, "Quix Streams",
            ["-m", "stockflow.bench_quix", "--bootstrap", bootstrap, "--topic", topics.movements,
             "--group", f"{prefix}-quix", "--state-dir", str(run_dir / "quix-store"),
             "--expect", str(sizes.movements), "--warmup", str(warmup), "--result", str(result)],
            result, run_dir / "quix.log", backlog_timeout)

        # ---- stockflow ingest
        say("ingest_eps: stockflow worker over the backlog")
        worker = LocalWorker.create(_worker_env(bootstrap, prefix, run_dir), free_port(6166), run_dir / "worker.log")
        stack.callback(worker.stop, signal.SIGTERM, 30)
        out["ingest_eps"] = _measure_ingest(worker, topics.movements, sizes.movements, warmup, backlog_timeout)
        out["ingest_ratio"] = out["ingest_eps"] / out["raw_limit_eps"]
        worker.wait_ready(slow * 180)

        # ---- orders throughput
        say(f"orders_per_s: {sizes.orders:,} orders of ~3 lines")
        before = _metric(worker, "stockflow_allocations_total")
        orders = [_order(i, "BO", skus, rng, now) for i in range(sizes.orders)]
        from kafka import KafkaConsumer

        # One client for every read of the phase's end offsets.
        offsets_client = KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="stockflow-bench")
        stack.callback(offsets_client.close)
        offsets_before = _end_offsets(offsets_client, stamp)
        cpu_before = _cpu_s(worker.proc.pid)
        t0 = time.monotonic()
        for oid, value in orders:
            producer.send(topics.order_commands, oid.encode(), value)
        producer.flush()
        done = _wait("orders allocated", lambda: _metric(worker, "stockflow_allocations_total")
                     >= before + sizes.orders and time.monotonic(), slow * (180 + sizes.orders / 10))
        cpu = _cpu_s(worker.proc.pid) - cpu_before
        elapsed = max(done - t0, 1e-6)
        out["orders_per_s"] = sizes.orders / elapsed
        # Steadier than orders/s between runs: the worker idled part of some
        # phases and not of others on the same code (docs/benchmarks.md, session 22).
        extra["orders_cpu_ms"] = 1000 * cpu / sizes.orders
        extra["orders_busy"] = cpu / elapsed
        say(f"orders_per_s: {out['orders_per_s']:,.0f}; the worker's CPU {extra['orders_cpu_ms']:.2f} ms an order, "
            f"{extra['orders_busy']:.0%} of a core")
        per_order = records_per_order(offsets_before, _settled_end_offsets(offsets_client, stamp, slow * 10),
                                      sizes.orders, {topics.order_commands}, prefix)
        extra["records_per_order"] = sum(per_order.values())
        extra["records_per_order_by_topic"] = per_order
        say(f"records written per order: {extra['records_per_order']:.1f} ("
            + ", ".join(f"{t} {v:.2f}" for t, v in per_order.items()) + ")")

        # ---- latency at a fixed offered load
        n_lat = max(1, int(round(sizes.rate * sizes.latency_seconds)))
        say(f"order latency: {n_lat:,} orders offered at {sizes.rate:g}/s")
        from kafka import KafkaProducer

        lat_producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=0)
        stack.callback(lat_producer.close, 5)
        before = _metric(worker, "stockflow_allocations_total")
        created: dict[str, int] = {}
        t0 = time.monotonic()
        for i in range(n_lat):
            target = t0 + i / sizes.rate
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            ts_ms = int(time.time() * 1000)
            oid, value = _order(i, "BL", skus, rng, datetime.fromtimestamp(ts_ms / 1000, timezone.utc).isoformat())
            lat_producer.send(topics.order_commands, key=oid.encode(), value=value, timestamp_ms=ts_ms)
            created[oid] = ts_ms
        lat_producer.flush()
        offered = n_lat / max(time.monotonic() - t0, 1e-6)
        _wait("latency orders allocated", lambda: _metric(worker, "stockflow_allocations_total") >= before + n_lat,
              slow * (180 + n_lat / 10))
        decided = _first_decisions(bootstrap, topics.allocations, set(created), slow * 120)
        lat = latencies_after_warmup(created, decided, 0)
        if len(lat) < n_lat:
            raise RuntimeError(f"latency: {n_lat - len(lat)} orders without an allocation record")
        out["order_p50_ms"] = float(percentile(lat, 0.50))
        out["order_p99_ms"] = float(percentile(lat, 0.99))
        extra["latency_orders"] = n_lat
        steady = latencies_after_warmup(created, decided, n_lat // 10)
        if steady:
            extra["steady_orders"] = len(steady)
            extra["steady_p50_ms"] = float(percentile(steady, 0.50))
            extra["steady_p99_ms"] = float(percentile(steady, 0.99))
            say(f"order latency after the first tenth (p50 / p99 ms, {len(steady):,} orders): "
                f"{extra['steady_p50_ms']:,.0f} / {extra['steady_p99_ms']:,.0f}")
        extra["offered_rate"] = offered
        _hops(bootstrap, topics, created, decided, slow, extra)
        worker.stop(signal.SIGTERM, 60)

        # ---- the same orders' pure work, no broker (extra): with no worker running
        say(f"orders_domain_us: the {sizes.orders:,} orders through the worker's pure functions, in this process")
        extra.update(bench_domain.measure(nodes, bench_domain.stock_from(movements), [v for _, v in orders],
                                          warmup=min(200, sizes.orders // 10)))
        say(f"orders_domain_us: {bench_domain.text(extra)}")

        # ---- ingest of movement envelopes (extra, not one of the figures)
        if sizes.envelope:
            _envelope_ingest(producer, worker, bootstrap, topics, skus, node_ids, sizes, rng, now, slow, extra)

        # ---- memory and recovery with K SKU-node keys
        out["rss_mb"], out["recovery_s"] = _rss_and_recovery(stack, bootstrap, f"{stamp}r", run_dir / "rss",
                                                             sizes, slow, extra)
        extra["seconds"] = time.monotonic() - t_run
    extra.update(vars(sizes))
    return {"figures": _rounded(out), "extra": extra}


def _end_offsets(consumer, stamp: str) -> dict[str, int]:
    """The records each of this run's topics holds so far (end offsets summed
    over its partitions), read with a kafka-python consumer."""
    from kafka import TopicPartition

    names = [t for t in consumer.topics() if stamp in t]
    tps = [TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or ())]
    held = dict.fromkeys(names, 0)
    for tp, end in consumer.end_offsets(tps).items():
        held[tp.topic] += end
    return held


def _settled_end_offsets(consumer, stamp: str, timeout: float) -> dict[str, int]:
    """End offsets once two reads half a second apart agree: an order's
    decision is counted before its batch's records are written. The last
    read if they never agree within the timeout."""
    last = _end_offsets(consumer, stamp)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        held = _end_offsets(consumer, stamp)
        if held == last:
            break
        last = held
    return last


def records_per_order(before: dict[str, int], after: dict[str, int], orders: int, inputs: set[str],
                      prefix: str) -> dict[str, float]:
    """Records written per order, per topic that grew (the inputs left out),
    named without the run's prefix, most first."""
    grown = {t[len(prefix):].lstrip(".-") if t.startswith(prefix) else t: (after[t] - before.get(t, 0)) / orders
             for t in after if t not in inputs and after[t] > before.get(t, 0)}
    return dict(sorted(grown.items(), key=lambda kv: (-kv[1], kv[0])))


def _hops(bootstrap: str, topics: Topics, created: dict[str, int], decided: dict[str, int], slow: float,
          extra: dict) -> None:
    """The latency orders' three hops (``hop_latencies``), p50 and p99 each
    (extra figures: where an order's latency goes)."""
    wanted = set(created)
    hops = hop_latencies(created, _order_timestamps(bootstrap, topics.sku_commands, wanted, slow * 120),
                         _order_timestamps(bootstrap, topics.order_events, wanted, slow * 120), decided)
    extra["hop_orders"] = len(hops[HOPS[0]])
    if not extra["hop_orders"]:
        return
    for h in HOPS:
        extra[f"hop_{h}_p50_ms"] = float(percentile(hops[h], 0.50))
        extra[f"hop_{h}_p99_ms"] = float(percentile(hops[h], 0.99))
    say("order hops (p50 / p99 ms): " + ", ".join(
        f"{h.replace('_', ' to ')} {extra[f'hop_{h}_p50_ms']:,.0f} / {extra[f'hop_{h}_p99_ms']:,.0f}" for h in HOPS))


def _envelope_ingest(producer: "Producer", worker: LocalWorker, bootstrap: str, topics: Topics, skus: list[str],
                     node_ids: list[str], sizes: Sizes, rng, now: str, slow: float, extra: dict) -> None:
    """The same worker (restarted on its store) and the raw consumer over
    receipts sent as envelopes of ``--envelope`` movements of one SKU (a POS
    or WMS upload): movements/s, each figure counting every line."""
    from kafka import KafkaConsumer, TopicPartition

    size = sizes.envelope
    n = max(20, sizes.envelope_movements // size)
    probe = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None)
    try:
        tps = [TopicPartition(topics.movements, p) for p in sorted(probe.partitions_for_topic(topics.movements))]
        start = {tp.partition: off for tp, off in probe.end_offsets(tps).items()}
    finally:
        probe.close()
    say(f"envelope ingest: {n:,} envelopes of {size} movements to {topics.movements}")
    for i in range(n):
        sku = skus[i % len(skus)]
        nodes = rng.sample(node_ids, size) if size <= len(node_ids) else [rng.choice(node_ids) for _ in range(size)]
        value = json.dumps({"event_id": f"be{i}", "occurred_at": now, "sku": sku, "movements": [
            {"node_id": nid, "type": "receipt", "qty": rng.randint(5, 50)} for nid in nodes]}).encode()
        producer.send(topics.movements, sku.encode(), value)
    producer.flush()
    timeout = slow * (180 + n * size / 100)
    warmup = n // 10
    raw, _ = asyncio.run(_raw_consume(bootstrap, topics.movements, n, warmup, timeout, start=start))
    extra["envelope_raw_eps"] = raw * size
    # A new process: its count starts at 0 and the group resumes after the singles.
    extra["envelope_ingest_eps"] = _measure_ingest(worker, topics.movements, n, warmup, timeout) * size
    extra["envelope_records"] = n
    say(f"envelope ingest: stockflow {extra['envelope_ingest_eps']:,.0f} movements/s, "
        f"raw consumer {extra['envelope_raw_eps']:,.0f} movements/s")
    worker.stop(signal.SIGTERM, 60)


def _rss_and_recovery(stack: ExitStack, bootstrap: str, prefix: str, run_dir: Path, sizes: Sizes, slow: float,
                      extra: dict) -> tuple[float, float]:
    """One `count` movement per SKU-node key: K keys = ceil(K / nodes) SKUs x nodes."""
    from .streams.admin import ensure_topics

    n_nodes = max(1, min(sizes.nodes, sizes.rss_keys))
    n_skus = math.ceil(sizes.rss_keys / n_nodes)
    keys = n_skus * n_nodes
    topics = Topics(prefix)
    ensure_topics(_settings(bootstrap, prefix, run_dir))
    producer = Producer(bootstrap)
    stack.callback(producer.close)
    import random

    node_ids = [f"R{i:02d}" for i in range(n_nodes)]
    _nodes(producer, topics, node_ids, random.Random(5))
    now = datetime.now(timezone.utc).isoformat()

    def qty(s: int, j: int) -> int:
        return (s * 7 + j * 13) % 97 + 1

    say(f"rss_mb: producing {keys:,} count movements ({n_skus:,} SKUs x {n_nodes} nodes) to {topics.movements}")
    for s in range(n_skus):
        sku = f"R{s:07d}"
        k = sku.encode()
        for j, nid in enumerate(node_ids):
            producer.send(topics.movements, k, json.dumps(
                {"event_id": f"r{s}-{j}", "occurred_at": now, "sku": sku, "node_id": nid, "type": "count",
                 "qty": qty(s, j)}).encode())
    producer.flush(600)
    port = free_port(6266)
    worker = LocalWorker.create(_worker_env(bootstrap, prefix, run_dir), port, run_dir / "worker.log")
    stack.callback(worker.stop, signal.SIGTERM, 30)
    worker.start(wait_ready=False)
    label = {"topic": topics.movements}
    load_timeout = slow * (300 + keys / 100)
    t0 = time.monotonic()
    _wait("rss worker: count movements processed",
          lambda: _metric(worker, "stockflow_events_processed_total", label) >= keys, load_timeout, every=1.0)
    extra["rss_load_eps"] = keys / max(time.monotonic() - t0, 1e-6)
    worker.wait_ready(slow * 180)
    samples = [0, n_skus - 1, n_skus // 2]

    def atp_right() -> bool:
        for s in samples:
            status, body = http_get(f"{worker.url}/atp/R{s:07d}", timeout=10)
            if status != 200 or not isinstance(body, dict):
                return False
            got = {r["node_id"]: r["atp"] for r in body.get("nodes", [])}
            if got != {nid: qty(s, j) for j, nid in enumerate(node_ids)}:
                return False
        return True

    _wait("rss worker: ATP right", atp_right, slow * 120, every=0.5)
    rss = _vm_hwm_mb(worker.proc.pid)
    extra["rss_keys_loaded"] = keys
    extra["rss_skus"] = n_skus

    say(f"recovery_s: fresh worker, empty store, restoring {keys:,} keys from the changelog")
    worker.stop(signal.SIGTERM, 120)
    shutil.rmtree(run_dir / f"worker-{port}", ignore_errors=True)
    t0 = time.monotonic()
    worker.start(wait_ready=False)
    _wait("recovered worker: /ready", worker.is_ready, slow * (300 + keys / 1000), every=0.2)
    _wait("recovered worker: ATP right", atp_right, slow * 120, every=0.2)
    recovery = time.monotonic() - t0
    extra["rss_mb_after_recovery"] = _vm_hwm_mb(worker.proc.pid)
    worker.stop(signal.SIGTERM, 60)
    return rss, recovery


def _cleanup_stores(run_dir: Path) -> None:
    """Drop the local stores (possibly GBs at full size); keep the logs."""
    for d in list(run_dir.glob("worker-*")) + list(run_dir.glob("*/worker-*")) + \
            [run_dir / "naive-faust-store", run_dir / "faust-floor-store", run_dir / "quix-store"]:
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)


def _rounded(f: dict) -> dict:
    out = {}
    for k in FIGURES:
        v = float(f[k])
        out[k] = round(v, 4) if k == "ingest_ratio" else round(v, 1)
    return out


# ------------------------------------------------------------ output
def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    try:
        load = ", load average {:.1f} at the start".format(os.getloadavg()[0])
    except OSError:
        pass
    versions = []
    for dist in ("faust-streaming", "aiokafka", "quixstreams", "confluent-kafka"):
        try:
            from importlib.metadata import version

            versions.append(f"{dist} {version(dist)}")
        except Exception:  # noqa: BLE001 - not installed
            pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}{load}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; " + ", ".join(versions))


def _command(args) -> str:
    parts = ["stockflow bench"]
    for flag, default in DEFAULTS.items():
        v = getattr(args, flag, default)
        if v != default:
            parts.append(f"--{flag.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{flag.replace('_', '-')} {v}")
    return " ".join(parts)


DEFAULTS = {"movements": 30_000, "orders": 3_000, "skus": 5_000, "nodes": 50, "seed": 11,
            "rate": 500.0, "latency_seconds": 10.0, "rss_keys": 1_000_000, "envelope": 50,
            "envelope_movements": 150_000}


def doc_section(res: dict, machine: str, command: str, when: str) -> str:
    f, x = res["figures"], res["extra"]
    rows = "\n".join(f"| `{k}` | {_fmt(k, f[k])} | {WHAT[k]} |" for k in FIGURES)
    return (
        f"{DOC_START}\n"
        f"<!-- generated by `stockflow bench`; edit outside the markers -->\n"
        f"Measured {when} with `{command}` ({x['seconds']:.0f} s).\n\n"
        f"Machine: {machine}; Apache Kafka 4.0.0 single node on the same machine.\n\n"
        f"Sizes: {x['movements']:,} receipts over {x['skus']:,} SKUs and {x['nodes']} nodes (the backlog every "
        f"throughput figure reads); {x['orders']:,} orders of 2 to 4 lines; latency: {x['latency_orders']:,} orders "
        f"offered at {x['rate']:g}/s (achieved {x['offered_rate']:.0f}/s); memory and recovery: "
        f"{x['rss_keys_loaded']:,} SKU-node "
        f"keys ({x['rss_skus']:,} SKUs x {min(x['nodes'], x['rss_keys_loaded'])} nodes, one `count` each).\n\n"
        f"| figure | value | what |\n|---|---|---|\n{rows}\n"
        f"{_raw_text(x)}"
        f"{_floor_text(x)}"
        f"{_orders_cpu_text(x)}"
        f"{_domain_text(x)}"
        f"{_records_text(x)}"
        f"{_steady_text(x)}"
        f"{_hops_text(x)}"
        f"{_envelope_text(x)}"
        f"{DOC_END}"
    )


def _raw_text(x: dict) -> str:
    if not x.get("raw_passes_eps"):
        return ""
    passes = ", ".join(f"{eps:,.0f}" for eps in x["raw_passes_eps"])
    return f"\n`raw_limit_eps` is the median of {len(x['raw_passes_eps'])} passes over the backlog: {passes} events/s.\n"


def _floor_text(x: dict) -> str:
    if "faust_floor_eps" not in x:
        return ""
    return (f"\nFaust's floor (not one of the issue's figures): Faust set up as the worker sets it up, taking the "
            f"same backlog in the worker's micro-batches and doing nothing with it, took "
            f"{x['faust_floor_eps']:,.0f} events/s: no worker on this Faust path can ingest faster.\n"
            f"{_output_floor_text(x)}")


def _output_floor_text(x: dict) -> str:
    if "output_floor_eps" not in x:
        return ""
    return (f"\nThe same path writing, per movement, the four records the worker writes (its seen-events and "
            f"SKU-state changelog records, the availability event, the ATP-view record; values of the worker's "
            f"sizes built once, no state, no decode) took {x['output_floor_eps']:,.0f} events/s: the contract's "
            f"records on this path, before any of stockflow's own work.\n")


def _orders_cpu_text(x: dict) -> str:
    if "orders_cpu_ms" not in x:
        return ""
    return (f"\nThe worker's CPU over the `orders_per_s` phase (not one of the issue's figures; every thread, from "
            f"the first order sent to the last allocated): {x['orders_cpu_ms']:.2f} ms an order, "
            f"{x['orders_busy']:.0%} of a core over the phase{_waited(x['orders_busy'])}.\n")


def _waited(busy: float) -> str:
    # Under a whole core: the worker waited (acknowledgements, fetches, the
    # producer) part of the phase; the share says how much.
    return " (it waited the rest: acknowledgements, fetches, the producer)" if busy < 0.98 else ""


def _domain_text(x: dict) -> str:
    if "orders_domain_us" not in x:
        return ""
    return (f"\nThe same orders through the worker's pure functions, in the bench's process with no broker (not "
            f"one of the issue's figures; `bench_domain`: decode, plan, the owners' reserves, answers, decision, "
            f"every output and document encoded, no records, tables or idempotency): "
            f"{bench_domain.text(x)}. A floor for the worker's CPU an order: `orders_per_s` cannot pass "
            f"{1e6 / x['orders_domain_us']:,.0f} on one core however cheap the rest.\n")


def _records_text(x: dict) -> str:
    if not x.get("records_per_order_by_topic"):
        return ""
    by_topic = ", ".join(f"{t} {v:.2f}" for t, v in x["records_per_order_by_topic"].items())
    return (f"\nRecords the worker wrote per order of `orders_per_s` (not one of the issue's figures; the run's "
            f"topics' end offsets before and after, changelogs included): {x['records_per_order']:.1f} "
            f"({by_topic}).\n")


def _steady_text(x: dict) -> str:
    if not x.get("steady_orders"):
        return ""
    return (f"\nThe latency orders after the first tenth offered (not one of the issue's figures; the same "
            f"untimed warm-up as the throughput figures), {x['steady_orders']:,} orders: p50 "
            f"{x['steady_p50_ms']:,.0f} ms, p99 {x['steady_p99_ms']:,.0f} ms.\n")


def _hops_text(x: dict) -> str:
    if not x.get("hop_orders"):
        return ""
    cut = ", ".join(f"{what} {x[f'hop_{h}_p50_ms']:,.0f} / {x[f'hop_{h}_p99_ms']:,.0f} ms" for h, what in zip(
        HOPS, ("create to reserve requests (the order's worker)", "requests to the last answer (the SKUs' owners)",
               "last answer to decision (the order's worker)")))
    return (f"\nWhere the latency orders' time went (not one of the issue's figures; p50 / p99 of each hop, from "
            f"record timestamps, {x['hop_orders']:,} orders): {cut}.\n")


def _envelope_text(x: dict) -> str:
    if not x.get("envelope"):
        return ""
    return (f"\nEnvelopes (not one of the issue's figures): {x['envelope_records']:,} records of {x['envelope']} "
            f"receipts of one SKU each; the stockflow worker took {x['envelope_ingest_eps']:,.0f} movements/s, "
            f"the plain aiokafka consumer {x['envelope_raw_eps']:,.0f} movements/s.\n")


def _fmt(k: str, v: float) -> str:
    if k == "ingest_ratio":
        return f"{v:.4f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def write_doc(section: str, path: Path = DOC_PATH) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if DOC_START in text and DOC_END in text:
        head, _, rest = text.partition(DOC_START)
        _, _, tail = rest.partition(DOC_END)
        text = head + section + tail
    else:
        lines = text.split("\n", 1)
        text = lines[0] + "\n\n" + section + "\n" + ("\n" + lines[1] if len(lines) > 1 else "")
    path.write_text(text)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(args) -> int:
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: everything started is stopped
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(timezone.utc)
    machine = _machine()
    try:
        res = run(args)
    except RuntimeError as exc:
        err.print(f"[red]stockflow bench: {exc}[/]")
        return 1
    f = res["figures"]
    if args.json:
        print(json.dumps(f))
    else:
        t = Table(title="stockflow bench")
        t.add_column("figure")
        t.add_column("value", justify="right")
        t.add_column("what")
        for k in FIGURES:
            t.add_row(k, _fmt(k, f[k]), WHAT[k])
        x = res["extra"]
        if "faust_floor_eps" in x:
            t.add_row("(faust_floor_eps)", _fmt("", x["faust_floor_eps"]),
                      "the worker's Faust setup taking the backlog, no work (events/s)")
        if "output_floor_eps" in x:
            t.add_row("(output_floor_eps)", _fmt("", x["output_floor_eps"]),
                      "the same, writing the worker's four records per movement (events/s)")
        if x.get("envelope"):
            t.add_row("(envelope_ingest_eps)", _fmt("", x["envelope_ingest_eps"]),
                      f"stockflow worker, envelopes of {x['envelope']} movements (movements/s)")
            t.add_row("(envelope_raw_eps)", _fmt("", x["envelope_raw_eps"]),
                      "plain aiokafka consumer over the same envelopes (movements/s)")
        Console().print(t)
    if args.doc and not DOC_PATH.parent.is_dir():
        say(f"no {DOC_PATH.parent} (not a source tree): docs/benchmarks.md not written")
    elif args.doc:
        write_doc(doc_section(res, machine, _command(args), f"{started:%Y-%m-%d %H:%M} UTC"))
        say(f"wrote {DOC_PATH}")
    return 0
