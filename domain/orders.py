"""The order side of allocation: pure, no I/O.

An order is planned on a replicated availability view, then its SKUs'
owners are asked to reserve (``reserve`` commands). When every owner has
answered, the order either takes what it was granted or, if an owner
refused part of the plan because the view was stale, re-plans with the
owners' fresh figures (at most ``MAX_ATTEMPTS`` times). The decision then
goes out as an allocation, release requests, a status document and
customer notifications.

State is a plain JSON-able dict (it lives in a changelog-backed table).
Functions return ``Step``: the new state, commands for SKU owners and
output events; they never mutate their input.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

import orjson

from ..streams.events import Node, OrderCommand
from .clone import clone
from .sourcing import LineRequest, SourcingRequest, haversine_km, source

MAX_ATTEMPTS = 3


@dataclass
class Step:
    state: dict | None
    commands: list[dict] = field(default_factory=list)  # to SKU owners, each has "sku"
    outputs: list[tuple[str, str, dict]] = field(default_factory=list)  # (logical topic, key, event)
    dead_letter: tuple[str, str] | None = None  # (reason, detail)
    duplicate: bool = False


def content_digest(cmd: OrderCommand) -> str:
    """What makes two creates "the same order": everything but the envelope."""
    body = cmd.model_dump_json(exclude={"event_id", "occurred_at"})
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _request(state: dict, lines: list[tuple[str, str, int]], exclude: list[str], radius: float) -> SourcingRequest:
    d = state["delivery"]
    addr = d.get("address") or {}
    return SourcingRequest(
        method=d["method"],
        lines=tuple(LineRequest(lid, sku, qty) for lid, sku, qty in lines),
        lat=addr.get("lat"),
        lon=addr.get("lon"),
        pickup_node_id=d.get("pickup_node_id"),
        exclude_nodes=frozenset(exclude),
        same_day_radius_km=radius,
    )


def _want_from_plan(plan) -> tuple[dict, dict]:
    want: dict[str, dict[str, int]] = {}
    per_line: dict[str, dict[str, int]] = {}
    for sh in plan.shipments:
        for line_id, sku, qty in sh.lines:
            want.setdefault(sku, {})
            want[sku][sh.node_id] = want[sku].get(sh.node_id, 0) + qty
            per_line.setdefault(line_id, {})[sh.node_id] = qty
    return want, per_line


def new_order(cmd: OrderCommand) -> dict:
    return {
        "order_id": cmd.order_id,
        "event_id": cmd.event_id,
        "digest": content_digest(cmd),
        "created_at": cmd.occurred_at.isoformat(),
        "channel": cmd.channel,
        "customer": cmd.customer.model_dump(mode="json"),
        "delivery": cmd.delivery.model_dump(mode="json"),
        "allow_partial": cmd.allow_partial,
        "allow_backorder": cmd.allow_backorder,
        "lines": {
            ln.line_id: {
                "sku": ln.sku, "qty": ln.qty, "unit_price": ln.unit_price,
                "alloc": {}, "backordered": 0, "rejected": 0, "reason": None,
                "cancelled": 0, "shipped": 0, "returned": 0, "expected_date": None,
            }
            for ln in cmd.lines
        },
        "line_order": [ln.line_id for ln in cmd.lines],
        "attempt": 0,
        "phase": "new",
        "want": {},
        "grants": {},
        "pending": [],
        "plan_lines": {},
        "reasons": {},
        "supply": {},
        "exclude": [],
        "shipments": {},
        "seq": 0,
        "applied": [],
        "status": "created",
        "offsets": {},
    }


def _plan_and_reserve(state: dict, view: Mapping[tuple[str, str], int], nodes: Mapping[str, Node],
                      radius: float, own: Mapping[str, Mapping[str, int]] | None = None,
                      capacity_left: Mapping[str, int | None] | None = None) -> Step:
    """Plan the whole order and ask the owners for it (a new attempt)."""
    lines = [(lid, state["lines"][lid]["sku"], state["lines"][lid]["qty"]) for lid in state["line_order"]]
    atp = dict(view)
    for sku, held in (own or {}).items():  # what we already hold is free to us
        for node_id, q in held.items():
            atp[(sku, node_id)] = atp.get((sku, node_id), 0) + q
    plan = source(_request(state, lines, state["exclude"], radius), nodes, atp, capacity_left)
    want, per_line = _want_from_plan(plan)
    if not state["allow_partial"] and plan.unfilled:
        want, per_line = {}, {}  # all or nothing: nothing can be promised
    state["attempt"] += 1
    state["want"] = want
    state["plan_lines"] = per_line
    state["reasons"] = dict(plan.reasons)
    state["grants"] = {}
    # Every SKU of the order, wanted or not: an order re-run after losing its
    # state may plan differently, and each owner's answer (answer_again in
    # domain/reservations.py) is how it learns what the first run holds.
    skus = sorted({sku for _, sku, _ in lines} | set(want) | set(own or {}))
    state["pending"] = skus
    state["phase"] = "reserving"
    commands = [
        {"cmd": "reserve", "cmd_id": f"{state['order_id']}:r{state['attempt']}:{sku}", "order_id": state["order_id"],
         "attempt": state["attempt"], "sku": sku, "want": want.get(sku, {})}
        for sku in skus
    ]
    return Step(state, commands)


def on_create(existing: dict | None, cmd: OrderCommand, view: Mapping[tuple[str, str], int],
              nodes: Mapping[str, Node], radius: float, at: datetime,
              capacity_left: Mapping[str, int | None] | None = None) -> Step:
    if existing is not None:
        if existing["digest"] == content_digest(cmd):
            return Step(existing, duplicate=True)
        return Step(existing, dead_letter=(
            "duplicate_order_conflict",
            f"order {cmd.order_id} exists (event {existing['event_id']}) with different content",
        ))
    if cmd.delivery.method in ("pickup", "curbside") and cmd.delivery.pickup_node_id not in nodes:
        return Step(None, dead_letter=("unknown_node", f"pickup node {cmd.delivery.pickup_node_id!r} is unknown"))
    state = new_order(cmd)
    step = _plan_and_reserve(state, view, nodes, radius, capacity_left=capacity_left)
    step.outputs.append(("order_status", cmd.order_id, status_document(step.state, at)))
    if not step.commands:
        return _finalize(step.state, nodes, at, step)
    return step


def on_reserved(state: dict, reply: Mapping, view: Mapping[tuple[str, str], int],
                nodes: Mapping[str, Node], radius: float, at: datetime,
                capacity_left: Mapping[str, int | None] | None = None) -> Step:
    sku = reply["sku"]
    if state["phase"] != "reserving" or reply["attempt"] != state["attempt"] or sku not in state["pending"]:
        return Step(state, duplicate=True)
    # A copy of what an answer changes, sharing the rest: a whole copy per
    # answer, three an order, was 6% of a busy worker (docs/benchmarks.md,
    # session 22). What follows copies before it changes anything deeper:
    # _finalize clones, _plan_and_reserve only sets top-level keys.
    state = {**state, "grants": {**state["grants"], sku: dict(reply["granted"])},
             "supply": {**state["supply"], sku: reply.get("supply", [])},
             "pending": [s for s in state["pending"] if s != sku]}
    if state["pending"]:
        return Step(state)
    complete = all(state["grants"].get(s, {}) == w for s, w in state["want"].items())
    if complete or state["attempt"] >= MAX_ATTEMPTS:
        return _finalize(state, nodes, at, Step(state))
    # Some owner had less than the view promised: plan again on fresher
    # figures (the agent has folded each owner's reply into the view).
    return _plan_and_reserve(state, view, nodes, radius, own=state["grants"], capacity_left=capacity_left)


def _assign_grants(state: dict) -> None:
    """Turn per-SKU grants into per-line allocations, following the plan."""
    left = {sku: dict(g) for sku, g in state["grants"].items()}
    for lid in state["line_order"]:
        line = state["lines"][lid]
        need = line["qty"]
        alloc: dict[str, int] = {}
        planned = state["plan_lines"].get(lid, {})
        pool = left.get(line["sku"], {})
        for node_id in sorted(pool, key=lambda n: (n not in planned, n)):
            take = min(need, pool[node_id])
            if take > 0:
                alloc[node_id] = take
                pool[node_id] -= take
                need -= take
            if need == 0:
                break
        line["alloc"] = alloc


def _expected_date(supply: list, qty: int) -> str | None:
    got = 0
    for _sid, _node, q, eta in supply:
        got += q
        if got >= qty:
            return eta
    return None


def _finalize(state: dict, nodes: Mapping[str, Node], at: datetime, step: Step) -> Step:
    # A copy of what a decision changes: each line's fields and the map of
    # shipments (it only adds to it); the rest is shared, as on_reserved
    # shares it. A whole clone was 17 us an order (session 23).
    state = {**state, "lines": {lid: dict(ln) for lid, ln in state["lines"].items()},
             "shipments": dict(state["shipments"])}
    _assign_grants(state)
    unfilled = {lid: ln["qty"] - sum(ln["alloc"].values()) for lid, ln in state["lines"].items()}
    commands = list(step.commands)
    if not state["allow_partial"] and any(unfilled.values()):
        # all or nothing: give back whatever was granted
        for sku, g in state["grants"].items():
            if g:
                commands.append({"cmd": "release", "cmd_id": f"{state['order_id']}:aon:{sku}",
                                 "order_id": state["order_id"], "sku": sku, "nodes": None})
        for ln in state["lines"].values():
            ln["alloc"] = {}
        unfilled = {lid: ln["qty"] for lid, ln in state["lines"].items()}
    backorder_entries: dict[str, list] = {}
    for lid in state["line_order"]:
        ln, q = state["lines"][lid], unfilled[lid]
        if q <= 0:
            continue
        if state["allow_backorder"]:
            ln["backordered"] = q
            ln["expected_date"] = _expected_date(state["supply"].get(ln["sku"], []), q)
            backorder_entries.setdefault(ln["sku"], []).append(_backorder_entry(state, lid, q))
        else:
            ln["rejected"] = q
            ln["reason"] = state["reasons"].get(lid) or "no_stock"
    for sku, entries in backorder_entries.items():
        commands.append({"cmd": "backorder", "cmd_id": f"{state['order_id']}:bo{state['attempt']}:{sku}",
                         "order_id": state["order_id"], "sku": sku, "entries": entries})
    state["phase"] = "open"
    state["pending"] = []
    out = Step(state, commands, list(step.outputs))
    _new_shipments(state, nodes, {lid: dict(ln["alloc"]) for lid, ln in state["lines"].items()}, out)
    _decide(state, at, out, cause=state["event_id"], first=True)
    return out


def _backorder_entry(state: dict, line_id: str, qty: int, exclude: list[str] | None = None) -> dict:
    d = state["delivery"]
    addr = d.get("address") or {}
    return {
        "created_at": state["created_at"], "line_id": line_id, "qty": qty, "method": d["method"],
        "pickup_node_id": d.get("pickup_node_id"), "lat": addr.get("lat"), "lon": addr.get("lon"),
        "exclude": sorted(set(state["exclude"]) | set(exclude or [])),
    }


def _new_shipments(state: dict, nodes: Mapping[str, Node], added: dict[str, dict[str, int]], step: Step) -> None:
    """Open a shipment per node for newly allocated units and request its release."""
    by_node: dict[str, list] = {}
    for lid in state["line_order"]:
        for node_id, q in sorted(added.get(lid, {}).items()):
            if q > 0:
                by_node.setdefault(node_id, []).append([lid, state["lines"][lid]["sku"], q])
    d = state["delivery"]
    addr = d.get("address")
    for node_id in sorted(by_node):
        n = len(state["shipments"]) + 1
        shipment_id = f"{state['order_id']}-S{n}"
        node = nodes.get(node_id)
        dist = haversine_km(node.lat, node.lon, addr["lat"], addr["lon"]) if node and addr else 0.0
        cost = (node.cost_per_order + node.cost_per_km * dist) if node else 0.0
        state["shipments"][shipment_id] = {
            "node_id": node_id, "lines": by_node[node_id], "status": "released",
            "distance_km": round(dist, 3), "cost": round(cost, 4),
        }
        request = {
            "request_id": f"{shipment_id}:release", "node_id": node_id, "order_id": state["order_id"],
            "shipment_id": shipment_id, "method": d["method"],
            "lines": [{"line_id": lid, "sku": sku, "qty": q} for lid, sku, q in by_node[node_id]],
            "address": addr, "pickup_node_id": d.get("pickup_node_id"), "action": "release",
        }
        step.outputs.append(("fulfillment_requests", node_id, request))


def allocation_status(state: dict) -> str:
    """The status of an allocation decision: shipped units count as allocated."""
    lines = state["lines"].values()
    allocated = sum(sum(ln["alloc"].values()) + ln["shipped"] for ln in lines)
    backordered = sum(ln["backordered"] for ln in lines)
    rejected = sum(ln["rejected"] for ln in lines)
    if allocated and not backordered and not rejected:
        return "allocated"
    if allocated:
        return "partial"
    if backordered:
        return "backordered"
    return "rejected"


def order_status(state: dict) -> str:
    """The order's status: follows from its lines and shipments."""
    lines = list(state["lines"].values())
    live = sum(ln["qty"] - ln["cancelled"] - ln["rejected"] for ln in lines)
    shipped = sum(ln["shipped"] for ln in lines)
    if live == 0:
        return "cancelled" if any(ln["cancelled"] for ln in lines) else "rejected"
    if shipped and shipped == live:
        if sum(ln["returned"] for ln in lines) == shipped:
            return "returned"
        if all(sh.get("delivered") for sh in state["shipments"].values() if sh.get("shipped")):
            return "delivered"
        return "shipped"
    return allocation_status(state)


