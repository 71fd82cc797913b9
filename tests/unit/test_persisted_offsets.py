"""The persisted changelog offset moves only over records this store has
applied (tables/writes.py): a write landing after another worker's records
leaves it where it was, so the next restore reads those records."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from stockflow.tables.writes import _persisted, follows

TPX = TP("sf-stock-changelog", 3)


class Store:
    def __init__(self, persisted: int | None) -> None:
        self.offsets = {} if persisted is None else {TPX: persisted}

    def persisted_offset(self, tp):
        return self.offsets.get(tp)

    def set_persisted_offset(self, tp, offset):
        self.offsets[tp] = offset


def acked(store: Store, first: int, count: int) -> int | None:
    loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
        fut.set_result(SimpleNamespace(offset=first))
        _persisted(SimpleNamespace(data=store), TPX, count)(fut)
    finally:
        loop.close()
    return store.persisted_offset(TPX)


def test_follows_only_right_after_what_was_applied():
    assert follows(None, 0)
    assert not follows(None, 5)  # records 0..4 were never applied here
    assert follows(41, 42)
    assert not follows(41, 50)  # 42..49: another worker's
    assert not follows(41, 30)


def test_own_consecutive_batches_move_the_offset():
    store = Store(9)
    assert acked(store, 10, 3) == 12
    assert acked(store, 13, 2) == 14


def test_a_batch_after_another_writers_records_leaves_it():
    store = Store(9)
    assert acked(store, 20, 4) == 9  # 10..19 written by the partition's next owner
    assert acked(store, 24, 1) == 9  # and it stays behind them


def test_an_empty_store_takes_a_write_at_the_start_only():
    assert acked(Store(None), 0, 2) == 1
    assert acked(Store(None), 7, 2) is None


def test_a_failed_send_changes_nothing():
    store = Store(9)
    loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
        fut.set_exception(RuntimeError("broker away"))
        _persisted(SimpleNamespace(data=store), TPX, 3)(fut)
    finally:
        loop.close()
    assert store.persisted_offset(TPX) == 9
