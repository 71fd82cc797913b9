"""Binding a Faust event as "current" while an agent works through a batch.

Faust picks a table read's RocksDB bucket, and a write's bucket and
changelog partition, from the current event. An agent batch
(streams/inbox.py) hands over a list, so the agent binds each event before
touching a table for it; otherwise a read misses and a write lands in
another partition's changelog, lost at the next rebalance.
"""
from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event


def bind_event(event: Any) -> None:
    _current_event.set(weakref.ref(event))