def _line_status(ln: dict) -> str:
    live = ln["qty"] - ln["cancelled"] - ln["rejected"]
    if live == 0:
        return "cancelled" if ln["cancelled"] else "rejected"
    if ln["shipped"] == live:
        return "returned" if ln["returned"] == ln["shipped"] else "shipped"
    if sum(ln["alloc"].values()) == ln["qty"]:
        return "allocated"
    if ln["backordered"] and not sum(ln["alloc"].values()):
        return "backordered"
    if ln["rejected"] == ln["qty"]:
        return "rejected"
    if sum(ln["alloc"].values()):
        return "partial"
    return "created"


def status_document(state: dict, at: datetime) -> dict:
    return {
        "order_id": state["order_id"],
        "status": state["status"],
        "lines": [
            {
                "line_id": lid, "sku": ln["sku"], "qty": ln["qty"], "status": _line_status(ln),
                "allocated": sum(ln["alloc"].values()), "shipped": ln["shipped"],
                "cancelled": ln["cancelled"], "returned": ln["returned"],
                "backordered": ln["backordered"], "rejected": ln["rejected"],
            }
            for lid, ln in ((lid, state["lines"][lid]) for lid in state["line_order"])
        ],
        "occurred_at": at.isoformat(),
        "refusal": state.get("refusal"),
    }


