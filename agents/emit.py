"""Writing what agents decide: output events, dead letters, and their metrics."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from .. import metrics
from ..streams.codec import encode, encode_key, payload_text
from ..streams.events import DeadLetter
from ..streams.produce import partitioner, send_partition

log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc)


class Emitter:
    """Collects an agent's output records and hands them to the producer.

    Records go straight to the app's aiokafka producer (``drain``), one
    record batch per partition (streams/produce.py), not through Faust's
    one-message-at-a-time send buffer, which capped a worker at a few
    hundred events per second. Faust flushes that producer before
    it commits offsets, so an offset is never committed ahead of the records
    its event caused; the agent drains before it acks the batch.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.deadletter_topic = ""
        self.pending: list[tuple[str, bytes | None, bytes]] = []
        # Agents share this emitter; one may drain another's records. The lock
        # makes a drain return only once every record queued before it is in
        # the producer, whoever sent it; ``unacked`` lets a delivered drain
        # wait for those records' acknowledgements too, whoever sent them.
        self._lock = asyncio.Lock()
        self.unacked: list[asyncio.Future] = []
        self._partitioners: dict[str, Any] = {}

    async def _partitioner(self, producer: Any, topic: str) -> Any:
        choose = self._partitioners[topic] = await partitioner(producer, topic)
        return choose

    def send(self, topic: str, key: str | None, event: BaseModel) -> None:
        self.pending.append((topic, encode_key(key), encode(event)))

    def send_raw(self, topic: str, key: str | bytes | None, value: bytes) -> None:
        k = key.encode("utf-8") if isinstance(key, str) else key
        self.pending.append((topic, k, value))

    async def drain(self, delivered: bool = False) -> None:
        """Hand every pending record to the producer; with ``delivered``, also
        wait until the broker has acknowledged each of them."""
        async with self._lock:
            producer = self.app.producer._ensure_producer()  # aiokafka's, for its batch API
            while self.pending:
                pending, self.pending = self.pending, []
                by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
                # A batch writes many records under one key (a SKU's
                # availability per node): hashed once.
                chosen: dict[tuple[str, bytes | None], int] = {}
                for topic, key, value in pending:
                    partition = chosen.get((topic, key))
                    if partition is None:
                        choose = self._partitioners.get(topic) or await self._partitioner(producer, topic)
                        partition = chosen[(topic, key)] = choose(key)
                    by_partition.setdefault((topic, partition), []).append((key, value))
                for (topic, partition), records in by_partition.items():
                    for fut, _ in await send_partition(producer, topic, partition, records):
                        self.unacked.append(fut)
            # Acknowledged ones can go; a failed one stays until a delivered
            # drain raises it.
            self.unacked = [f for f in self.unacked if not f.done() or f.cancelled() or f.exception() is not None]
            acks = list(self.unacked)
        if delivered and acks:
            # Every record put before this drain began, whichever agent put
            # it: another agent's drain may have sent ours (found by the long
            # chaos run: a consume command sent by the stock agent's drain, the
            # order's state written before it was acknowledged, the worker
            # killed, the command lost and its shipment never consumed).
            await asyncio.gather(*acks)
            waited = set(map(id, acks))
            self.unacked = [f for f in self.unacked if id(f) not in waited]

    def dead_letter(
        self,
        *,
        source_topic: str,
        partition: int | None,
        offset: int | None,
        key: bytes | str | None,
        raw: bytes | None,
        reason: str,
        detail: str,
        queue: bool = True,
    ) -> tuple[str, bytes | None, bytes]:
        """Build a dead letter (and count it); ``queue`` hands it to the
        producer with the next drain, otherwise the caller sends it."""
        if isinstance(key, bytes):
            key_text = payload_text(key)
        else:
            key_text = key
        letter = DeadLetter(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=key_text,
            error=reason,
            detail=detail[:2000],
            payload=payload_text(raw),
            occurred_at=now(),
        )
        record = (self.deadletter_topic, encode_key(key_text), encode(letter))
        if queue:
            self.pending.append(record)
        metrics.DEAD_LETTERS.labels(reason).inc()
        log.info("dead letter %s %s[%s]@%s: %s", reason, source_topic, partition, offset, detail[:200])
        return record

    def dead_letter_record(self, message: Any, reason: str, detail: str,
                           queue: bool = True) -> tuple[str, bytes | None, bytes]:
        """Dead-letter a consumed Faust message (``event.message``)."""
        return self.dead_letter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            raw=message.value,
            reason=reason,
            detail=detail,
            queue=queue,
        )


def observe_latency(topic: str, record_timestamp_s: float | None) -> None:
    if record_timestamp_s:
        metrics.labelled(metrics.PROCESSING_LATENCY, topic).observe(max(0.0, time.time() - record_timestamp_s))
