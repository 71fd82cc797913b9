"""After allocation: fulfilment progress, exceptions, cancellations, returns. Pure.

Per line, at every moment: qty = allocated-not-shipped + shipped + backordered
+ cancelled + rejected, and returned <= shipped (``check_accounting``). A
shipment's ``lines`` hold what is allocated there and not yet shipped; what
left the node is in its ``shipped`` map.
"""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

from ..streams.events import FulfillmentUpdate, Node, OrderCommand
from .clone import clone
from .orders import Step, _backorder_entry, _decide, notification, status_document
from .orders import order_status as derive_status

PROGRESS = {"picked": 1, "packed": 2, "ready_for_pickup": 3}


def check_accounting(state: dict) -> list[str]:
    """Lines whose figures do not add up (empty when all is well)."""
    bad = []
    for lid, ln in state["lines"].items():
        total = sum(ln["alloc"].values()) + ln["shipped"] + ln["backordered"] + ln["cancelled"] + ln["rejected"]
        if total != ln["qty"] or ln["returned"] > ln["shipped"] or min(ln["alloc"].values(), default=0) < 0:
            bad.append(lid)
    return bad


def _status_only(state: dict, at: datetime, step: Step) -> None:
    state["status"] = derive_status(state)
    step.outputs.append(("order_status", state["order_id"], status_document(state, at)))


def _refuse(state: dict, command: str, reason: str, at: datetime) -> Step:
    state = clone(state)
    state["refusal"] = {"command": command, "reason": reason, "at": at.isoformat()}
    step = Step(state)
    step.outputs.append(("order_status", state["order_id"], status_document(state, at)))
    return step


def _update_lines(upd: FulfillmentUpdate, sh: dict) -> list[tuple[str, str, int]]:
    """The update's lines, or the whole open shipment when it lists none."""
    if upd.lines:
        return [(ln.line_id, ln.sku, ln.qty) for ln in upd.lines]
    return [(lid, sku, q) for lid, sku, q in sh["lines"] if q > 0]


def _take_from_shipment(sh: dict, line_id: str, qty: int) -> bool:
    for entry in sh["lines"]:
        if entry[0] == line_id and entry[2] >= qty:
            entry[2] -= qty
            sh["lines"] = [e for e in sh["lines"] if e[2] > 0]
            return True
    return False


def on_fulfillment(state: dict, upd: FulfillmentUpdate, nodes: Mapping[str, Node], at: datetime) -> Step:
    sh0 = state["shipments"].get(upd.shipment_id)
    if sh0 is None:
        return Step(None, dead_letter=("unknown_shipment", f"shipment {upd.shipment_id!r} is not part of order {upd.order_id!r}"))
    if sh0["node_id"] != upd.node_id:
        return Step(None, dead_letter=("node_mismatch", f"shipment {upd.shipment_id} ships from {sh0['node_id']}, not {upd.node_id}"))
    state = clone(state)
    sh = state["shipments"][upd.shipment_id]
    step = Step(state)
    t = upd.type
    if t in PROGRESS:
        sh["status"] = t
        if t == "ready_for_pickup":
            step.outputs.append(("notifications", state["order_id"], notification(
                state, "ready_for_pickup", {"shipment_id": upd.shipment_id, "node_id": upd.node_id}, upd.event_id)))
        _status_only(state, at, step)
        return step
    if t == "delivered":
        if not sh.get("shipped"):
            return Step(None, dead_letter=("invalid_transition", f"shipment {upd.shipment_id} delivered before it shipped"))
        sh["delivered"] = True
        sh["status"] = "delivered"
        step.outputs.append(("notifications", state["order_id"], notification(
            state, "delivered", {"shipment_id": upd.shipment_id}, upd.event_id)))
        _status_only(state, at, step)
        return step
    if t == "return_received":
        return _return_received(state, upd, sh, at, step)

    lines = _update_lines(upd, sh)
    for line_id, sku, qty in lines:
        ln = state["lines"].get(line_id)
        if ln is None or ln["sku"] != sku or not _take_from_shipment(sh, line_id, qty):
            return Step(None, dead_letter=(
                "invalid_transition", f"{t} of {qty} x {line_id} exceeds what shipment {upd.shipment_id} holds"))
        ln["alloc"][upd.node_id] = ln["alloc"].get(upd.node_id, 0) - qty
        if not ln["alloc"][upd.node_id]:
            del ln["alloc"][upd.node_id]
        if t in ("shipped", "picked_up"):
            ln["shipped"] += qty
            sh.setdefault("shipped", {})[line_id] = sh.get("shipped", {}).get(line_id, 0) + qty
            step.commands.append({"cmd": "consume", "cmd_id": f"{upd.event_id}:{line_id}", "order_id": state["order_id"],
                                  "sku": sku, "node_id": upd.node_id, "qty": qty})
        else:  # short or rejected: the node cannot fill these units; look elsewhere
            ln["backordered"] += qty
            kind = "short" if t == "short" else "release"
            cmd = {"cmd": kind, "cmd_id": f"{upd.event_id}:{line_id}", "order_id": state["order_id"], "sku": sku}
            cmd.update({"node_id": upd.node_id, "qty": qty} if kind == "short" else {"nodes": {upd.node_id: qty}})
            step.commands.append(cmd)
            step.commands.append({"cmd": "backorder", "cmd_id": f"{upd.event_id}:{line_id}:bo", "order_id": state["order_id"],
                                  "sku": sku, "entries": [_backorder_entry(state, line_id, ln["backordered"], exclude=[upd.node_id])]})
    if t in ("shipped", "picked_up"):
        sh["status"] = t
        if t == "picked_up":
            sh["delivered"] = True
        sh["carrier"], sh["tracking_number"] = upd.carrier, upd.tracking_number
        note = "delivered" if t == "picked_up" else "shipped"
        step.outputs.append(("notifications", state["order_id"], notification(state, note, {
            "shipment_id": upd.shipment_id, "carrier": upd.carrier, "tracking_number": upd.tracking_number,
            "lines": [{"line_id": lid, "sku": sku, "qty": q} for lid, sku, q in lines]}, upd.event_id)))
        _status_only(state, at, step)
        return step
    # a shipment that already shipped some units is not cancelled by a short
    # of the rest: the decision must keep listing what it shipped
    if not sh["lines"] and not any(sh.get("shipped", {}).values()):
        sh["status"] = "cancelled"
    _decide(state, at, step, cause=upd.event_id, notify="delayed")
    return step


