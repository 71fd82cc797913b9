"""Where an order ships from: pure and deterministic (DESIGN.md section 5).

Public API::

    LineRequest(line_id, sku, qty)
    SourcingRequest(method, lines, lat=None, lon=None, pickup_node_id=None,
                    exclude_nodes=frozenset(), same_day_radius_km=50.0)
    PlannedShipment(node_id, lines, distance_km, cost)  # lines: (line_id, sku, qty)
    Plan(shipments, unfilled, reasons)
    source(req, nodes, atp, capacity_left=None) -> Plan
    eligible_nodes(req, nodes, capacity_left=None) -> list[str]   # sorted
    haversine_km(lat1, lon1, lat2, lon2) -> float

``atp[(sku, node_id)]`` is ATP already net of reservations and safety stock
(a missing key, or a negative value, is 0). ``capacity_left[node_id]`` is how
many more orders the node takes today (None or missing: unlimited); an order
uses one unit of a node's capacity however many lines it ships from there.

A node is eligible when it is active, offers the method, is not in
``exclude_nodes`` and has capacity left; for ``pickup``/``curbside`` it must
be the pickup node; for ``same_day`` it must be within
``same_day_radius_km`` (great-circle) of the address, so no node is without
an address. Distance is 0 when the request has no address.

Among eligible nodes the plan, in this order of priority: fills the most
units (a line may be split across nodes); uses the fewest nodes (ship
complete whenever one node can); costs least, the sum over used nodes of
cost_per_order + cost_per_km x distance, compared in millionths so float
noise cannot decide a tie; has the smallest sorted tuple of node ids. Within
the chosen nodes each line takes units from the cheapest node first (then
node_id), and every chosen node ships at least one unit. ``shipments`` are
sorted by node_id, their lines in request order, one entry per line.
``unfilled`` lists, per line, what no eligible node can give now, with a
short reason in ``reasons`` (``no_stock``, ``insufficient_stock``,
``no_eligible_node``, ``pickup_node_no_stock``, ``pickup_node_not_eligible``,
``unknown_pickup_node``). Partial and backorder policy is the caller's.

Sets of 1, 2 and 3 nodes are searched exactly. When no 3 nodes can fill
what is fillable (or there are over ``MAX_TRIPLE_NODES`` candidates for the
3-node search), a greedy choice finishes: the node adding the most units,
ties to the lower cost then node_id, then nodes the others can do without
are dropped, costliest first. That fallback is not guaranteed minimal in
shipment count or cost; it never uses an ineligible node nor exceeds ATP.
A line with qty <= 0 asks for nothing.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from operator import add, ge, sub
from typing import Callable, Mapping

from ..streams.events import Node

# The 3-node search visits every pair of candidates: past this many the
# greedy fallback takes over, to bound the time one order can take.
MAX_TRIPLE_NODES = 120
PICKUP_METHODS = frozenset({"pickup", "curbside"})
EARTH_RADIUS_KM = 6371.0088
_COST_UNITS = 1_000_000  # costs are compared as integer millionths
_COST_CAP = 1e12  # keeps round() finite for an absurd, inf or NaN cost


@dataclass(frozen=True, slots=True)
class LineRequest:
    line_id: str
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class SourcingRequest:
    method: str  # "ship" | "pickup" | "curbside" | "same_day"
    lines: tuple[LineRequest, ...]
    lat: float | None = None  # the delivery address, needed by ship and same_day
    lon: float | None = None
    pickup_node_id: str | None = None
    exclude_nodes: frozenset[str] = frozenset()  # nodes that failed this order before
    same_day_radius_km: float = 50.0


@dataclass(frozen=True, slots=True)
class PlannedShipment:
    node_id: str
    lines: tuple[tuple[str, str, int], ...]  # (line_id, sku, qty)
    distance_km: float  # rounded to 3 decimals
    cost: float  # rounded to 4 decimals


@dataclass(frozen=True, slots=True)
class Plan:
    shipments: tuple[PlannedShipment, ...]
    unfilled: tuple[tuple[str, str, int], ...]  # (line_id, sku, qty not fillable now)
    reasons: Mapping[str, str] = field(default_factory=dict)  # line_id -> reason


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p2 = math.radians(lat2)
    return _haversine(lat1, lon1, p2, math.cos(p2), lon2)


def _haversine(lat1: float, lon1: float, p2: float, cos_p2: float, lon2: float) -> float:
    # The far end comes pre-converted: one address is measured against many nodes.
    p1 = math.radians(lat1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * cos_p2 * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _distance_from(req: SourcingRequest) -> Callable[[Node], float | None]:
    """Distance from a node to the request's address; None without one."""
    if req.lat is None or req.lon is None:
        return lambda node: None
    p2, lon2 = math.radians(req.lat), req.lon
    cos_p2 = math.cos(p2)
    return lambda node: _haversine(node.lat, node.lon, p2, cos_p2, lon2)


