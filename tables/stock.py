"""State tables: stock per SKU, orders, and the event_ids already applied.

All are Faust tables on RocksDB (rocksdict) backed by changelog topics. The
stock table is co-partitioned with the movements topic (keyed by SKU), the
orders table with the order commands topic (keyed by order_id).
"""
from __future__ import annotations

from typing import Any

from ..domain.atp import SkuState


class StockTable:
    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, sku: str) -> SkuState:
        d = self.table.get(sku.encode())
        return SkuState.from_dict(d) if d else SkuState(sku)

    def put(self, state: SkuState) -> None:
        self.table[state.sku.encode()] = state.to_dict()


class SeenTable:
    """event_id (scoped by record key) -> where it was first seen."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str) -> str | None:
        return self.table.get(key.encode())

    def put(self, key: str, where: str, force: bool = False) -> None:
        k = key.encode()
        if force or self.table.get(k) != where:
            self.table[k] = where


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
        return self.table.get(order_id.encode())

    def put(self, order_id: str, state: dict) -> None:
        self.table[order_id.encode()] = state
