"""``stockflow simulate``: the demo's seeded retail day against any Kafka.

Publishes the sample network and a stock snapshot (unless ``--no-setup``),
then the day's input at ``--rate`` for ``--duration`` seconds, while the
fulfilment actor answers stockflow's own ``fulfillment.requests`` with
picked/packed/shipped/delivered, shorts, rejections and returns. Bootstrap,
topic prefix and Kafka security come from the settings
(``STOCKFLOW_KAFKA_BOOTSTRAP``, ``STOCKFLOW_TOPIC_PREFIX``, ...).

Reproducible for a seed: the generated input stream (movements, orders,
customers' cancels and address changes, replays, hostile records) is the
same record for record. The fulfilment side reacts to stockflow's decisions,
which are deterministic for the same input, and each shipment's fate is
seeded by the run's seed and its shipment id; only the wall-clock timing of
the reactions (a cancel crossing a shipment on the wire) can differ between
runs. Order and event ids derive from the seed, so a second run with the
same seed on the same prefix is, by design, all duplicates: use a fresh
``STOCKFLOW_TOPIC_PREFIX`` or another seed.

``Traffic`` is the I/O loop the demo shares: one producer, one consumer
(assigned, no group) on ``fulfillment.requests`` and ``orders.status``.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from ..streams.topics import SPECS, Topics
from .network import sample_network
from .simulator import (CHANNELS, DEFAULT_CANCEL_RATE, DEFAULT_RETURN_RATE, DEFAULT_SHORT_RATE, METHODS,
                        FulfilmentActor, Record, RetailDay, SimulationError, check_rate, parse_shares)

Tick = Callable[[], None]


class Traffic:
    """Sends a RetailDay to the broker and runs the fulfilment actor on the
    requests stockflow publishes. Every wait in here is bounded."""

    def __init__(self, bootstrap: str, prefix: str, day: RetailDay, actor: FulfilmentActor,
                 security: dict | None = None, watch_status: bool = True) -> None:
        self.day = day
        self.actor = actor
        self.topics = Topics(prefix)
        security = security or {}
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                                      **security)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      **security)
        self._watch = [self.topics.fulfillment_requests] + ([self.topics.order_status] if watch_status else [])
        self._assigned: set[str] = set()
        self._next_discovery = 0.0
        self._t0 = time.monotonic()
        self.sent = 0
        self.kinds: Counter[str] = Counter()  # what was sent, by "topic:type"
        self.requests_seen = 0
        self.statuses: dict[str, str] = {}  # order_id -> latest status seen on orders.status
        self._discover(initial=True)

    # ---------------------------------------------------------------- output
    def send(self, rec: Record) -> None:
        logical, key, value = rec
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.producer.send(f"{self.topics.prefix}.{SPECS[logical].suffix}",
                           key=key.encode() if key else None, value=payload)
        self.sent += 1
        kind = value.get("type", "record") if isinstance(value, dict) else "raw"
        self.kinds[f"{logical}:{kind}"] += 1

    def publish_setup(self, on_progress: Callable[[int], None] | None = None) -> int:
        """The network and the stock snapshot; returns how many records."""
        n = 0
        for rec in self.day.network():
            self.send(rec)
            n += 1
        self.producer.flush(timeout=60)
        for rec in self.day.initial_stock():
            self.send(rec)
            n += 1
            if on_progress and n % 5000 == 0:
                on_progress(n)
        self.producer.flush(timeout=120)
        return n

    # ----------------------------------------------------------------- input
    def _discover(self, initial: bool = False) -> None:
        """Assign the watched topics' partitions once they exist (the workers
        create them). Topics there from the start are read from their end, so
        an earlier run's shipments are not fulfilled again; topics that appear
        later are read from the beginning, all of it being this run's."""
        missing = [t for t in self._watch if t not in self._assigned]
        if not missing or time.monotonic() < self._next_discovery:
            return
        self._next_discovery = time.monotonic() + 2.0
        new: list[TopicPartition] = []
        for t in missing:
            parts = self.consumer.partitions_for_topic(t)
            if parts:
                new += [TopicPartition(t, p) for p in sorted(parts)]
                self._assigned.add(t)
        if not new:
            return
        old = list(self.consumer.assignment())
        positions = {tp: self.consumer.position(tp) for tp in old}
        self.consumer.assign(old + new)
        for tp, pos in positions.items():
            self.consumer.seek(tp, pos)
        if initial:
            self.consumer.seek_to_end(*new)
        else:
            self.consumer.seek_to_beginning(*new)
        for tp in new:  # resolve the reset now, not at the first poll, so nothing in between is missed
            self.consumer.position(tp)

    def react(self, wait_s: float = 0.0) -> int:
        """Poll once (at most ``wait_s``), feed the actor, send what fell due.
        Returns the number of records read."""
        self._discover()
        got = 0
        if self._assigned:
            batch = self.consumer.poll(timeout_ms=max(0, int(wait_s * 1000)), max_records=5000)
            now = self.now()
            for tp, records in batch.items():
                for r in records:
                    got += 1
                    try:
                        value = json.loads(r.value)
                    except (TypeError, ValueError):
                        continue
                    if not isinstance(value, dict):
                        continue
                    if tp.topic == self.topics.fulfillment_requests:
                        self.requests_seen += 1
                        self.actor.on_request(value, now)
                    elif "order_id" in value and "status" in value:
                        self.statuses[value["order_id"]] = value["status"]
        elif wait_s > 0:
            time.sleep(wait_s)
        for rec in self.actor.due(self.now(), self.day.clock.isoformat()):
            self.send(rec)
        return got

    def now(self) -> float:
        return time.monotonic() - self._t0

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, reacting meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.react(min(left, 0.1))

    # ------------------------------------------------------------------ loops
    def run_day(self, duration: float, rate: float, on_tick: Tick | None = None, tick_s: float = 0.5) -> int:
        """The day's input at ``rate`` events/s for ``duration`` seconds;
        fulfilment updates and returns come on top as stockflow releases
        shipments. Returns how many generated events were sent."""
        if rate <= 0:
            raise SimulationError(f"--rate must be > 0, got {rate}")
        start = time.monotonic()
        end = start + duration
        n = 0
        next_react = next_tick = 0.0
        while time.monotonic() < end:
            for rec in self.day.next_events():
                self.send(rec)
                n += 1
            ahead = n / rate - (time.monotonic() - start)
            if ahead > 0:
                self.pause(min(ahead, end - time.monotonic()))
            elif time.monotonic() >= next_react:
                # behind the offered rate: still answer requests every 50 ms
                self.react(0)
                next_react = time.monotonic() + 0.05
            if on_tick and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_s
        self.producer.flush(timeout=60)
        return n

    def drain(self, timeout: float, settled: Callable[[], bool] = lambda: True, on_tick: Tick | None = None,
              quiet_s: float = 2.0, tick_s: float = 0.5) -> bool:
        """Keep answering requests until nothing is left to do: the actor has
        no step to come, no request arrived for ``quiet_s`` and ``settled()``
        holds; at most ``timeout`` seconds. True when it settled in time."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        next_tick = 0.0
        while time.monotonic() < deadline:
            if self.react(0.2):
                quiet_since = time.monotonic()
            self.producer.flush(timeout=30)
            if on_tick and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_s
            if self.actor.pending():
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s and settled():
                return True
        return False

    # ---------------------------------------------------------------- figures
    def status_counts(self) -> Counter[str]:
        return Counter(self.statuses.values())

    def figures(self) -> dict:
        k, a = self.kinds, self.actor.stats
        updates = sum(v for key, v in k.items() if key.startswith("fulfillment_updates:"))
        return {
            "sent": self.sent,
            "orders_created": k["order_commands:create"],
            "cancels": k["order_commands:cancel"] + k["order_commands:cancel_line"],
            "address_changes": k["order_commands:change_address"],
            "fulfilment_requests": self.requests_seen,
            "fulfilment_updates": updates,
            "shipped": k["fulfillment_updates:shipped"] + k["fulfillment_updates:picked_up"],
            "delivered": k["fulfillment_updates:delivered"] + k["fulfillment_updates:picked_up"],
            "shorts": k["fulfillment_updates:short"],
            "rejected_by_nodes": k["fulfillment_updates:rejected"],
            "return_requests": k["order_commands:return_request"],
            "returns_received": k["fulfillment_updates:return_received"],
            "cancels_too_late_for_wms": a["cancel_too_late"],
        }

    def close(self) -> None:
        try:
            self.producer.flush(timeout=10)
        finally:
            self.producer.close(timeout=5)
            self.consumer.close()


def build(args, *, seed: int, n_skus: int) -> tuple[RetailDay, FulfilmentActor]:
    """The day and the actor from the simulate flags (the demo passes none)."""
    channels = parse_shares(getattr(args, "channels", None), CHANNELS, "channels")
    methods = parse_shares(getattr(args, "methods", None), METHODS, "methods")
    cancel = check_rate("cancel-rate", getattr(args, "cancel_rate", None), DEFAULT_CANCEL_RATE)
    short = check_rate("short-rate", getattr(args, "short_rate", None), DEFAULT_SHORT_RATE)
    ret = check_rate("return-rate", getattr(args, "return_rate", None), DEFAULT_RETURN_RATE)
    day = RetailDay(sample_network(), n_skus=n_skus, seed=seed, channels=channels, methods=methods, cancel_rate=cancel)
    actor = FulfilmentActor(seed=seed, short_rate=short, return_rate=ret)
    return day, actor


def main(args) -> int:
    from ..settings import load

    if args.duration <= 0 or args.rate <= 0:
        raise SimulationError("--duration and --rate must be > 0")
    if args.skus < 1:
        raise SimulationError("--skus must be >= 1")
    day, actor = build(args, seed=args.seed, n_skus=args.skus)
    try:
        settings = load()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "STOCKFLOW_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SimulationError(f"bad setting {name}: {first['msg']}") from None
    try:
        traffic = Traffic(settings.kafka_bootstrap, settings.topic_prefix, day, actor, settings.kafka_security())
    except KafkaError as exc:
        raise SimulationError(f"no Kafka broker answers at {settings.kafka_bootstrap} "
                              f"(STOCKFLOW_KAFKA_BOOTSTRAP): {exc}") from None
    started = time.monotonic()
    try:
        print(f"simulate: seed {args.seed}, {args.skus} SKUs, {args.rate:g} events/s for {args.duration:g}s "
              f"to {settings.kafka_bootstrap} (topics {settings.topic_prefix}.*)", flush=True)
        if not args.no_setup:
            n = traffic.publish_setup()
            print(f"simulate: published {len(day.nodes)} nodes and a {n - len(day.nodes)}-record stock snapshot",
                  flush=True)
        last = [time.monotonic()]

        def tick() -> None:
            if time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                f = traffic.figures()
                print(f"simulate: {f['sent']:,} sent, {f['orders_created']:,} orders, "
                      f"{f['fulfilment_updates']:,} fulfilment updates", flush=True)

        generated = traffic.run_day(args.duration, args.rate, on_tick=tick)
        # Let the stores and carriers finish what was released (bounded).
        settled = traffic.drain(max(5.0, min(30.0, args.duration)), on_tick=tick)
    finally:
        traffic.close()
    f = traffic.figures()
    elapsed = time.monotonic() - started
    print(f"simulate: done in {elapsed:.1f}s: {generated:,} generated events, {f['sent']:,} records sent"
          f"{'' if settled else ' (fulfilment still in progress at the end)'}")
    print("simulate: " + ", ".join(f"{k} {v:,}" for k, v in f.items() if k != "sent"))
    statuses = traffic.status_counts()
    if statuses:
        print("simulate: orders by status seen: " + ", ".join(f"{s} {n:,}" for s, n in statuses.most_common()))
    return 0
