"""A seeded retail day: the input traffic, and the actors that react to stockflow.

Two pure parts, no I/O (``connectors/simulate.py`` runs them against a broker):

- ``RetailDay`` yields the day's input as ``(logical_topic, key, value)``
  triples, value being a JSON-ready dict or raw bytes (hostile records on
  purpose): POS sales, receipts, counts, transfers, expected supply, orders
  from every channel and delivery method, the customers' cancellations and
  address changes shortly after their orders, producer retries and hostile
  records. The same seed and settings give the same stream, record for record.
- ``FulfilmentActor`` plays the stores, the WMS, the carriers and the
  customers after delivery. A WMS only ships what was released to it, so the
  actor is driven by stockflow's own ``fulfillment.requests``: per released
  shipment it sends picked, packed, shipped, delivered (ready_for_pickup and
  picked_up for pickup and curbside), reports a share of shipments ``short``
  and a few ``rejected``, honours ``cancel`` requests, and for a share of
  delivered shipments sends the customer's ``return_request`` and then the
  WMS's ``return_received``. Each shipment's fate comes from a
  ``random.Random`` seeded with the run's seed and the shipment id, so the
  same seed and the same requests give the same updates whatever order the
  requests arrive in.

Reproducibility: the generated input stream is a function of the seed. The
reactive part follows stockflow's decisions, which are themselves
deterministic for the same input, but its timing is wall-clock: a
customer's cancel and a WMS's ``shipped`` can cross on the wire, and which
wins (a refused cancel, or a dead-lettered ``shipped``) may differ between
runs. Those races are real and expected; the demo counts the dead letters.
"""
from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

from ..errors import StockflowError
from ..streams.events import Node

Record = tuple[str, str | None, "dict | bytes"]

CHANNELS = ("web", "app", "marketplace", "store", "edi", "social")
METHODS = ("ship", "pickup", "curbside", "same_day")
DEFAULT_CHANNELS = {"web": 45, "app": 25, "marketplace": 10, "store": 10, "edi": 5, "social": 5}
DEFAULT_METHODS = {"ship": 60, "pickup": 15, "curbside": 5, "same_day": 20}

DEFAULT_CANCEL_RATE = 0.05
DEFAULT_SHORT_RATE = 0.03
DEFAULT_RETURN_RATE = 0.08
DEFAULT_REJECT_RATE = 0.01
DEFAULT_CHANGE_ADDRESS_RATE = 0.01


class SimulationError(StockflowError):
    """Simulator settings that cannot work (a bad share, an unknown channel)."""


