"""Writing what agents decide: output events, dead letters, and their metrics."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from .. import metrics
from ..streams.codec import encode, encode_key, payload_text
from ..streams.events import DeadLetter

log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc)


class Emitter:
    """Buffers records on Faust topics; Faust flushes them before each commit,
    so an offset is never committed ahead of what its record caused."""

    def __init__(self, topics: dict[str, Any], deadletter_topic: Any) -> None:
        self.topics = topics  # full topic name -> Faust topic
        self.deadletter_topic = deadletter_topic

    def send(self, topic: str, key: str | None, event: BaseModel) -> None:
        self.topics[topic].send_soon(key=encode_key(key), value=encode(event))

    def send_raw(self, topic: str, key: str | bytes | None, value: bytes) -> None:
        k = key.encode("utf-8") if isinstance(key, str) else key
        self.topics[topic].send_soon(key=k, value=value)

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
    ) -> None:
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
        self.deadletter_topic.send_soon(key=encode_key(key_text), value=encode(letter))
        metrics.DEAD_LETTERS.labels(reason).inc()
        log.info("dead letter %s %s[%s]@%s: %s", reason, source_topic, partition, offset, detail[:200])

    def dead_letter_record(self, message: Any, reason: str, detail: str) -> None:
        """Dead-letter a consumed Faust message (``event.message``)."""
        self.dead_letter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            raw=message.value,
            reason=reason,
            detail=detail,
        )


def observe_latency(topic: str, record_timestamp_s: float | None) -> None:
    if record_timestamp_s:
        metrics.PROCESSING_LATENCY.labels(topic).observe(max(0.0, time.time() - record_timestamp_s))
