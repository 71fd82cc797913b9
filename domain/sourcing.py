"""Where an order ships from: pure and deterministic (DESIGN.md section 5).

Priorities, in this order: fill as many units as possible; fewest shipments
(ship complete whenever one node can); lowest cost (the sum over shipments of
cost_per_order + cost_per_km x great-circle distance to the address); then
the smallest sorted tuple of node ids. Constraints: the node is active,
offers the delivery method, has ATP, has capacity left today, is not
excluded; pickup and curbside only from the pickup node; same day only
within the radius.

Node sets of 1, 2 and 3 nodes are searched exhaustively over the nodes that
hold any of the order's SKUs (bounded by ``MAX_EXHAUSTIVE``); beyond that a
greedy choice (most units added, then lower cost, then node_id) finishes,
which is not guaranteed minimal in shipment count but never breaks a
constraint or ATP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Mapping

from ..streams.events import Node

MAX_EXHAUSTIVE = 40_000  # node-set evaluations before falling back to greedy


@dataclass(frozen=True, slots=True)
class LineRequest:
    line_id: str
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class SourcingRequest:
    method: str
    lines: tuple[LineRequest, ...]
    lat: float | None = None
    lon: float | None = None
    pickup_node_id: str | None = None
    exclude_nodes: frozenset[str] = frozenset()
    same_day_radius_km: float = 50.0


@dataclass(frozen=True, slots=True)
class PlannedShipment:
    node_id: str
    lines: tuple[tuple[str, str, int], ...]  # (line_id, sku, qty)
    distance_km: float
    cost: float


@dataclass(frozen=True, slots=True)
class Plan:
    shipments: tuple[PlannedShipment, ...]
    unfilled: tuple[tuple[str, str, int], ...]
    reasons: Mapping[str, str] = field(default_factory=dict)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def _distance(req: SourcingRequest, node: Node) -> float:
    if req.lat is None or req.lon is None:
        return 0.0
    return haversine_km(node.lat, node.lon, req.lat, req.lon)


def eligible_nodes(req: SourcingRequest, nodes: Mapping[str, Node],
                   capacity_left: Mapping[str, int | None] | None = None) -> list[str]:
    capacity_left = capacity_left or {}
    out = []
    for node_id in sorted(nodes):
        n = nodes[node_id]
        if not n.active or req.method not in n.services or node_id in req.exclude_nodes:
            continue
        if req.method in ("pickup", "curbside") and node_id != req.pickup_node_id:
            continue
        if req.method == "same_day" and _distance(req, n) > req.same_day_radius_km:
            continue
        cap = capacity_left.get(node_id)
        if cap is not None and cap <= 0:
            continue
        out.append(node_id)
    return out


def _fill(req: SourcingRequest, node_set: tuple[str, ...], atp: Mapping[tuple[str, str], int],
          order: list[str]) -> tuple[int, dict[str, list[tuple[str, str, int]]]]:
    """Units a node set fills, giving each line's units to ``order``'s nodes first."""
    left = {}
    filled = 0
    by_node: dict[str, list[tuple[str, str, int]]] = {}
    for line in req.lines:
        need = line.qty
        for node_id in order:
            if node_id not in node_set or need == 0:
                continue
            key = (line.sku, node_id)
            free = left.get(key, atp.get(key, 0))
            take = min(need, max(0, free))
            if take:
                left[key] = free - take
                need -= take
                filled += take
                by_node.setdefault(node_id, []).append((line.line_id, line.sku, take))
    return filled, by_node


def source(req: SourcingRequest, nodes: Mapping[str, Node], atp: Mapping[tuple[str, str], int],
           capacity_left: Mapping[str, int | None] | None = None) -> Plan:
    eligible = eligible_nodes(req, nodes, capacity_left)
    skus = {ln.sku for ln in req.lines}
    # Only nodes holding something of this order can help.
    useful = [n for n in eligible if any(atp.get((s, n), 0) > 0 for s in skus)]
    cost = {n: nodes[n].cost_per_order + nodes[n].cost_per_km * _distance(req, nodes[n]) for n in useful}
    # cheapest first, then node_id: the order units are given out in
    by_cost = sorted(useful, key=lambda n: (cost[n], n))
    best_total, _ = _fill(req, tuple(useful), atp, by_cost)

    # Units a node set can fill depend only on the SKU totals, so node sets
    # are scored on small per-node vectors; _fill runs once, for the winner.
    need: dict[str, int] = {}
    for ln in req.lines:
        need[ln.sku] = need.get(ln.sku, 0) + ln.qty
    sku_list = sorted(need)
    vec = {n: tuple(atp.get((s, n), 0) for s in sku_list) for n in useful}
    want = tuple(need[s] for s in sku_list)

    def fill_of(combo: tuple[str, ...]) -> int:
        return sum(min(w, sum(vec[n][i] for n in combo)) for i, w in enumerate(want))

    chosen: tuple[str, ...] = ()
    if best_total:
        evaluations = 0
        for k in (1, 2, 3):
            if k > len(useful):
                break
            best = None
            for combo in combinations(useful, k):
                evaluations += 1
                if evaluations > MAX_EXHAUSTIVE:
                    break
                if fill_of(combo) == best_total:
                    key = (round(sum(cost[n] for n in combo), 9), tuple(sorted(combo)))
                    if best is None or key < best:
                        best = key
            if best is not None:
                chosen = best[1]
                break
            if evaluations > MAX_EXHAUSTIVE:
                break
        if not chosen:
            chosen = _greedy(req, useful, atp, by_cost, cost, best_total)

    _, by_node = _fill(req, chosen, atp, by_cost)
    shipments = tuple(
        PlannedShipment(n, tuple(by_node[n]), round(_distance(req, nodes[n]), 3), round(cost[n], 4))
        for n in sorted(by_node)
    )
    got: dict[str, int] = {}
    for sh in shipments:
        for line_id, _, q in sh.lines:
            got[line_id] = got.get(line_id, 0) + q
    unfilled = tuple((ln.line_id, ln.sku, ln.qty - got.get(ln.line_id, 0)) for ln in req.lines if got.get(ln.line_id, 0) < ln.qty)
    reasons = {lid: _reason(req, nodes, eligible, atp, sku) for lid, sku, _ in unfilled}
    return Plan(shipments, unfilled, reasons)


def _greedy(req, useful, atp, by_cost, cost, target) -> tuple[str, ...]:
    chosen: list[str] = []
    have = 0
    while have < target:
        best = None
        for n in useful:
            if n in chosen:
                continue
            filled, _ = _fill(req, tuple(chosen + [n]), atp, by_cost)
            score = (-(filled - have), cost[n], n)
            if filled > have and (best is None or score < best[0]):
                best = (score, n, filled)
        if best is None:
            break
        chosen.append(best[1])
        have = best[2]
    return tuple(sorted(chosen))


def _reason(req: SourcingRequest, nodes: Mapping[str, Node], eligible: list[str],
            atp: Mapping[tuple[str, str], int], sku: str) -> str:
    if req.method in ("pickup", "curbside"):
        if req.pickup_node_id not in nodes:
            return "unknown_pickup_node"
        if req.pickup_node_id not in eligible:
            return "pickup_node_not_eligible"
        return "pickup_node_no_stock"
    if not eligible:
        return "no_eligible_node"
    if not any(atp.get((sku, n), 0) > 0 for n in eligible):
        return "no_stock"
    return "insufficient_stock"