def allocation_decision(state: dict, at: datetime, cause: str) -> dict:
    shipments = []
    for sid, sh in state["shipments"].items():
        # a decision lists every unit it placed: still to ship, or shipped
        units: dict[str, int] = dict(sh.get("shipped", {}))
        for lid, _sku, q in sh["lines"]:
            units[lid] = units.get(lid, 0) + q
        if sh["status"] == "cancelled" or not any(units.values()):
            continue
        shipments.append({
            "shipment_id": sid, "node_id": sh["node_id"], "method": state["delivery"]["method"],
            "lines": [{"line_id": lid, "sku": state["lines"][lid]["sku"], "qty": q} for lid, q in units.items() if q],
            "distance_km": sh["distance_km"], "cost": sh["cost"],
        })
    decision = {
        "order_id": state["order_id"],
        "caused_by": cause,
        "status": allocation_status(state),
        "shipments": shipments,
        "backorders": [
            {"line_id": lid, "sku": ln["sku"], "qty": ln["backordered"], "expected_date": ln["expected_date"]}
            for lid, ln in ((lid, state["lines"][lid]) for lid in state["line_order"]) if ln["backordered"]
        ],
        "rejected": [
            {"line_id": lid, "sku": ln["sku"], "qty": ln["rejected"], "reason": ln["reason"] or "no_stock"}
            for lid, ln in ((lid, state["lines"][lid]) for lid in state["line_order"]) if ln["rejected"]
        ],
    }
    # The id names the content: a batch re-sent after a SIGKILL repeats it,
    # while a batch re-run with its inputs interleaved differently (two topics
    # feed an order) that decides otherwise gets a new one, later in the topic
    # (docs/reliability.md, "Re-sent outputs").
    return {"decision_id": f"{state['order_id']}:{state['seq']}-{_short_digest(decision)}", **decision,
            "occurred_at": at.isoformat()}