def parse_shares(spec: str | None, allowed: tuple[str, ...], what: str) -> dict[str, float] | None:
    """``"web=5,app=3,store=1"`` as weights; None when no spec was given.

    Names not listed get weight 0. Raises SimulationError with the reason."""
    if spec is None or not spec.strip():
        return None
    shares: dict[str, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise SimulationError(f"--{what}: empty entry in {spec!r} (expected name=weight,...)")
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep:
            raise SimulationError(f"--{what}: {part!r} is not name=weight")
        if name not in allowed:
            raise SimulationError(f"--{what}: unknown {name!r}; expected one of {', '.join(allowed)}")
        if name in shares:
            raise SimulationError(f"--{what}: {name!r} given twice")
        try:
            weight = float(raw)
        except ValueError:
            raise SimulationError(f"--{what}: weight of {name!r} is not a number: {raw.strip()!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise SimulationError(f"--{what}: weight of {name!r} must be a finite number >= 0, got {raw.strip()!r}")
        shares[name] = weight
    if sum(shares.values()) <= 0:
        raise SimulationError(f"--{what}: the weights add up to 0")
    return shares


def check_rate(name: str, value: float | None, default: float) -> float:
    """A share in [0, 1]; the default when not given."""
    if value is None:
        return default
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise SimulationError(f"--{name}: expected a share between 0 and 1, got {value!r}")
    return float(value)


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
    channels: dict[str, float] | None = None
    methods: dict[str, float] | None = None
    cancel_rate: float = DEFAULT_CANCEL_RATE
    change_address_rate: float = DEFAULT_CHANGE_ADDRESS_RATE
    # Customers cancel this many simulated seconds after ordering, on average
    # (the day's clock runs about rate/2 times faster than the wall clock, so
    # most cancels reach stockflow before the WMS ships).
    cancel_after_s: float = 30.0

    def __post_init__(self) -> None:
        if self.n_skus < 1:
            raise SimulationError("the catalogue needs at least one SKU")
        self.rng = random.Random(self.seed)
        self.skus = [f"SKU-{i:05d}" for i in range(self.n_skus)]
        self.node_ids = [n.node_id for n in self.nodes]
        self.stores = [n.node_id for n in self.nodes if n.kind == "store"]
        self.dcs = [n.node_id for n in self.nodes if n.kind == "dc"]
        channels = self.channels or DEFAULT_CHANNELS
        methods = self.methods or DEFAULT_METHODS
        self._channel_names = [c for c in CHANNELS if channels.get(c, 0) > 0]
        self._channel_weights = [channels[c] for c in self._channel_names]
        self._method_names = [m for m in METHODS if methods.get(m, 0) > 0]
        self._method_weights = [methods[m] for m in self._method_names]
        self._pickup_nodes = {m: [n.node_id for n in self.nodes if m in n.services] for m in ("pickup", "curbside")}
        for m in self._method_names:
            if m in self._pickup_nodes and not self._pickup_nodes[m]:
                raise SimulationError(f"no node offers {m}")
        self.cancel_rate = check_rate("cancel-rate", self.cancel_rate, DEFAULT_CANCEL_RATE)
        self.change_address_rate = check_rate("change-address-rate", self.change_address_rate, DEFAULT_CHANGE_ADDRESS_RATE)
        self._seq = 0
        self._orders = 0
        self._sent: list[Record] = []
        self._open_supply: list[tuple[str, str, str]] = []  # (supply_id, sku, node)
        # customers' follow-ups: (due on the day's clock, seq, record)
        self._follow_ups: list[tuple[datetime, int, Record]] = []
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
        """The next step of the day: usually one event, a transfer is two, and
        customers' follow-ups that fell due come along."""
        rng = self.rng
        self.clock += timedelta(seconds=rng.expovariate(1 / 0.5))
        out: list[Record] = []
        while self._follow_ups and self._follow_ups[0][0] <= self.clock:
            out.append(heapq.heappop(self._follow_ups)[2])
        m = self.mix
        kinds = ["sale", "receipt", "count", "adjustment", "damage", "transfer", "expected", "expected_cancel",
                 "replay", "hostile", "order"]
        weights = [getattr(m, k) for k in kinds]
        kind = rng.choices(kinds, weights)[0]
        sku = self.hot_sku()
        if kind == "sale":
            out.append(self._movement(sku, rng.choice(self.stores), "sale", rng.randint(1, 3)))
        elif kind == "receipt":
            if self._open_supply and rng.random() < 0.5:
                sid, ssku, node = self._open_supply.pop(rng.randrange(len(self._open_supply)))
                out.append(self._movement(ssku, node, "receipt", rng.randint(10, 50), supply_id=sid))
            else:
                out.append(self._movement(sku, rng.choice(self.node_ids), "receipt", rng.randint(5, 60)))
        elif kind == "count":
            out.append(self._movement(sku, rng.choice(self.stores), "count", rng.randint(0, 15)))
        elif kind == "adjustment":
            out.append(self._movement(sku, rng.choice(self.node_ids), "adjustment", rng.choice([-2, -1, 1, 2, 5])))
        elif kind == "damage":
            out.append(self._movement(sku, rng.choice(self.node_ids), "damage", 1))
        elif kind == "transfer":
            src, dst = rng.choice(self.dcs), rng.choice(self.stores)
            q = rng.randint(2, 10)
            out += [self._movement(sku, src, "transfer_out", q), self._movement(sku, dst, "transfer_in", q)]
        elif kind == "expected":
            sid = f"PO-{self.seed}-{self._seq}"
            node = rng.choice(self.dcs)
            eta = (self.clock + timedelta(days=rng.randint(1, 10))).isoformat()
            self._open_supply.append((sid, sku, node))
            out.append(self._movement(sku, node, "expected", rng.randint(20, 100), supply_id=sid, eta=eta))
        elif kind == "expected_cancel" and self._open_supply:
            sid, ssku, node = self._open_supply.pop(rng.randrange(len(self._open_supply)))
            out.append(self._movement(ssku, node, "expected_cancel", None, supply_id=sid))
        elif kind == "replay" and self._sent:
            out.append(self._sent[rng.randrange(len(self._sent))])
        elif kind == "hostile":
            out.append(self._hostile(sku))
        elif kind == "order":
            out.append(self._order())
        else:
            out.append(self._movement(sku, rng.choice(self.stores), "sale", 1))
        for r in out:
            if isinstance(r[2], dict) and len(self._sent) < 10_000:
                self._sent.append(r)
        return out

    def _order(self) -> Record:
        rng = self.rng
        self._orders += 1
        order_id = f"ORD-{self.seed}-{self._orders}"
        method = rng.choices(self._method_names, self._method_weights)[0]
        lines = []
        for i, sku in enumerate(dict.fromkeys(self.hot_sku() for _ in range(rng.choice([1, 1, 2, 3])))):
            lines.append({"line_id": f"L{i + 1}", "sku": sku, "qty": rng.choice([1, 1, 1, 2]),
                          "unit_price": round(rng.uniform(5, 120), 2)})
        delivery: dict = {"method": method}
        if method in ("pickup", "curbside"):
            delivery["pickup_node_id"] = rng.choice(self._pickup_nodes[method])
        else:
            delivery["address"] = self._address_near_a_store()
        customer = {"customer_id": f"C{rng.randrange(100_000)}"}
        if rng.random() < 0.8:
            customer["email"] = f"{customer['customer_id'].lower()}@example.com"
        else:
            customer["phone"] = f"+4915{rng.randrange(10**8):08d}"
        create = {
            "event_id": self._event_id(), "occurred_at": self._ts(), "type": "create", "order_id": order_id,
            "channel": rng.choices(self._channel_names, self._channel_weights)[0], "customer": customer,
            "lines": lines, "delivery": delivery,
            "allow_partial": rng.random() < 0.9, "allow_backorder": rng.random() < 0.85,
        }
        self._customer_follow_up(order_id, method, lines)
        return ("order_commands", order_id, create)

    def _address_near_a_store(self) -> dict:
        rng = self.rng
        near = rng.choice([n for n in self.nodes if n.kind == "store"])
        return {"lat": round(near.lat + rng.uniform(-0.2, 0.2), 4),
                "lon": round(near.lon + rng.uniform(-0.2, 0.2), 4), "country": "DE"}

    def _customer_follow_up(self, order_id: str, method: str, lines: list[dict]) -> None:
        """Some customers change their mind shortly after ordering."""
        rng = self.rng
        roll = rng.random()
        due = self.clock + timedelta(seconds=rng.expovariate(1 / self.cancel_after_s))
        if roll < self.cancel_rate:
            cmd: dict = {"event_id": f"{self._event_id()}-cust", "occurred_at": due.isoformat(), "order_id": order_id}
            if len(lines) > 1 and rng.random() < 0.4:
                line = rng.choice(lines)
                cmd.update(type="cancel_line", line_id=line["line_id"])
                if line["qty"] > 1 and rng.random() < 0.5:
                    cmd["qty"] = 1
            else:
                cmd["type"] = "cancel"
        elif roll < self.cancel_rate + self.change_address_rate and method in ("ship", "same_day"):
            cmd = {"event_id": f"{self._event_id()}-cust", "occurred_at": due.isoformat(), "order_id": order_id,
                   "type": "change_address", "address": self._address_near_a_store()}
        else:
            return
        heapq.heappush(self._follow_ups, (due, self._seq, ("order_commands", order_id, cmd)))

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


# ------------------------------------------------------------ fulfilment side
PICKUP_METHODS = ("pickup", "curbside")
# (step, seconds after the previous step: low, high) at pace 1
SHIP_STEPS = (("picked", 0.5, 2.0), ("packed", 0.3, 1.0), ("shipped", 0.3, 1.5), ("delivered", 1.0, 4.0))
PICKUP_STEPS = (("picked", 0.5, 2.0), ("ready_for_pickup", 0.3, 1.0), ("picked_up", 0.5, 3.0))
RETURN_STEPS = (("return_request", 1.0, 3.0), ("return_received", 1.0, 3.0))
CARRIERS = ("DHL", "DPD", "Hermes", "UPS", "GLS")


@dataclass
class _Shipment:
    order_id: str
    node_id: str
    method: str
    open: dict[str, list]  # line_id -> [sku, qty] released and not yet shipped, shorted or cancelled
    rng: random.Random
    state: str = "released"
    ever_shipped: dict[str, list] = field(default_factory=dict)
    short_plan: tuple[float, float] | None = None
    return_plan: tuple[float, float, bool] | None = None
    returning: tuple[str, str, int] | None = None


class FulfilmentActor:
    """The stores', WMS's, carriers' and customers' reactions to stockflow's
    fulfilment requests. Pure: ``on_request(request, now)`` takes a request
    record (a dict as on ``fulfillment.requests``), ``due(now, at)`` returns
    the records whose time has come; ``now`` is any monotonic clock in
    seconds, ``at`` the ``occurred_at`` to stamp on them.

    Invariants (the state machine's, from the node's side): nothing is
    shipped that was not released; cancelled units are never shipped (a
    shipment cancelled whole sends nothing more); delivered only follows
    shipped; a return never exceeds what the shipment shipped.
    """

    def __init__(self, seed: int = 7, short_rate: float = DEFAULT_SHORT_RATE, reject_rate: float = DEFAULT_REJECT_RATE,
                 return_rate: float = DEFAULT_RETURN_RATE, damaged_share: float = 0.25, pace: float = 1.0) -> None:
        self.seed = seed
        self.short_rate = check_rate("short-rate", short_rate, DEFAULT_SHORT_RATE)
        self.reject_rate = check_rate("reject-rate", reject_rate, DEFAULT_REJECT_RATE)
        self.return_rate = check_rate("return-rate", return_rate, DEFAULT_RETURN_RATE)
        self.damaged_share = check_rate("damaged-share", damaged_share, 0.25)
        if not (math.isfinite(pace) and pace > 0):
            raise SimulationError(f"pace must be > 0, got {pace!r}")
        self.pace = pace
        self.shipments: dict[str, _Shipment] = {}
        self._requests_seen: set[str] = set()
        self._heap: list[tuple[float, int, str, str]] = []  # (due, seq, shipment_id, step)
        self._seq = 0
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------- requests
    def on_request(self, req: dict, now: float) -> None:
        rid = req.get("request_id")
        # stockflow may repeat an output after a crash (same request_id)
        if rid is not None:
            if rid in self._requests_seen:
                self.stats["duplicate_requests"] += 1
                return
            self._requests_seen.add(rid)
        if req.get("action") == "release":
            self._release(req, now)
        elif req.get("action") == "cancel":
            self._cancel(req)

    def _release(self, req: dict, now: float) -> None:
        sid = req["shipment_id"]
        if sid in self.shipments:
            self.stats["release_again_ignored"] += 1
            return
        # One generator per shipment: its fate does not depend on the order
        # in which requests from different partitions arrive.
        rng = random.Random(f"{self.seed}|{sid}")
        lines = {ln["line_id"]: [ln["sku"], int(ln["qty"])] for ln in req.get("lines") or () if int(ln["qty"]) > 0}
        sh = _Shipment(req["order_id"], req["node_id"], req.get("method") or "ship", lines, rng)
        self.shipments[sid] = sh
        self.stats["released"] += 1
        # every draw made here, in a fixed order, so later events cannot shift them
        reject = rng.random() < self.reject_rate
        short = rng.random() < self.short_rate
        sh.short_plan = (rng.random(), rng.random()) if short else None
        ret = rng.random() < self.return_rate
        sh.return_plan = (rng.random(), rng.random(), rng.random() < self.damaged_share) if ret else None
        steps = PICKUP_STEPS if sh.method in PICKUP_METHODS else SHIP_STEPS
        if reject:
            steps = (("rejected", 0.5, 2.0),)
        elif ret:
            steps = steps + RETURN_STEPS
        t = now
        for name, lo, hi in steps:
            t += self.pace * rng.uniform(lo, hi)
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, sid, name))

    def _cancel(self, req: dict) -> None:
        sh = self.shipments.get(req.get("shipment_id"))
        if sh is None:
            self.stats["cancel_unknown_shipment"] += 1
            return
        if sh.state not in ("released", "picked"):
            # it left already: stockflow will dead-letter our shipped (a real race)
            self.stats["cancel_too_late"] += 1
            return
        for ln in req.get("lines") or ():
            entry = sh.open.get(ln["line_id"])
            if entry:
                entry[1] = max(0, entry[1] - int(ln["qty"]))
        sh.open = {lid: e for lid, e in sh.open.items() if e[1] > 0}
        self.stats["cancel_requests"] += 1
        if not sh.open:
            sh.state = "cancelled"
            self.stats["cancelled_shipments"] += 1

    # ----------------------------------------------------------------- time
    def pending(self) -> int:
        """Steps still to come that can still send something (a cancelled
        shipment's leftover steps do not keep a drain waiting)."""
        return sum(1 for _, _, sid, step in self._heap if self._could_act(self.shipments[sid], step))

    @staticmethod
    def _could_act(sh: _Shipment, step: str) -> bool:
        if step in ("return_request", "return_received"):
            return sh.return_plan is not None and sh.state in ("released", "picked", "shipped", "delivered", "returning")
        if step == "delivered":
            return sh.state in ("released", "picked", "shipped")
        return sh.state in ("released", "picked")

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float, at: str) -> list[Record]:
        out: list[Record] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, sid, step = heapq.heappop(self._heap)
            out.extend(self._step(sid, self.shipments[sid], step, at))
        return out

    def _update(self, sid: str, sh: _Shipment, type_: str, at: str, lines: list[tuple[str, str, int]], **kw) -> Record:
        self.stats[type_] += 1
        value = {"event_id": f"wms-{sid}-{type_}", "occurred_at": at, "order_id": sh.order_id, "shipment_id": sid,
                 "node_id": sh.node_id, "type": type_,
                 "lines": [{"line_id": lid, "sku": sku, "qty": q} for lid, sku, q in lines]}
        value.update(kw)
        return ("fulfillment_updates", sh.order_id, value)

    def _open_lines(self, sh: _Shipment) -> list[tuple[str, str, int]]:
        return [(lid, e[0], e[1]) for lid, e in sorted(sh.open.items()) if e[1] > 0]

    def _step(self, sid: str, sh: _Shipment, step: str, at: str) -> list[Record]:
        if step in ("return_request", "return_received"):
            return self._return_step(sid, sh, step, at)
        if step == "delivered":
            if sh.state != "shipped":
                return []
            sh.state = "delivered"
            return [self._update(sid, sh, "delivered", at, [(lid, e[0], e[1]) for lid, e in sorted(sh.ever_shipped.items())])]
        if sh.state not in ("released", "picked"):
            self.stats["skipped_closed"] += 1
            return []
        lines = self._open_lines(sh)
        if not lines:
            return []
        out: list[Record] = []
        if step == "rejected":
            sh.open, sh.state = {}, "rejected"
            return [self._update(sid, sh, "rejected", at, lines)]
        if step == "picked":
            if sh.short_plan:
                u_line, u_qty = sh.short_plan
                lid, sku, q = lines[int(u_line * len(lines))]
                short_qty = 1 + int(u_qty * q)
                sh.open[lid][1] -= short_qty
                sh.open = {k: e for k, e in sh.open.items() if e[1] > 0}
                out.append(self._update(sid, sh, "short", at, [(lid, sku, short_qty)]))
                lines = self._open_lines(sh)
                if not lines:
                    sh.state = "shorted"
                    return out
            sh.state = "picked"
            out.append(self._update(sid, sh, "picked", at, lines))
            return out
        if step in ("packed", "ready_for_pickup"):
            return [self._update(sid, sh, step, at, lines)]
        if step in ("shipped", "picked_up"):
            for lid, sku, q in lines:
                sh.ever_shipped[lid] = [sku, q]
            sh.open = {}
            extra = {}
            if step == "shipped":
                extra = {"carrier": sh.rng.choice(CARRIERS), "tracking_number": f"TRK{sh.rng.randrange(10**10):010d}"}
                sh.state = "shipped"
            else:
                sh.state = "delivered"  # picked up at the store: the customer has it
            return [self._update(sid, sh, step, at, lines, **extra)]
        return []

    def _return_step(self, sid: str, sh: _Shipment, step: str, at: str) -> list[Record]:
        if sh.state != "delivered" and not (step == "return_received" and sh.state == "returning"):
            return []
        if step == "return_request":
            if not sh.return_plan or not sh.ever_shipped:
                return []
            u_line, u_qty, _ = sh.return_plan
            shipped = sorted(sh.ever_shipped.items())
            lid, (sku, q) = shipped[int(u_line * len(shipped))]
            qty = 1 + int(u_qty * q)
            sh.returning = (lid, sku, qty)
            sh.state = "returning"
            self.stats["return_request"] += 1
            return [("order_commands", sh.order_id, {
                "event_id": f"cust-{sid}-return", "occurred_at": at, "type": "return_request",
                "order_id": sh.order_id, "lines": [{"line_id": lid, "qty": qty}]})]
        if sh.returning is None or sh.return_plan is None:
            return []
        lid, sku, qty = sh.returning
        sh.state = "returned"
        condition = "damaged" if sh.return_plan[2] else "resellable"
        self.stats[f"return_{condition}"] += 1
        return [self._update(sid, sh, "return_received", at, [(lid, sku, qty)], condition=condition)]
