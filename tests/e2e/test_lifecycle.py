"""After allocation, end to end: ship, deliver, short, cancel, return; replays change nothing."""
from __future__ import annotations

import pytest

from ..support import http_get, movement, node_record, now_iso, order_create, wait_until

pytestmark = pytest.mark.e2e


def update(order_id, shipment_id, node_id, type_, lines=(), event_id=None, **kw):
    return {"event_id": event_id or f"fu-{order_id}-{shipment_id}-{type_}", "occurred_at": now_iso(),
            "order_id": order_id, "shipment_id": shipment_id, "node_id": node_id, "type": type_,
            "lines": [{"line_id": lid, "sku": sku, "qty": q} for lid, sku, q in lines], **kw}


def doc(w, order_id):
    status, body = http_get(f"{w.url}/orders/{order_id}")
    return body if status == 200 else None


def wait_status(w, order_id, status, timeout=60):
    """The order's document once it has ``status``; on timeout the error shows the last answer."""
    seen = []

    def check():
        got = http_get(f"{w.url}/orders/{order_id}")
        seen[:] = [got]
        return got[0] == 200 and got[1]["status"] == status and got[1]

    try:
        return wait_until(check, timeout, what=f"{order_id} {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {seen}") from None


def atp(w, sku):
    return {n["node_id"]: n for n in http_get(f"{w.url}/atp/{sku}")[1]["nodes"]}


def test_fulfilment_cancel_short_return(cluster):
    cluster.send("nodes", "A", node_record("A", lat=52.52, lon=13.40))
    cluster.send("nodes", "B", node_record("B", lat=53.55, lon=9.99))
    cluster.flush()
    w = cluster.add_worker()
    cluster.send("movements", "P", movement("P", "A", "receipt", 10))
    cluster.send("movements", "P", movement("P", "B", "receipt", 10))
    cluster.flush()
    wait_until(lambda: http_get(f"{w.url}/atp/P")[1]["network_atp"] == 20, 60, what="stock")
    for oid, qty in (("ship-me", 2), ("cancel-me", 1), ("short-me", 3)):
        cluster.send("order_commands", oid, order_create(oid, [("P", qty)], lat=52.52, lon=13.40))
    cluster.flush()
    for oid in ("ship-me", "cancel-me", "short-me"):
        wait_status(w, oid, "allocated")
    assert atp(w, "P")["A"]["reserved"] == 6

    # ship and deliver: on_hand and reserved fall together
    ship = update("ship-me", "ship-me-S1", "A", "shipped", carrier="DHL", tracking_number="T-1")
    cluster.send("fulfillment_updates", "ship-me", ship)
    cluster.send("fulfillment_updates", "ship-me", update("ship-me", "ship-me-S1", "A", "delivered"))
    # cancel before shipment releases the reservation
    cluster.send("order_commands", "cancel-me", {"event_id": "cx-1", "occurred_at": now_iso(), "type": "cancel", "order_id": "cancel-me"})
    # a short pick at A re-sources to B
    cluster.send("fulfillment_updates", "short-me", update("short-me", "short-me-S1", "A", "short", [("L1", "P", 3)]))
    cluster.flush()
    wait_status(w, "ship-me", "delivered")
    wait_status(w, "cancel-me", "cancelled")
    d = wait_until(lambda: (d := doc(w, "short-me")) and [s["node_id"] for s in d["shipments"] if s["status"] != "cancelled"] == ["B"] and d, 60, what="short re-sourced")
    assert d["status"] == "allocated"
    a = wait_until(lambda: (a := atp(w, "P")) and a["A"]["on_hand"] == 5 and a, 60, what="A: 10 - 2 shipped - 3 short")
    assert a["A"]["reserved"] == 0 and a["B"]["reserved"] == 3

    # after shipment, a cancel is refused with a reason on the status
    cluster.send("order_commands", "ship-me", {"event_id": "cx-2", "occurred_at": now_iso(), "type": "cancel", "order_id": "ship-me"})
    # return 1 resellable unit: restocks A and refunds
    cluster.send("order_commands", "ship-me", {"event_id": "rr-1", "occurred_at": now_iso(), "type": "return_request",
                                                "order_id": "ship-me", "lines": [{"line_id": "L1", "qty": 1}]})
    cluster.send("fulfillment_updates", "ship-me", update("ship-me", "ship-me-S1", "A", "return_received", [("L1", "P", 1)],
                                                           condition="resellable"))
    cluster.flush()
    # (a later accepted command clears the refusal from the document; the
    # status topic keeps the record of it)
    wait_until(lambda: [r for r in cluster.read_all("order_status") if r["key"] == "ship-me"
                        and (r["value"].get("refusal") or {}).get("reason") == "already_shipped"], 60, what="refusal")
    wait_until(lambda: atp(w, "P")["A"]["on_hand"] == 6, 60, what="restocked")

    # replaying every fulfilment update changes no state and sends no new notification
    notes_before = sorted(r["value"]["notification_id"] for r in cluster.read_all("notifications"))
    for rec in cluster.read_all("fulfillment_updates"):
        cluster.send("fulfillment_updates", rec["key"], rec["value"])
    cluster.flush()
    replayed = len(cluster.read_all("fulfillment_updates")) // 2
    try:
        wait_until(lambda: w.metric("stockflow_duplicates_skipped_total", {"topic": cluster.topics.fulfillment_updates}) >= replayed,
                   60, what="replays skipped")
    except AssertionError:
        print([ln for ln in w.metrics_text().splitlines() if "fulfillment" in ln or "dead_letters_total" in ln])
        raise
    assert atp(w, "P")["A"]["on_hand"] == 6
    notes_after = sorted(r["value"]["notification_id"] for r in cluster.read_all("notifications"))
    assert notes_after == notes_before
    types = [r["value"]["type"] for r in cluster.read_all("notifications") if r["key"] == "ship-me"]
    for t in ("order_confirmed", "shipped", "delivered", "return_received", "refund_issued"):
        assert t in types, types
    refund = [r["value"] for r in cluster.read_all("notifications") if r["value"]["type"] == "refund_issued"]
    assert refund[0]["data"]["amount"] == 19.99


