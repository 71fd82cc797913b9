"""A seeded retail-day traffic generator: the same seed gives the same events.

It yields ``(logical_topic, key, value)`` triples, value being a JSON-ready
dict or raw bytes (hostile records on purpose), so the demo, the simulate
command and tests publish exactly the same traffic.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

from ..streams.events import Node

Record = tuple[str, str | None, "dict | bytes"]


@dataclass
class Mix:
    """Shares of each kind of event in the stream (normalised on use)."""

    sale: float = 0.45
    receipt: float = 0.12
    count: float = 0.08
    adjustment: float = 0.05
    damage: float = 0.03
    transfer: float = 0.05
    expected: float = 0.04
    expected_cancel: float = 0.01
    replay: float = 0.01  # a producer retry: an earlier event sent again
    hostile: float = 0.005  # not JSON, unknown node, bad qty
    order: float = 0.15  # an order from a channel


@dataclass
class RetailDay:
    nodes: list[Node]
    n_skus: int = 2000
    seed: int = 7
    mix: Mix = field(default_factory=Mix)
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc))

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.skus = [f"SKU-{i:05d}" for i in range(self.n_skus)]
        self.node_ids = [n.node_id for n in self.nodes]
        self.stores = [n.node_id for n in self.nodes if n.kind == "store"]
        self.dcs = [n.node_id for n in self.nodes if n.kind == "dc"]
        self._seq = 0
        self._sent: list[Record] = []
        self._open_supply: list[tuple[str, str, str]] = []  # (supply_id, sku, node)
        self.clock = self.start

    # ------------------------------------------------------------------ ids
    def _event_id(self) -> str:
        self._seq += 1
        return f"sim{self.seed}-{self._seq}"

    def _ts(self) -> str:
        return self.clock.isoformat()

    def _movement(self, sku: str, node: str, type_: str, qty: int | None, **kw) -> Record:
        v = {"event_id": self._event_id(), "occurred_at": self._ts(), "sku": sku, "node_id": node, "type": type_}
        if qty is not None:
            v["qty"] = qty
        v.update(kw)
        return ("movements", sku, v)

    # ------------------------------------------------------------- traffic
    def network(self) -> Iterator[Record]:
        for n in self.nodes:
            yield ("nodes", n.node_id, n.model_dump(mode="json"))

    def initial_stock(self) -> Iterator[Record]:
        """A full snapshot as count events: DCs carry the range, stores part of it."""
        rng = self.rng
        for sku in self.skus:
            for dc in self.dcs:
                yield self._movement(sku, dc, "count", rng.randint(20, 200))
            for store in self.stores:
                if rng.random() < 0.3:
                    yield self._movement(sku, store, "count", rng.randint(0, 12))

    def hot_sku(self) -> str:
        # A few SKUs sell far more than the rest, as on a real day.
        rng = self.rng
        if rng.random() < 0.3:
            return self.skus[int(rng.random() ** 3 * min(50, self.n_skus))]
        return rng.choice(self.skus)

    def next_events(self) -> list[Record]:
        """The next step of the day: usually one event, a transfer is two."""
        rng = self.rng
        self.clock += timedelta(seconds=rng.expovariate(1 / 0.5))
        m = self.mix
        kinds = ["sale", "receipt", "count", "adjustment", "damage", "transfer", "expected", "expected_cancel",
                 "replay", "hostile", "order"]
        weights = [getattr(m, k) for k in kinds]
        kind = rng.choices(kinds, weights)[0]
        sku = self.hot_sku()
        out: list[Record]
        if kind == "sale":
            out = [self._movement(sku, rng.choice(self.stores), "sale", rng.randint(1, 3))]
        elif kind == "receipt":
            if self._open_supply and rng.random() < 0.5:
                sid, ssku, node = self._open_supply.pop(rng.randrange(len(self._open_supply)))
                out = [self._movement(ssku, node, "receipt", rng.randint(10, 50), supply_id=sid)]
            else:
                out = [self._movement(sku, rng.choice(self.node_ids), "receipt", rng.randint(5, 60))]
        elif kind == "count":
            out = [self._movement(sku, rng.choice(self.stores), "count", rng.randint(0, 15))]
        elif kind == "adjustment":
            out = [self._movement(sku, rng.choice(self.node_ids), "adjustment", rng.choice([-2, -1, 1, 2, 5]))]
        elif kind == "damage":
            out = [self._movement(sku, rng.choice(self.node_ids), "damage", 1)]
        elif kind == "transfer":
            src, dst = rng.choice(self.dcs), rng.choice(self.stores)
            q = rng.randint(2, 10)
            out = [self._movement(sku, src, "transfer_out", q), self._movement(sku, dst, "transfer_in", q)]
        elif kind == "expected":
            sid = f"PO-{self.seed}-{self._seq}"
            node = rng.choice(self.dcs)
            eta = (self.clock + timedelta(days=rng.randint(1, 10))).isoformat()
            self._open_supply.append((sid, sku, node))
            out = [self._movement(sku, node, "expected", rng.randint(20, 100), supply_id=sid, eta=eta)]
        elif kind == "expected_cancel" and self._open_supply:
            sid, ssku, node = self._open_supply.pop(rng.randrange(len(self._open_supply)))
            out = [self._movement(ssku, node, "expected_cancel", None, supply_id=sid)]
        elif kind == "replay" and self._sent:
            out = [self._sent[rng.randrange(len(self._sent))]]
        elif kind == "hostile":
            out = [self._hostile(sku)]
        elif kind == "order":
            out = [self._order()]
        else:
            out = [self._movement(sku, rng.choice(self.stores), "sale", 1)]
        for r in out:
            if isinstance(r[2], dict) and len(self._sent) < 10_000:
                self._sent.append(r)
        return out

    CHANNELS = ("web", "app", "marketplace", "store", "edi", "social")

    def _order(self) -> Record:
        rng = self.rng
        self._orders = getattr(self, "_orders", 0) + 1
        order_id = f"ORD-{self.seed}-{self._orders}"
        method = rng.choices(["ship", "pickup", "curbside", "same_day"], [0.6, 0.15, 0.05, 0.2])[0]
        lines = []
        for i, sku in enumerate(dict.fromkeys(self.hot_sku() for _ in range(rng.choice([1, 1, 2, 3])))):
            lines.append({"line_id": f"L{i + 1}", "sku": sku, "qty": rng.choice([1, 1, 1, 2]),
                          "unit_price": round(rng.uniform(5, 120), 2)})
        delivery: dict = {"method": method}
        if method in ("pickup", "curbside"):
            pickup = [n.node_id for n in self.nodes if method in n.services]
            delivery["pickup_node_id"] = rng.choice(pickup)
        else:
            near = rng.choice([n for n in self.nodes if n.kind == "store"])
            delivery["address"] = {"lat": round(near.lat + rng.uniform(-0.2, 0.2), 4),
                                   "lon": round(near.lon + rng.uniform(-0.2, 0.2), 4), "country": "DE"}
        customer = {"customer_id": f"C{rng.randrange(100_000)}"}
        if rng.random() < 0.8:
            customer["email"] = f"{customer['customer_id'].lower()}@example.com"
        else:
            customer["phone"] = f"+4915{rng.randrange(10**8):08d}"
        return ("order_commands", order_id, {
            "event_id": self._event_id(), "occurred_at": self._ts(), "type": "create", "order_id": order_id,
            "channel": rng.choice(self.CHANNELS), "customer": customer, "lines": lines, "delivery": delivery,
            "allow_partial": rng.random() < 0.9, "allow_backorder": rng.random() < 0.85,
        })

    def _hostile(self, sku: str) -> Record:
        rng = self.rng
        pick = rng.randrange(4)
        if pick == 0:
            return ("movements", sku, b"{not json")
        if pick == 1:
            return self._movement(sku, "NODE-THAT-DOES-NOT-EXIST", "receipt", 1)
        if pick == 2:
            return self._movement(sku, rng.choice(self.node_ids), "sale", -4)
        return ("movements", sku, {"event_id": self._event_id(), "sku": sku, "qty": "lots"})
