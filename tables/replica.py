"""Compacted topics replicated whole on every worker (a GlobalKTable, by hand).

Each worker reads every partition of the topic from the beginning with a
group-less consumer and keeps the latest value per key in memory:

- ``NodeView``: the node master data (``stockflow.nodes``): ATP needs each
  node's safety stock and active flag, sourcing needs all of them. Invalid
  records are skipped here; the ``nodes`` agent dead-letters them once.
- ``AtpView``: ATP per SKU and node as the SKU owners last published it, the
  availability view orders are planned on. It may lag; the owners' grants
  are what count.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Mapping

import orjson

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from ..streams.codec import decode, decode_key
from ..streams.events import Node
from ..streams.exceptions import DecodeError

log = logging.getLogger(__name__)


class Replica:
    # How long the broker holds a fetch that finds nothing new, once the
    # view is ready. New records answer it at once whatever this is
    # (fetch.min.bytes is 1), so it only sets how often an idle view asks
    # again. Until ready, and for a view whose other requests share the
    # fetch's connection (``catch_up``'s end offsets), it stays short: the
    # broker answers a connection's requests in order, so a seek's or an
    # end-offsets request would wait behind the parked fetch.
    FETCH_MAX_WAIT_STARTING_MS = 20
    fetch_max_wait_ms = FETCH_MAX_WAIT_STARTING_MS

    def __init__(self, topic: str, client_kwargs: Mapping) -> None:
        self.topic = topic
        self.client_kwargs = dict(client_kwargs)
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._progress = asyncio.Condition()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    async def seek_start(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        await consumer.seek_to_beginning(*tps)

    async def run(self) -> None:
        """Follow the topic forever; sets ``ready`` once caught up at start."""
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.FETCH_MAX_WAIT_STARTING_MS,
            **self.client_kwargs,
        )
        await consumer.start()
        self._consumer = consumer
        try:
            parts = None
            for _ in range(600):  # the worker creates the topic; allow it a minute
                # consumer.topics() returns a fresh snapshot without updating
                # partitions_for_topic(), so ask the client for the snapshot.
                cluster = await consumer._client.fetch_all_metadata()
                parts = cluster.partitions_for_topic(self.topic)
                if parts:
                    break
                await asyncio.sleep(0.1)
            if not parts:
                raise RuntimeError(f"topic {self.topic} not found")
            self._tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(self._tps)
            await self.seek_start(consumer, self._tps)
            end = await consumer.end_offsets(self._tps)
            while not await self._reached(end):
                await self._poll()
            self.ready.set()
            # aiokafka reads it for each fetch request it builds.
            fetcher = getattr(consumer, "_fetcher", None)
            if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
                fetcher._fetch_max_wait_ms = self.fetch_max_wait_ms
            while True:
                await self._poll()
        finally:
            await consumer.stop()

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for r in records:
                self.apply_record(r)
        async with self._progress:
            self._progress.notify_all()

    def apply_record(self, record) -> None:
        self.apply(record.key, record.value)

    async def _reached(self, end: Mapping[TopicPartition, int]) -> bool:
        for tp, off in end.items():
            if await self._consumer.position(tp) < off:
                return False
        return True

    async def catch_up(self, timeout: float = 5.0) -> None:
        """Wait until everything on the topic now is applied (bounded)."""
        if self._consumer is None or not self.ready.is_set():
            await asyncio.wait_for(self.ready.wait(), timeout)
            return
        end = await self._consumer.end_offsets(self._tps)

        async def wait() -> None:
            while not await self._reached(end):
                async with self._progress:
                    try:
                        await asyncio.wait_for(self._progress.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass  # re-check positions; the outer bound ends it

        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("%s replica did not catch up within %.1fs", self.topic, timeout)


class NodeView(Replica):
    def __init__(self, topic: str, max_bytes: int, client_kwargs: Mapping) -> None:
        super().__init__(topic, client_kwargs)
        self.max_bytes = max_bytes
        self.nodes: dict[str, Node] = {}

    def get(self, node_id: str) -> Node | None:
        return self.nodes.get(node_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            k = decode_key(key)
            if value is None:  # tombstone on the compacted topic: node removed
                if k is not None:
                    self.nodes.pop(k, None)
                return
            node = decode(value, Node, self.max_bytes)
        except DecodeError:
            return
        if k == node.node_id:
            self.nodes[node.node_id] = node


def atp_key(sku: str, node_id: str) -> bytes:
    return f"{sku}|{node_id}".encode()


class AtpView(Replica):
    """sku -> node_id -> ATP. Values are ASCII integers; owners write them."""

    # Nothing but fetches after the start (no ``catch_up``): at 20 ms, the
    # idle views' fetches were most of an idle worker's 10% of a core
    # (docs/benchmarks.md, session 16).
    fetch_max_wait_ms = 500

    def __init__(self, topic: str, client_kwargs: Mapping) -> None:
        super().__init__(topic, client_kwargs)
        self.by_sku: dict[str, dict[str, int]] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        sku, _, node_id = key.decode("utf-8", "replace").rpartition("|")
        if value is None:
            self.by_sku.get(sku, {}).pop(node_id, None)
            return
        try:
            self.by_sku.setdefault(sku, {})[node_id] = int(value)
        except ValueError:
            return

    def update(self, sku: str, by_node: Mapping[str, int]) -> None:
        """Fold in an owner's fresher figures (from a reservation reply)."""
        self.by_sku.setdefault(sku, {}).update({n: int(q) for n, q in by_node.items()})

    def for_skus(self, skus) -> dict[tuple[str, str], int]:
        return {(s, n): q for s in skus for n, q in self.by_sku.get(s, {}).items()}

    def keys(self) -> int:
        return sum(len(v) for v in self.by_sku.values())


class CapacityView(Replica):
    """Shipments released per node per day, from ``stockflow.fulfillment.requests``.

    Read from the start of the current UTC day only. Daily capacity is a soft
    limit: orders planned at the same moment on different workers may both
    count a node's last slot (it is not worth a round trip per order).
    """

    fetch_max_wait_ms = 500  # as AtpView's

    def __init__(self, topic: str, client_kwargs: Mapping) -> None:
        super().__init__(topic, client_kwargs)
        self.released: dict[tuple[str, str], set[str]] = {}  # (node, day) -> shipment ids

    async def seek_start(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        import time

        start_ms = int(time.time() // 86400 * 86400 * 1000)
        found = await consumer.offsets_for_times({tp: start_ms for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            if hit is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, hit.offset)

    def apply_record(self, record) -> None:
        import datetime as _dt

        try:
            body = orjson.loads(record.value)
            if body.get("action") != "release":
                return
            node_id, shipment_id = body["node_id"], body["shipment_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return
        day = _dt.datetime.fromtimestamp(record.timestamp / 1000, _dt.timezone.utc).date().isoformat()
        self.released.setdefault((node_id, day), set()).add(shipment_id)
        self._prune(day)

    def _prune(self, today: str) -> None:
        if len(self.released) > 10_000:
            for k in [k for k in self.released if k[1] < today]:
                del self.released[k]

    def left(self, nodes: Mapping[str, Node]) -> dict[str, int | None]:
        import datetime as _dt

        today = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
        out: dict[str, int | None] = {}
        for node_id, n in nodes.items():
            if n.daily_capacity is not None:
                out[node_id] = n.daily_capacity - len(self.released.get((node_id, today), ()))
        return out