def _short_digest(content: object) -> str:
    """Eight hex digits naming an output's content, for its id. orjson, not
    json: 0.6 against 8 us a digest, two an order (session 23). The digests,
    and so the ids, differ from those of releases before it: an order re-run
    across that upgrade (a crash, then the new version) repeats a decision
    under a new id (docs/operations.md, "Upgrading")."""
    return hashlib.blake2b(orjson.dumps(content, default=str, option=orjson.OPT_SORT_KEYS),
                           digest_size=4).hexdigest()


def notification(state: dict, type_: str, data: dict, cause: str | None = None) -> dict:
    """``cause`` (the event that caused it) keeps ids apart when several
    notifications of a type follow one decision, e.g. two shipments shipped."""
    customer = state["customer"]
    # Named by its content too, like decisions: a re-run that says something
    # else must not reuse the id of what was already said.
    return {
        "notification_id": f"{state['order_id']}:{type_}:{cause or state['seq']}:{_short_digest([type_, data])}",
        "order_id": state["order_id"],
        "type": type_,
        "customer": customer,
        "channel": "email" if customer.get("email") else "sms",
        "data": data,
    }


def _decide(state: dict, at: datetime, step: Step, cause: str, first: bool = False,
            notify: str | None = None) -> None:
    """A new allocation decision with its status document and notifications."""
    state["seq"] += 1
    state["status"] = order_status(state)
    decision = allocation_decision(state, at, cause)
    step.outputs.append(("allocations", state["order_id"], decision))
    step.outputs.append(("order_status", state["order_id"], status_document(state, at)))
    allocated = sum(sum(ln["alloc"].values()) for ln in state["lines"].values())
    backordered = sum(ln["backordered"] for ln in state["lines"].values())
    which = decision["decision_id"].split(":", 1)[1]  # seq-digest: a new decision, a new notification
    if first:
        if allocated:
            step.outputs.append(("notifications", state["order_id"], notification(
                state, "order_confirmed", {"decision_id": decision["decision_id"], "status": state["status"]}, which)))
        if backordered:
            step.outputs.append(("notifications", state["order_id"], notification(
                state, "backordered", {"lines": decision["backorders"]}, which)))
    elif notify:
        step.outputs.append(("notifications", state["order_id"], notification(
            state, notify, {"decision_id": decision["decision_id"], "status": state["status"]}, which)))


