"""State tables: stock per SKU, orders, and the event_ids already applied.

All are Faust tables on RocksDB (rocksdict) backed by changelog topics. The
stock table is co-partitioned with the movements topic (keyed by SKU), the
orders table with the order commands topic (keyed by order_id).
"""
from __future__ import annotations

from typing import Any

import orjson

from ..domain.atp import SkuState
from .writes import read, read_raw, values, write


class StockTable:
    def __init__(self, table: Any, keep: int = 10_000) -> None:
        self.table = table
        # How many SKUs' last decoded states are kept (STOCKFLOW_DECODED_SKUS).
        # A SKU's document holds all its nodes (50 in the bench), and decoding
        # it was the largest single cost of a single movement
        # (docs/benchmarks.md, session 12).
        self.keep = keep
        # sku -> (the bytes stored, the state and outbox they decode to). Only
        # a decoding memo: every load still reads the store (or the batch's
        # pending write) and uses the entry only when the bytes are the same,
        # so a restore, a rebalance or another worker's write cannot make it
        # stale. The states are immutable by convention (domain/ copies on
        # write), so one object can serve every batch that reads the SKU.
        self._decoded: dict[str, tuple[bytes, SkuState, dict | None]] = {}

    def get(self, sku: str) -> SkuState:
        return self.load(sku)[0]

    def load(self, sku: str) -> tuple[SkuState, dict | None]:
        """The state and the outbox it was written with (agents/inventory.py)."""
        if getattr(self.table, "data", None) is None:  # a plain mapping (unit tests)
            d = read(self.table, sku.encode())
            return (SkuState.from_dict(d), d.get("outbox")) if d else (SkuState(sku), None)
        raw = read_raw(self.table, sku.encode())
        if raw is None:
            return SkuState(sku), None
        held = self._decoded.get(sku)
        if held is not None and held[0] == raw:
            return held[1], held[2]
        d = orjson.loads(raw)
        if not d:
            return SkuState(sku), None
        state, box = SkuState.from_dict(d), d.get("outbox")
        self._remember(sku, raw, state, box)
        return state, box

    def put(self, state: SkuState, outbox: dict | None = None) -> None:
        d = state.to_dict()
        if outbox:
            d["outbox"] = outbox
        data = write(self.table, state.sku.encode(), d)
        if data is not None:
            self._remember(state.sku, data, state, outbox or None)

    def _remember(self, sku: str, raw: bytes, state: SkuState, box: dict | None) -> None:
        decoded = self._decoded
        if sku not in decoded:
            if self.keep <= 0:
                return
            if len(decoded) >= self.keep:
                del decoded[next(iter(decoded))]  # the oldest entry
        decoded[sku] = (raw, state, box)


class SeenTable:
    """event_id (scoped by record key) -> where it was first seen."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> str | None:
        return read(self.table, key.encode())

    def put(self, key: str, where: str) -> None:
        write(self.table, key.encode(), where)

    # Per partition, the input offsets (per "topic:partition") through which
    # every record an outbox decided has been acknowledged by the broker
    # (agents/batches.py). A leading NUL keeps it apart from "key|event_id".
    # Like every table access, it needs an event of that partition bound.
    @staticmethod
    def _sent_key(partition: int) -> bytes:
        return b"\x00sent:%d" % partition

    def sent_through(self, partition: int) -> dict[str, int]:
        return read(self.table, self._sent_key(partition)) or {}

    def mark_sent(self, partition: int, offsets: dict[str, int]) -> None:
        current = self.sent_through(partition)
        merged = dict(current)
        for source, offset in offsets.items():
            if offset > merged.get(source, -1):
                merged[source] = offset
        if merged != current:
            write(self.table, self._sent_key(partition), merged)


def approx_keys(table: Any) -> int:
    """Keys held locally, from RocksDB's estimate: counting would walk every key."""
    dbs = getattr(getattr(table, "data", None), "_dbs", None)
    if dbs is None:
        try:
            return len(table)
        except Exception:
            return 0
    total = 0
    for db in list(dbs.values()):
        try:
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        except Exception:
            pass
    return total


class OrderTable:
    """order_id -> the order's state document (domain/orders.py)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, order_id: str) -> dict | None:
        return read(self.table, order_id.encode())

    def values(self) -> Any:
        return values(self.table)

    def put(self, order_id: str, state: dict) -> None:
        write(self.table, order_id.encode(), state)