def _open_to(req: SourcingRequest, node_id: str, node: Node,
             capacity_left: Mapping[str, int | None]) -> bool:
    """Every constraint but the same-day radius, which needs a distance."""
    if not node.active or req.method not in node.services or node_id in req.exclude_nodes:
        return False
    if req.method in PICKUP_METHODS and node_id != req.pickup_node_id:
        return False
    cap = capacity_left.get(node_id)
    return cap is None or cap > 0


def _in_radius(req: SourcingRequest, dist: float | None) -> bool:
    if req.method != "same_day":
        return True
    return dist is not None and dist <= req.same_day_radius_km


def eligible_nodes(req: SourcingRequest, nodes: Mapping[str, Node],
                   capacity_left: Mapping[str, int | None] | None = None) -> list[str]:
    """Ids of the nodes that may ship this request, whatever their stock; sorted."""
    capacity_left = capacity_left or {}
    distance = _distance_from(req)
    return [
        node_id for node_id in sorted(nodes)
        if _open_to(req, node_id, nodes[node_id], capacity_left)
        and _in_radius(req, distance(nodes[node_id]))
    ]


def source(req: SourcingRequest, nodes: Mapping[str, Node], atp: Mapping[tuple[str, str], int],
           capacity_left: Mapping[str, int | None] | None = None) -> Plan:
    """The best plan for ``req`` (see the module docstring)."""
    capacity_left = capacity_left or {}
    need: dict[str, int] = {}
    for ln in req.lines:
        if ln.qty > 0:
            need[ln.sku] = need.get(ln.sku, 0) + ln.qty
    skus = sorted(need)
    needs = tuple(need[s] for s in skus)
    distance = _distance_from(req)
    same_day = req.method == "same_day"

    stocked = []  # (node_id, node, ATP per SKU, distance or None)
    held = [0] * len(skus)
    for node_id, units in _holders(nodes, atp, skus):
        node = nodes[node_id]
        if not _open_to(req, node_id, node, capacity_left):
            continue
        if min(units) < 0:
            units = [max(0, q) for q in units]
        dist = None
        if same_day:  # only nodes with stock pay for a haversine here
            dist = distance(node)
            if not _in_radius(req, dist):
                continue
        held = list(map(add, held, units))
        stocked.append((node_id, node, units, dist))
    target = tuple(map(min, held, needs))  # fillable now, per SKU

    # Ship complete whenever one node can: then only those nodes need a cost,
    # and a distance, which is the common case and the cheap one.
    complete = [c for c in stocked if all(map(ge, c[2], target))]
    ranked = []  # (cost in millionths, node_id, distance, cost, units): rank order
    for node_id, node, units, dist in complete or stocked:
        if dist is None:
            dist = distance(node) or 0.0
        cost = node.cost_per_order + node.cost_per_km * dist
        cost = cost if cost < _COST_CAP else _COST_CAP
        # Units capped at the target: a node set fills all that is fillable
        # exactly when its vectors sum to the target.
        ranked.append((round(cost * _COST_UNITS), node_id, dist, cost, tuple(map(min, units, target))))
    ranked.sort()  # node_ids are unique: the sort never looks past them
    if not any(target):
        chosen = []
    elif complete:
        chosen = [0]
    else:
        chosen = _choose([c[4] for c in ranked], [c[0] for c in ranked], [c[1] for c in ranked], target)

    left: dict[tuple[str, str], int] = {}
    by_node: dict[str, list[tuple[str, str, int]]] = {}
    got: dict[str, int] = {}
    for ln in req.lines:
        want = ln.qty
        for r in chosen:  # ascending ranks: cheapest node first
            if want <= 0:
                break
            key = (ln.sku, ranked[r][1])
            free = left.get(key, max(0, atp.get(key, 0)))
            take = min(want, free)
            if take:
                left[key] = free - take
                want -= take
                by_node.setdefault(key[1], []).append((ln.line_id, ln.sku, take))
                got[ln.line_id] = got.get(ln.line_id, 0) + take
    shipments = tuple(
        PlannedShipment(node_id, tuple(by_node[node_id]), round(dist, 3), round(cost, 4))
        for _, node_id, dist, cost, _ in sorted((ranked[r] for r in chosen), key=lambda c: c[1])
        if node_id in by_node
    )
    unfilled = tuple(
        (ln.line_id, ln.sku, ln.qty - got.get(ln.line_id, 0))
        for ln in req.lines if got.get(ln.line_id, 0) < ln.qty
    )
    reasons: dict[str, str] = {}
    if unfilled:
        opened = [n for n, node in nodes.items() if _open_to(req, n, node, capacity_left)]
        has_stock = {s for s, t in zip(skus, target) if t}
        any_eligible = bool(stocked) or (
            any(_in_radius(req, distance(nodes[n])) for n in opened) if same_day else bool(opened)
        )
        for line_id, sku, _ in unfilled:
            reasons[line_id] = _reason(req, nodes, opened, any_eligible, sku in has_stock)
    return Plan(shipments, unfilled, reasons)