def _remember(state: dict, ident: str) -> bool:
    """True if ``ident`` was applied before; otherwise record it (bounded)."""
    if ident in state["applied"]:
        return True
    state["applied"] = (state["applied"] + [ident])[-200:]
    return False


def on_backorder_filled(state: dict, reply: Mapping, nodes: Mapping[str, Node], at: datetime) -> Step:
    state = clone(state)
    if _remember(state, reply["fill_id"]):
        return Step(state, duplicate=True)
    ln = state["lines"].get(reply["line_id"])
    if ln is None:
        return Step(state, duplicate=True)
    got = {n: int(q) for n, q in reply["nodes"].items()}
    # An owner can grant more than still waits: its queue entry is set by the
    # order's last backorder command, which may cross a fill (or a shipment)
    # in flight. Keep what the line needs, hand the rest straight back.
    keep: dict[str, int] = {}
    need = ln["backordered"]
    for n in sorted(got):
        q = min(got[n], need)
        if q > 0:
            keep[n] = q
            need -= q
    excess = {n: q - keep.get(n, 0) for n, q in got.items() if q - keep.get(n, 0) > 0}
    step = Step(state)
    if excess:
        step.commands.append({"cmd": "release", "cmd_id": f"{reply['fill_id']}:back", "order_id": state["order_id"],
                              "sku": reply["sku"], "nodes": excess})
    total = sum(keep.values())
    if total <= 0:  # nothing waits any more (cancelled or filled meanwhile)
        return step
    ln["backordered"] -= total
    if not ln["backordered"]:
        ln["expected_date"] = None
    for n, q in keep.items():
        ln["alloc"][n] = ln["alloc"].get(n, 0) + q
    _new_shipments(state, nodes, {reply["line_id"]: keep}, step)
    _decide(state, at, step, cause=reply["fill_id"], notify="order_confirmed")
    return step