def _return_received(state: dict, upd: FulfillmentUpdate, sh: dict, at: datetime, step: Step) -> Step:
    amount = 0.0
    for line in upd.lines:
        ln = state["lines"].get(line.line_id)
        if ln is None or ln["sku"] != line.sku or ln["returned"] + line.qty > ln["shipped"]:
            return Step(None, dead_letter=("invalid_transition", f"return of {line.qty} x {line.line_id} exceeds what shipped"))
        ln["returned"] += line.qty
        ln["return_requested"] = max(0, ln.get("return_requested", 0) - line.qty)
        amount += (ln["unit_price"] or 0.0) * line.qty
        if upd.condition != "damaged":  # resellable (the default) goes back on the shelf
            step.commands.append({"cmd": "restock", "cmd_id": f"{upd.event_id}:{line.line_id}", "order_id": state["order_id"],
                                  "sku": line.sku, "node_id": upd.node_id, "qty": line.qty})
    lines = [{"line_id": x.line_id, "sku": x.sku, "qty": x.qty} for x in upd.lines]
    step.outputs.append(("notifications", state["order_id"], notification(
        state, "return_received", {"lines": lines, "condition": upd.condition or "resellable"}, upd.event_id)))
    step.outputs.append(("notifications", state["order_id"], notification(
        state, "refund_issued", {"amount": round(amount, 2)}, upd.event_id)))
    _status_only(state, at, step)
    return step


def _cancel_units(state: dict, line_id: str, qty: int | None, cause: str, step: Step) -> int:
    """Cancel up to ``qty`` unshipped units of a line: backordered first, then allocated."""
    ln = state["lines"][line_id]
    want = ln["backordered"] + sum(ln["alloc"].values()) if qty is None else qty
    done = 0
    take = min(want, ln["backordered"])
    if take:
        ln["backordered"] -= take
        done += take
        left = ln["backordered"]
        step.commands.append({"cmd": "backorder", "cmd_id": f"{cause}:{line_id}:bo", "order_id": state["order_id"],
                              "sku": ln["sku"], "entries": [_backorder_entry(state, line_id, left)]})
    for node_id in sorted(ln["alloc"]):
        if done >= want:
            break
        take = min(want - done, ln["alloc"][node_id])
        ln["alloc"][node_id] -= take
        done += take
        step.commands.append({"cmd": "release", "cmd_id": f"{cause}:{line_id}:{node_id}", "order_id": state["order_id"],
                              "sku": ln["sku"], "nodes": {node_id: take}})
        # The node's units of a line can sit in several shipments (a
        # backorder filled there later gets its own): take from each in turn
        # (found by the chaos suite: a cancel that found no one shipment
        # holding all of them released the units at the owner and left
        # them in the shipments).
        rest = take
        for sid, sh in state["shipments"].items():
            if rest <= 0:
                break
            if sh["node_id"] != node_id or sh["status"] == "cancelled":
                continue
            here = sum(e[2] for e in sh["lines"] if e[0] == line_id)
            part = min(rest, here)
            if not part or not _take_from_shipment(sh, line_id, part):
                continue
            rest -= part
            step.outputs.append(("fulfillment_requests", node_id, {
                "request_id": f"{sid}:cancel:{cause}:{line_id}", "node_id": node_id, "order_id": state["order_id"],
                "shipment_id": sid, "method": state["delivery"]["method"],
                "lines": [{"line_id": line_id, "sku": ln["sku"], "qty": part}],
                "address": state["delivery"].get("address"), "pickup_node_id": state["delivery"].get("pickup_node_id"),
                "action": "cancel"}))
            if not sh["lines"] and not sh.get("shipped"):
                sh["status"] = "cancelled"
    ln["alloc"] = {n: q for n, q in ln["alloc"].items() if q > 0}
    ln["cancelled"] += done
    return done


