"""The node master data, replicated whole on every worker.

``stockflow.nodes`` is a small compacted topic that every worker needs in full
(ATP needs each node's safety stock and active flag, sourcing needs all of
them), so each worker reads every partition of it from the beginning with a
group-less consumer, the way Kafka Streams serves a GlobalKTable. Invalid
records are skipped here; the ``nodes`` agent dead-letters them once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from ..streams.codec import decode, decode_key
from ..streams.events import Node
from ..streams.exceptions import DecodeError

log = logging.getLogger(__name__)


class NodeView:
    def __init__(self, topic: str, max_bytes: int, client_kwargs: Mapping) -> None:
        self.topic = topic
        self.max_bytes = max_bytes
        self.client_kwargs = dict(client_kwargs)
        self.nodes: dict[str, Node] = {}
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._progress = asyncio.Condition()

    def get(self, node_id: str) -> Node | None:
        return self.nodes.get(node_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # tombstone on the compacted topic: node removed
            try:
                k = decode_key(key)
            except DecodeError:
                return
            if k is not None:
                self.nodes.pop(k, None)
            return
        try:
            node = decode(value, Node, self.max_bytes)
            if decode_key(key) != node.node_id:
                return
        except DecodeError:
            return
        self.nodes[node.node_id] = node

    async def run(self) -> None:
        """Follow the topic forever; sets ``ready`` once caught up at start."""
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
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
            await consumer.seek_to_beginning(*self._tps)
            await self._catch_up_loop()
            self.ready.set()
            while True:
                await self._poll()
        finally:
            await consumer.stop()

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
        for records in batches.values():
            for r in records:
                self.apply(r.key, r.value)
        async with self._progress:
            self._progress.notify_all()

    async def _catch_up_loop(self) -> None:
        end = await self._consumer.end_offsets(self._tps)
        while not await self._reached(end):
            await self._poll()

    async def _reached(self, end: Mapping[TopicPartition, int]) -> bool:
        for tp, off in end.items():
            if await self._consumer.position(tp) < off:
                return False
        return True

    async def catch_up(self, timeout: float = 5.0) -> None:
        """Wait until everything on the topic now is applied.

        Called before dead-lettering a record for an unknown node, so a node
        published just before its first movement is not missed.
        """
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
            log.warning("node view did not catch up within %.1fs", timeout)
