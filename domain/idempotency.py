"""Telling a new record from a redelivery and from a duplicate: pure.

At-least-once delivery hands a worker the same record again after a crash
(same topic, partition and offset); a producer retrying hands it a second
record with the same event_id (another offset). The first must not change
state again but may re-emit its outputs (they carry stable ids); the second
must change nothing and emit nothing.
"""
from __future__ import annotations

from enum import Enum


class Seen(Enum):
    NEW = "new"
    REDELIVERED = "redelivered"  # this very record was applied before a crash
    DUPLICATE = "duplicate"  # another record carried this event_id first


def position(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def dedupe_key(record_key: str, event_id: str) -> str:
    # event_id is unique per producer only; the record key (SKU, order) keeps
    # two producers' equal ids apart while a replay still matches.
    return f"{record_key}|{event_id}"


def classify(first_seen_at: str | None, here: str, state_has_offset: bool) -> Seen:
    """The seen marker decides; the state's applied offset only tells a
    redelivery from a state that was lost. A record never seen is new even
    below the state's highest applied offset: across a rebalance the consumer
    can hand over records past a gap (found by tests/chaos), so "highest
    offset applied" does not mean "every offset below it applied". Both the
    marker and the state are written with each batch and again on every
    redelivery, so neither can fall behind the other for long."""
    if first_seen_at is None:
        return Seen.NEW
    if first_seen_at != here:
        return Seen.DUPLICATE
    if state_has_offset:
        return Seen.REDELIVERED
    return Seen.NEW