def on_cancel(state: dict, cmd: OrderCommand, at: datetime) -> Step:
    """``cancel`` (whole order) or ``cancel_line`` (one line, optional qty)."""
    if cmd.type == "cancel_line":
        ln = state["lines"].get(cmd.line_id)
        if ln is None:
            return _refuse(state, cmd.type, f"unknown line {cmd.line_id}", at)
        open_units = ln["backordered"] + sum(ln["alloc"].values())
        if open_units == 0 or (cmd.qty or 0) > open_units:
            return _refuse(state, cmd.type, "already_shipped" if ln["shipped"] else "nothing_to_cancel", at)
        targets = [(cmd.line_id, cmd.qty)]
    else:
        targets = [(lid, None) for lid in state["line_order"]
                   if state["lines"][lid]["backordered"] + sum(state["lines"][lid]["alloc"].values())]
        if not targets:
            shipped = any(ln["shipped"] for ln in state["lines"].values())
            return _refuse(state, cmd.type, "already_shipped" if shipped else "nothing_to_cancel", at)
    state = clone(state)
    state.pop("refusal", None)
    step = Step(state)
    cancelled = {lid: _cancel_units(state, lid, qty, cmd.event_id, step) for lid, qty in targets}
    live = sum(ln["qty"] - ln["cancelled"] - ln["rejected"] for ln in state["lines"].values())
    note = "cancelled" if live == 0 else "partially_cancelled"
    _decide(state, at, step, cause=cmd.event_id, notify=None)
    step.outputs.append(("notifications", state["order_id"], notification(state, note, {"lines": cancelled}, cmd.event_id)))
    return step


def on_change_address(state: dict, cmd: OrderCommand, at: datetime) -> Step:
    """Before any shipment is released the address changes (waiting lines are
    re-queued with it); after, the change is refused."""
    if any(sh["status"] != "cancelled" for sh in state["shipments"].values()):
        return _refuse(state, cmd.type, "already_released", at)
    if state["delivery"]["method"] in ("pickup", "curbside"):
        return _refuse(state, cmd.type, "pickup_order", at)
    state = clone(state)
    state.pop("refusal", None)
    state["delivery"]["address"] = cmd.address.model_dump(mode="json")
    step = Step(state)
    for lid in state["line_order"]:
        ln = state["lines"][lid]
        if ln["backordered"]:
            step.commands.append({"cmd": "backorder", "cmd_id": f"{cmd.event_id}:{lid}", "order_id": state["order_id"],
                                  "sku": ln["sku"], "entries": [_backorder_entry(state, lid, ln["backordered"])]})
    _status_only(state, at, step)
    return step


def on_return_request(state: dict, cmd: OrderCommand, at: datetime) -> Step:
    for line in cmd.lines:
        ln = state["lines"].get(line.line_id)
        if ln is None:
            return _refuse(state, cmd.type, f"unknown line {line.line_id}", at)
        open_to_return = ln["shipped"] - ln["returned"] - ln.get("return_requested", 0)
        if line.qty > open_to_return:
            return _refuse(state, cmd.type, f"line {line.line_id}: {line.qty} > {open_to_return} returnable", at)
    state = clone(state)
    state.pop("refusal", None)
    for line in cmd.lines:
        ln = state["lines"][line.line_id]
        ln["return_requested"] = ln.get("return_requested", 0) + line.qty
    step = Step(state)
    _status_only(state, at, step)
    return step
