"""A batch's table writes (tables/writes.py): held until ``send``, read back
from there meanwhile, then written to each partition's RocksDB in one write
batch before the first record goes to the producer."""
from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from faust.stores.rocksdb import RocksDBOptions
from faust.streams import current_event

from stockflow.tables import writes
from stockflow.tables.context import bind_event


class Event:  # bind_event holds a weak reference: a plain class, not a namespace
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


class Store:
    """The two RocksDB calls tables/writes.py makes of Faust's store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict = {}

    def _db_for_partition(self, partition: int):
        if partition not in self.dbs:
            self.dbs[partition] = RocksDBOptions().open(self.root / f"p{partition}.db")
        return self.dbs[partition]

    def _get(self, key: bytes):
        return self._db_for_partition(current_event().message.partition).get(key)


class Table:  # hashable, as Faust's tables are: pending writes are keyed by table
    def __init__(self, store: Store) -> None:
        self.name = "stock"
        self.data = store
        self.is_global = self.use_partitioner = False  # a partitioned table, as the stock table is
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "sf-stock-changelog")


@pytest.fixture
def table(tmp_path):
    store = Store(tmp_path)
    yield Table(store)
    for db in store.dbs.values():
        db.close()


@pytest.fixture
def sent(monkeypatch):
    calls: list = []

    async def send_partition(producer, topic, partition, records):
        calls.append((topic, partition, dict(records), {p: dict(db.items()) for p, db in stores[0].dbs.items()}))
        return []

    stores: list = []
    monkeypatch.setattr(writes, "send_partition", send_partition)
    return calls, stores


def test_pending_writes_are_read_back_and_reach_the_store_before_the_producer(table, sent):
    calls, stores = sent
    stores.append(table.data)
    batch = writes.begin()
    events = {p: Event(p) for p in (2, 5)}  # held: a bound event is a weak reference
    bind_event(events[2])
    writes.write(table, b"SKU1", {"on_hand": 1})
    writes.write(table, b"SKU1", {"on_hand": 2})  # the last value of a key wins
    writes.write(table, b"SKU2", {"on_hand": 7})
    bind_event(events[5])
    writes.write(table, b"SKU9", {"on_hand": 3})

    # Not in RocksDB yet, but every read of this task finds it, in its partition only.
    assert table.data._db_for_partition(2).get(b"SKU1") is None
    bind_event(events[2])
    assert writes.read(table, b"SKU1") == {"on_hand": 2}
    assert writes.read(table, b"SKU9") is None
    bind_event(events[5])
    assert writes.read(table, b"SKU9") == {"on_hand": 3}

    asyncio.run(batch.send(producer=None))

    assert [(t, p, r) for t, p, r, _ in calls] == [
        ("sf-stock-changelog", 2, {b"SKU1": b'{"on_hand":2}', b"SKU2": b'{"on_hand":7}'}),
        ("sf-stock-changelog", 5, {b"SKU9": b'{"on_hand":3}'}),
    ]
    # Already in both partitions' stores when the first record was handed over.
    first_store_view = calls[0][3]
    assert first_store_view[2] == {b"SKU1": b'{"on_hand":2}', b"SKU2": b'{"on_hand":7}'}
    assert first_store_view[5] == {b"SKU9": b'{"on_hand":3}'}
    # Nothing pending any more: reads go to the store.
    assert batch.pending == {}
    bind_event(events[2])
    assert writes.read(table, b"SKU2") == {"on_hand": 7}


def test_a_write_with_no_event_bound_is_refused(table):
    from stockflow.tables.exceptions import TableWriteError
    from faust.streams import _current_event

    writes.begin()
    _current_event.set(None)
    with pytest.raises(TableWriteError):
        writes.write(table, b"SKU1", {"on_hand": 1})


def test_stock_states_are_decoded_once_per_stored_bytes(table, sent):
    """The decoding memo (tables/stock.py) serves a state only while the
    store holds exactly the bytes it was decoded from."""
    from stockflow.domain.atp import NodeStock, SkuState
    from stockflow.tables.stock import StockTable

    calls, stores = sent
    stores.append(table.data)
    stock = StockTable(table)
    event = Event(4)
    bind_event(event)
    batch = writes.begin()
    state = SkuState("SKU1", stock={"DC1": NodeStock(5, 1)}, offsets={"m:4": 10})
    stock.put(state, {"inputs": [["m:4", 10]], "records": [["t", "SKU1", "{}"]]})
    # Pending, and already decoded: the same object back, outbox included.
    got, box = stock.load("SKU1")
    assert got is state and box == {"inputs": [["m:4", 10]], "records": [["t", "SKU1", "{}"]]}
    asyncio.run(batch.send(producer=None))
    assert stock.load("SKU1")[0] is state

    # Something else writes the store (a restore, another worker's record):
    # the memo no longer matches and the store's bytes win.
    newer = SkuState("SKU1", stock={"DC1": NodeStock(9, 0)}, offsets={"m:4": 12})
    table.data._db_for_partition(4).put(b"SKU1", writes.encode_value(newer.to_dict()))
    got, box = stock.load("SKU1")
    assert got == newer and got is not state and box is None
    assert stock.load("SKU9") == (SkuState("SKU9"), None)

    # Bounded: the oldest entry goes first.
    stock.keep = 2
    for sku in ("A", "B", "C"):
        stock.put(SkuState(sku))
    assert list(stock._decoded) == ["B", "C"]
    stock.keep = 0  # STOCKFLOW_DECODED_SKUS=0: nothing more is kept
    stock.put(SkuState("D"))
    assert "D" not in stock._decoded and stock.load("D") == (SkuState("D"), None)


def test_a_bound_read_goes_to_its_partitions_db_and_other_reads_through_faust(table):
    faust_reads = []
    table.data._get = lambda key: faust_reads.append(key) or None  # Faust's read, with its key index
    table.data._db_for_partition(3).put(b"SKU1", b'{"on_hand":4}')
    event = Event(3)
    bind_event(event)
    assert writes.read(table, b"SKU1") == {"on_hand": 4}
    assert faust_reads == []  # straight to partition 3's DB
    table.is_global = True  # a global table's keys are not the event's partition's: Faust decides
    assert writes.read(table, b"SKU1") is None and faust_reads == [b"SKU1"]


def test_encode_value_writes_what_fausts_json_codec_writes():
    import orjson
    from datetime import datetime, timezone

    faust_options = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
    for value in ({"sku": "S", "stock": {"N1": [3, 1]}, "at": datetime(2026, 12, 7, tzinfo=timezone.utc)},
                  {1: "an int key", "2": [None, 1.5]}, "text", [1, {"a": {}}]):
        assert writes.encode_value(value) == orjson.dumps(value, option=faust_options)
    assert b'"2026-12-07T00:00:00Z"' in writes.encode_value({"at": datetime(2026, 12, 7, tzinfo=timezone.utc)})
