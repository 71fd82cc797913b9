"""Table writes of one agent batch, sent as one producer batch per partition.

Why not ``table[key] = value``: Faust sends each table write to its
changelog on its own (a FutureMessage, its send buffer, a producer future,
and an ack callback that writes the persisted offset into RocksDB once per
record). In the worker profiles that path was about a quarter of the CPU
(docs/benchmarks.md). Here a write waits in the batch's ``TableWrites``
(the last value of a key wins; ``read`` finds it there); ``send`` writes
them to the local store as one RocksDB write batch per partition, hands
them to the producer as one record batch per changelog partition, and
records each partition's persisted offset once, when its batch is
acknowledged. Faust's commit flushes the
producer, so an offset is still never committed ahead of these records.

Each agent task has its own ``TableWrites`` (a context variable): the two
agents interleave at every await, and one must never send, or wait for, the
other's writes.
"""
from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

import orjson
import rocksdict
from faust.streams import current_event
from faust.types import TP

from ..streams.produce import send_partition
from .exceptions import TableWriteError

log = logging.getLogger(__name__)
# changelog partitions whose persisted offset stopped following our writes
_BEHIND: set = set()
_WRITES: ContextVar["TableWrites | None"] = ContextVar("stockflow_table_writes", default=None)
# What Faust's "json" codec writes (faust/utils/json.py with orjson), so the
# store and the changelog hold what a Faust write would have put there.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def encode_value(value: Any) -> bytes:
    # OPT_NON_STR_KEYS doubles the time of a document (3.1 against 1.7 us
    # for an order's, session 22) and changes nothing where every key is a
    # string, as in every table stockflow writes: only a key that is not
    # (a TypeError without it) pays for it.
    try:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)
    except TypeError:
        return orjson.dumps(value, option=_JSON_OPTIONS)


def values(table: Any) -> Any:
    """Every value held locally, decoded (a scan: for the dashboard)."""
    for raw in table.values():
        yield orjson.loads(raw) if isinstance(raw, (bytes, bytearray)) else raw


def read(table: Any, key: bytes) -> Any:
    """A table value in the current event's partition, or None: this task's
    pending write of it (``TableWrites``), else the store read Faust's
    ``table.get`` ends in, without its mapping layers."""
    if getattr(table, "data", None) is None:  # a plain mapping (unit tests)
        return table.get(key)
    raw = read_raw(table, key)
    return None if raw is None else orjson.loads(raw)


def read_raw(table: Any, key: bytes) -> bytes | None:
    """``read`` before decoding: the bytes as the changelog carries them."""
    event = current_event()
    if event is None:
        return table.data._get(key)
    partition = event.message.partition
    writes = _WRITES.get()
    if writes is not None and writes.pending:
        held = writes.pending.get((table, partition))
        if held is not None and key in held:
            return held[key]
    if table.is_global or table.use_partitioner:
        return table.data._get(key)
    # The bound event's partition, as Faust's ``_get`` reads it, without
    # the key index it updates on each hit (an LRU behind a lock): only
    # reads with no event bound use that index, and they find a key without
    # it (about 1% of the ingest profile, session 19).
    return table.data._db_for_partition(partition).get(key)


def write(table: Any, key: bytes, value: Any) -> bytes | None:
    """Set a key in the current event's partition: through the batch's
    ``TableWrites`` inside an agent batch, through Faust elsewhere. Returns
    the bytes written (None for a plain mapping)."""
    if not hasattr(table, "changelog_topic"):  # a plain mapping (unit tests)
        table[key] = value
        return None
    data = encode_value(value)
    writes = _WRITES.get()
    if writes is None:
        table[key] = data  # the table's values are bytes (app.py)
    else:
        writes.set(table, key, data)
    return data


def begin() -> "TableWrites":
    """Start collecting this task's table writes (one agent batch)."""
    writes = TableWrites()
    _WRITES.set(writes)
    return writes


class TableWrites:
    def __init__(self) -> None:
        # (table, partition) -> {key: value bytes}, in first-write order
        self.pending: dict[tuple[Any, int], dict[bytes, bytes]] = {}

    def set(self, table: Any, key: bytes, data: bytes) -> None:
        event = current_event()
        if event is None:
            raise TableWriteError(f"write to {table.name!r} with no event bound (tables/context.py)")
        # The bound event's partition, as Faust's write; the store gets it in
        # ``send``, and until then ``read`` finds it here.
        self.pending.setdefault((table, event.message.partition), {})[key] = data

    async def send(self, producer: Any) -> list[asyncio.Future]:
        """Write every pending record to the local store, then hand them to
        the producer (``producer`` is the aiokafka producer); the futures
        resolve once the broker has them."""
        pending, self.pending = self.pending, {}
        # Before the first await: every key is always either pending here or
        # in the store, for any reader that runs meanwhile.
        for (table, partition), records in pending.items():
            store_batch(table.data, partition, records)
        futures = []
        for (table, partition), records in pending.items():
            tp = TP(table.changelog_topic.get_topic_name(), partition)
            for fut, count in await send_partition(producer, tp.topic, partition, records.items()):
                fut.add_done_callback(_persisted(table, tp, count))
                futures.append(fut)
        return futures


def store_batch(store: Any, partition: int, records: dict[bytes, bytes]) -> None:
    """One RocksDB write batch per partition instead of Faust's ``_set`` per
    key: a put costs a WAL append each (3.1 us against 0.9 us a record in
    a batch of 500 here), and Faust's adds a current-event lookup and a
    locked LRU index update (``_get`` finds a key without that index: it
    asks each partition's bloom filter). Store._set was a tenth of the
    ingest profile (docs/benchmarks.md, session 12)."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, data in records.items():
        batch.put(key, data)
    store._db_for_partition(partition).write(batch)


def _persisted(table: Any, tp: TP, count: int) -> Any:
    def done(fut: asyncio.Future) -> None:
        # What Faust's own ack callback does, once per record batch: a
        # restart on this data dir reads the changelog on from there.
        if not fut.cancelled() and fut.exception() is None:
            store = table.data
            first, persisted = fut.result().offset, store.persisted_offset(tp)
            if follows(persisted, first):
                store.set_persisted_offset(tp, first + count - 1)
                _BEHIND.discard(tp)
            elif tp not in _BEHIND:  # once until it follows again, not once per batch
                _BEHIND.add(tp)
                log.warning("%s:%d: our records landed at %d, but this store has applied the changelog only "
                            "through %s: another worker wrote in between (a rebalance overlap); the store "
                            "keeps reading from there on its next restore", tp.topic, tp.partition, first, persisted)

    return done


def follows(persisted: int | None, first: int) -> bool:
    """Whether a batch written at ``first`` continues what the store has
    applied. Faust's callback records any write's offset as persisted, and so
    did this one: a worker that still wrote after its partition had passed to
    another (its batch ending after the rebalance, or a broker restart that
    lets the group move on first) recorded an offset past the new owner's
    records, which its store never applied, and its next restore started
    after them: those keys stayed at its own older values. Only a write
    right after the persisted offset moves it; otherwise the next restore
    reads from the old offset, our own records included (last value wins)."""
    if persisted is None:
        return first == 0
    return first == persisted + 1
