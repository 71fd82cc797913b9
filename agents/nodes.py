"""Validates node master data; the replicated view (tables/replica.py) serves reads."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import metrics
from ..streams.codec import decode, decode_key
from ..streams.events import Node
from ..streams.exceptions import DecodeError

if TYPE_CHECKING:
    from ..app import Runtime


def register(rt: "Runtime") -> None:
    topic = rt.faust_topics[rt.topics.nodes]

    @rt.app.agent(topic, name="nodes", concurrency=1)
    async def nodes(stream):
        async for event in stream.events():
            msg = event.message
            metrics.EVENTS_PROCESSED.labels(msg.topic).inc()
            if msg.value is None:
                continue  # tombstone: node removed
            try:
                key = decode_key(msg.key)
                node = decode(msg.value, Node, rt.settings.max_payload_bytes)
            except DecodeError as exc:
                rt.emit.dead_letter_record(msg, exc.reason, exc.detail)
                await rt.emit.drain()
                continue
            if key != node.node_id:
                rt.emit.dead_letter_record(
                    msg, "key_mismatch", f"key {key!r} is not node_id {node.node_id!r}"
                )
                await rt.emit.drain()