def _holders(nodes: Mapping[str, Node], atp: Mapping[tuple[str, str], int],
             skus: list[str]) -> list[tuple[str, list[int]]]:
    """Known nodes with ATP above 0 for at least one of ``skus``, each with
    its ATP per SKU (in ``skus`` order): the only ones that can help. A node
    without any is never in a plan, so only these pay for the eligibility
    checks. An order's view holds a few nodes per SKU, against every node of
    the network: one pass over it makes the vectors, rather than a lookup per
    SKU and node (docs/benchmarks.md, session 23)."""
    if len(atp) < len(nodes) * len(skus):
        index = {s: j for j, s in enumerate(skus)}
        width = len(skus)
        vectors: dict[str, list[int]] = {}
        for (s, n), q in atp.items():
            j = index.get(s)
            if j is not None and n in nodes:
                units = vectors.get(n)
                if units is None:
                    units = vectors[n] = [0] * width
                units[j] = q
        return [(n, units) for n, units in vectors.items() if max(units) > 0]
    return [(n, units) for n in nodes if max(units := [atp.get((s, n), 0) for s in skus]) > 0]


def _choose(vecs: list[tuple[int, ...]], costs: list[int], ids: list[str],
            target: tuple[int, ...]) -> list[int]:
    """Ranks of the node set to use when no single node fills ``target``.

    Ranks follow (cost, node_id) order; ``vecs`` are units per SKU capped at
    ``target``, so a set fills all that is fillable when they sum to it.
    """
    n = len(vecs)
    # Per SKU, the distinct unit counts ascending and, for each, the bitmask
    # of ranks holding at least that many: "who covers x" is one bisect.
    levels = []
    for j in range(len(target)):
        # Grouped by count first: a SKU's counts, capped at the target, take
        # few distinct values (two for a line of one unit).
        holding: dict[int, int] = {}
        for r, v in enumerate(vecs):
            holding[v[j]] = holding.get(v[j], 0) | (1 << r)
        vals = sorted(holding)
        masks = [0] * len(vals)
        m = 0
        for i in range(len(vals) - 1, -1, -1):
            m |= holding[vals[i]]
            masks[i] = m
        levels.append((vals, masks))
    everyone = (1 << n) - 1

    def covering(residual: tuple[int, ...]) -> int:
        """Bitmask of the ranks that alone hold ``residual``."""
        m = everyone
        for (vals, masks), x in zip(levels, residual):
            if x > 0:
                p = bisect_left(vals, x)
                m &= masks[p] if p < len(vals) else 0
                if not m:
                    break
        return m

    def minus(res: tuple[int, ...], v: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(map(sub, res, v))

    best: tuple | None = None  # (cost, sorted node ids, ranks)

    def consider(ranks: tuple[int, ...]) -> None:
        nonlocal best
        key = (sum(costs[r] for r in ranks), tuple(sorted(ids[r] for r in ranks)))
        if best is None or key < best[:2]:
            best = (*key, ranks)

    # Pairs (a, b), a ranked before b. Ranks ascend in cost, so a's cheapest
    # partner is its lowest set bit, and once a plus the next node costs more
    # than the best pair found, no later pair can win: the search mostly ends
    # after a node or two, so it runs on every node, unpruned.
    for a in range(n - 1):
        if best and costs[a] + costs[a + 1] > best[0]:
            break
        partners = covering(minus(target, vecs[a])) & ~((2 << a) - 1)
        if partners:
            consider((a, (partners & -partners).bit_length() - 1))
    if best:
        return list(best[2])

    # A node that k lower-ranked nodes each match or beat on every SKU is in
    # no best k-set: one of them is outside the set, and swapping it in fills
    # as much for no more cost and a smaller id tuple. Skipping such nodes
    # shrinks the search below (the pairs' needed none: session 23).
    beaten = [(covering(vecs[r]) & ((1 << r) - 1)).bit_count() for r in range(n)]

    alive = [r for r in range(n) if beaten[r] < 3]
    if len(alive) <= MAX_TRIPLE_NODES:
        alive_mask = sum(1 << r for r in alive)
        for i, a in enumerate(alive[:-2]):
            if best and costs[a] + costs[alive[i + 1]] + costs[alive[i + 2]] > best[0]:
                break
            res_a = minus(target, vecs[a])
            for k in range(i + 1, len(alive) - 1):
                b = alive[k]
                if best and costs[a] + costs[b] + costs[alive[k + 1]] > best[0]:
                    break
                partners = covering(minus(res_a, vecs[b])) & alive_mask & ~((2 << b) - 1)
                if partners:
                    consider((a, b, (partners & -partners).bit_length() - 1))
        if best:
            return list(best[2])
    return _greedy(vecs, target)


def _greedy(vecs: list[tuple[int, ...]], target: tuple[int, ...]) -> list[int]:
    """Most units added first (ties to the lower rank), then drop, costliest
    first, each node the others can do without. Not guaranteed minimal."""
    chosen: list[int] = []
    have = [0] * len(target)
    goal = list(target)
    while have != goal:
        pick, gain = -1, 0
        for r, v in enumerate(vecs):
            if r not in chosen:
                g = sum(map(min, goal, map(add, have, v))) - sum(have)
                if g > gain:
                    pick, gain = r, g
        if pick < 0:
            break
        chosen.append(pick)
        have = list(map(min, goal, map(add, have, vecs[pick])))
    for r in sorted(chosen, reverse=True):
        others = [x for x in chosen if x != r]
        if all(sum(vecs[x][j] for x in others) >= t for j, t in enumerate(target)):
            chosen = others
    return sorted(chosen)


def _reason(req: SourcingRequest, nodes: Mapping[str, Node], opened: list[str],
            any_eligible: bool, has_stock: bool) -> str:
    if req.method in PICKUP_METHODS:
        if req.pickup_node_id not in nodes:
            return "unknown_pickup_node"
        if req.pickup_node_id not in opened:
            return "pickup_node_not_eligible"
        return "pickup_node_no_stock"
    if not any_eligible:
        return "no_eligible_node"
    return "insufficient_stock" if has_stock else "no_stock"