def test_bopis_cancel_line_address_reject_and_damaged_return(cluster):
    cluster.send("nodes", "STORE", node_record("STORE", lat=52.52, lon=13.40))
    cluster.send("nodes", "DC", node_record("DC", kind="dc", lat=51.34, lon=12.37, services=["ship"]))
    cluster.flush()
    w = cluster.add_worker()
    cluster.send("movements", "Q", movement("Q", "STORE", "receipt", 4))
    cluster.send("movements", "R", movement("R", "STORE", "receipt", 3))
    cluster.flush()
    wait_until(lambda: http_get(f"{w.url}/atp/Q")[1]["network_atp"] == 4, 60, what="stock")

    # BOPIS: ready for pickup, then picked up; the customer has no email: SMS
    bopis = order_create("bopis", [("Q", 1)], method="pickup", pickup_node_id="STORE", email=None)
    two_lines = order_create("two", [("Q", 2), ("R", 3)], lat=52.5, lon=13.4)
    waiting = order_create("waiting", [("NONE", 1)], lat=52.5, lon=13.4)
    for o in (bopis, two_lines, waiting):
        cluster.send("order_commands", o["order_id"], o)
    cluster.flush()
    wait_until(lambda: doc(w, "bopis")["status"] == "allocated" and doc(w, "two")["status"] == "allocated"
               and doc(w, "waiting")["status"] == "backordered", 60, what="decided")
    cluster.send("fulfillment_updates", "bopis", update("bopis", "bopis-S1", "STORE", "ready_for_pickup"))
    cluster.send("fulfillment_updates", "bopis", update("bopis", "bopis-S1", "STORE", "picked_up"))
    # cancel one unit of one line
    cluster.send("order_commands", "two", {"event_id": "cl-1", "occurred_at": now_iso(), "type": "cancel_line",
                                           "order_id": "two", "line_id": "L1", "qty": 1})
    # address change: accepted while nothing is released, refused after
    for oid in ("waiting", "two"):
        cluster.send("order_commands", oid, {"event_id": f"ca-{oid}", "occurred_at": now_iso(), "type": "change_address",
                                             "order_id": oid, "address": {"lat": 48.14, "lon": 11.58}})
    cluster.flush()
    d = wait_until(lambda: (d := doc(w, "bopis")) and d["status"] == "delivered" and d, 60, what="picked up")
    two = wait_until(lambda: (d := doc(w, "two")) and d["lines"][0]["cancelled"] == 1 and d, 60, what="line cancelled")
    assert two["lines"][0]["allocated"] == 1 and two["lines"][1]["allocated"] == 3
    wait_until(lambda: (doc(w, "two").get("refusal") or {}).get("reason") == "already_released", 60, what="address refused")
    notes = {r["value"]["type"]: r["value"] for r in cluster.read_all("notifications") if r["key"] == "bopis"}
    assert {"order_confirmed", "ready_for_pickup", "delivered"} <= set(notes)
    assert all(n["channel"] == "sms" for n in notes.values())
    assert any(r["value"]["type"] == "partially_cancelled" for r in cluster.read_all("notifications") if r["key"] == "two")
    status_waiting = [r["value"] for r in cluster.read_all("order_status") if r["key"] == "waiting"]
    assert status_waiting and not status_waiting[-1].get("refusal")
    a = wait_until(lambda: (a := atp(w, "Q")) and a["STORE"]["on_hand"] == 3 and a, 60, what="picked up consumed stock")
    assert a["STORE"]["reserved"] == 1  # what is left of "two"'s L1

    # the store rejects the rest of "two"; no other node has R: backordered
    cluster.send("fulfillment_updates", "two", update("two", "two-S1", "STORE", "rejected", [("L2", "R", 3)]))
    cluster.flush()
    d = wait_until(lambda: (d := doc(w, "two")) and d["lines"][1]["backordered"] == 3 and d, 60, what="rejected -> backorder")
    assert d["status"] == "partial"
    assert wait_until(lambda: atp(w, "R")["STORE"]["reserved"] == 0, 30, what="released")
    assert atp(w, "R")["STORE"]["on_hand"] == 3  # a rejection does not touch on_hand

    # a damaged return does not restock
    cluster.send("fulfillment_updates", "bopis", update("bopis", "bopis-S1", "STORE", "return_received", [("L1", "Q", 1)],
                                                       condition="damaged"))
    cluster.flush()
    wait_until(lambda: doc(w, "bopis")["status"] == "returned", 60, what="returned")
    assert atp(w, "Q")["STORE"]["on_hand"] == 3