def on_revoked(state: dict, reply: Mapping, nodes: Mapping[str, Node], at: datetime) -> Step:
    """Stock vanished under a reservation: take it off the lines and re-source."""
    state = clone(state)
    if _remember(state, reply["revoke_id"]):
        return Step(state, duplicate=True)
    node_id, sku, left = reply["node_id"], reply["sku"], int(reply["qty"])
    step = Step(state)
    if state["phase"] == "reserving":
        # Taken back while other owners are still answering (found by the
        # chaos suite): the grant no longer holds, so the decision must not
        # place it. The shrunk grant makes the reservation incomplete, which
        # re-plans like any short grant. A SKU still pending needs nothing:
        # its owner's answer comes after the revocation and reflects it.
        if sku not in state["pending"]:
            grant = state["grants"].get(sku, {})
            take = min(grant.get(node_id, 0), left)
            if take:
                grant[node_id] -= take
                if not grant[node_id]:
                    del grant[node_id]
        return step
    entries = []
    for lid in reversed(state["line_order"]):
        ln = state["lines"][lid]
        have = ln["alloc"].get(node_id, 0)
        if ln["sku"] != sku or not have or left <= 0:
            continue
        take = min(have, left)
        left -= take
        ln["alloc"][node_id] = have - take
        if not ln["alloc"][node_id]:
            del ln["alloc"][node_id]
        ln["backordered"] += take
        _shrink_shipments(state, node_id, lid, take, step)
        entries.append(_backorder_entry(state, lid, ln["backordered"], exclude=[node_id]))
    if left > 0:
        # Units we no longer hold here: shipped, released or shorted, with
        # that command still on its way to the owner when it revoked them.
        step.commands.append({"cmd": "unrevoke", "cmd_id": f"{reply['revoke_id']}:un", "order_id": state["order_id"],
                              "sku": sku, "node_id": node_id, "qty": left})
    if not entries:
        return step  # nothing of the plan changed: no new decision
    # The owner re-sources from other nodes at once, or queues the rest.
    step.commands.append({"cmd": "backorder", "cmd_id": f"{reply['revoke_id']}:bo", "order_id": state["order_id"],
                          "sku": sku, "entries": entries})
    _decide(state, at, step, cause=reply["revoke_id"], notify="delayed")
    return step


def _shrink_shipments(state: dict, node_id: str, line_id: str, qty: int, step: Step) -> None:
    for sid in reversed(list(state["shipments"])):
        sh = state["shipments"][sid]
        if sh["node_id"] != node_id or sh["status"] == "cancelled" or qty <= 0:
            continue
        took = False
        for entry in sh["lines"]:
            if entry[0] == line_id and entry[2] > 0 and qty > 0:
                take = min(entry[2], qty)
                entry[2] -= take
                qty -= take
                took = True
                step.outputs.append(("fulfillment_requests", node_id, {
                    "request_id": f"{sid}:cancel:{state['seq'] + 1}", "node_id": node_id,
                    "order_id": state["order_id"], "shipment_id": sid, "method": state["delivery"]["method"],
                    "lines": [{"line_id": line_id, "sku": entry[1], "qty": take}],
                    "address": state["delivery"].get("address"), "pickup_node_id": state["delivery"].get("pickup_node_id"),
                    "action": "cancel",
                }))
        if not took:
            # found by the chaos suite: a shipment at this node that had
            # already shipped everything was marked cancelled here, and the
            # next decision dropped its shipped units
            continue
        sh["lines"] = [e for e in sh["lines"] if e[2] > 0]
        if not sh["lines"] and not any(sh.get("shipped", {}).values()):
            sh["status"] = "cancelled"
