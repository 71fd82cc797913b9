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
    """A state that has applied this offset makes the record a redelivery even
    without its seen marker: the marker and the state go to different
    changelog partitions, and a SIGKILL can land one without the other. The
    price (docs/reliability.md, bug 7): a record handed over below the
    state's highest applied offset is taken for a redelivery, so records must
    reach the handlers in offset order: agents/inorder.py sees to that."""
    if first_seen_at is not None and first_seen_at != here:
        return Seen.DUPLICATE
    if state_has_offset:
        return Seen.REDELIVERED
    return Seen.NEW
