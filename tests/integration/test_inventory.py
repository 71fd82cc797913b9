"""Movements through the real broker and a real worker to ATP, availability and dead letters."""
from __future__ import annotations

import pytest

import json

from ..support import http_get, movement, movement_batch, node_record, order_create, wait_until

pytestmark = pytest.mark.integration


def atp_of(worker, sku):
    status, body = http_get(f"{worker.url}/atp/{sku}")
    assert status == 200, body
    return {n["node_id"]: n for n in body["nodes"]}, body


def test_movements_show_in_atp_and_availability(cluster):
    cluster.send("nodes", "S1", node_record("S1", safety_stock=2))
    cluster.send("nodes", "S2", node_record("S2"))
    cluster.flush()
    w = cluster.add_worker()
    sends = [
        ("SKU-A", movement("SKU-A", "S1", "receipt", 10)),
        ("SKU-A", movement("SKU-A", "S1", "sale", 3)),
        ("SKU-A", movement("SKU-A", "S2", "count", 20)),
        ("SKU-A", movement("SKU-A", "S2", "damage", 1)),
        ("SKU-A", movement("SKU-A", "S2", "expected", 30, supply_id="PO-9", eta="2026-12-24T00:00:00Z")),
        ("SKU-B", movement("SKU-B", "S1", "adjustment", -4)),
    ]
    for key, rec in sends:
        cluster.send("movements", key, rec)
    cluster.flush()

    def settled():
        nodes, body = atp_of(w, "SKU-A")
        return body if nodes.get("S2", {}).get("on_hand") == 19 and body["expected"] else None

    body = wait_until(settled, 60, what="SKU-A settled")
    nodes = {n["node_id"]: n for n in body["nodes"]}
    assert nodes["S1"] == {"node_id": "S1", "on_hand": 7, "reserved": 0, "safety_stock": 2, "atp": 5, "active": True}
    assert nodes["S2"]["atp"] == 19
    assert body["network_atp"] == 24
    assert body["expected"] == [{"supply_id": "PO-9", "node_id": "S2", "qty": 30, "eta": "2026-12-24T00:00:00+00:00"}]
    b_nodes, b_body = atp_of(w, "SKU-B")
    assert b_nodes["S1"]["on_hand"] == -4 and b_body["network_atp"] == 0

    avail = wait_until(
        lambda: [r for r in cluster.read_all("availability") if r["key"] == "SKU-A" and r["value"]["node_id"] == "S2" and r["value"]["on_hand"] == 19],
        30,
        what="availability event",
    )
    assert avail[-1]["value"]["network_atp"] == 24
    unknown = http_get(f"{w.url}/atp/NO-SUCH-SKU")[1]
    assert unknown["known"] is False and unknown["network_atp"] == 0


def test_duplicate_event_id_counted_once(cluster):
    cluster.send("nodes", "S1", node_record("S1"))
    cluster.flush()
    w = cluster.add_worker()
    # a fresh worker that has written nothing yet still routes queries
    assert http_get(f"{w.url}/atp/SKU-D")[0] == 200
    assert http_get(f"{w.url}/orders/none-yet")[0] == 404
    rec = movement("SKU-D", "S1", "receipt", 5, event_id="dup-1")
    for _ in range(3):
        cluster.send("movements", "SKU-D", rec)
    # same event_id from a different SKU is a different event (ids are per producer)
    cluster.send("movements", "SKU-E", movement("SKU-E", "S1", "receipt", 2, event_id="dup-1"))
    cluster.send("movements", "SKU-D", movement("SKU-D", "S1", "receipt", 1))
    cluster.flush()
    body = wait_until(lambda: (b := atp_of(w, "SKU-D")[1]) and b["network_atp"] == 6 and b, 60, what="SKU-D = 6")
    assert body["nodes"][0]["on_hand"] == 6
    assert atp_of(w, "SKU-E")[0]["S1"]["on_hand"] == 2
    assert w.metric("stockflow_duplicates_skipped_total") >= 2


BAD_RECORDS = [
    ("not_json", "SKU-X", b"{this is not json"),
    ("not_object", "SKU-X", b"[1, 2, 3]"),
    ("invalid_fields", "SKU-X", {"event_id": "b1", "sku": "SKU-X"}),
    ("invalid_fields", "SKU-X", movement("SKU-X", "S1", "receipt", "12")),
    ("invalid_fields", "SKU-X", movement("SKU-X", "S1", "sale", -5)),
    ("invalid_fields", "SKU-X", movement("SKU-X", "S1", "receipt", 0)),
    ("unknown_node", "SKU-X", movement("SKU-X", "NOWHERE", "receipt", 1)),
    ("key_mismatch", "SKU-OTHER", movement("SKU-X", "S1", "receipt", 1)),
    ("not_json", "SKU-X", b"\xff\xfe\xfd binary"),
    ("empty", "SKU-X", None),
]


def test_bad_records_go_to_deadletter_and_worker_keeps_going(cluster):
    cluster.send("nodes", "S1", node_record("S1"))
    cluster.send("nodes", "BAD", {"node_id": "BAD", "kind": "spaceship"})
    cluster.flush()
    w = cluster.add_worker()
    for _, key, value in BAD_RECORDS:
        cluster.send("movements", key, value)
    cluster.send("movements", "SKU-X", movement("SKU-X", "S1", "receipt", 9))
    cluster.flush()
    wait_until(lambda: atp_of(w, "SKU-X")[1]["network_atp"] == 9, 60, what="good record after bad ones")
    letters = wait_until(
        lambda: (r := cluster.read_all("deadletter")) and len(r) >= len(BAD_RECORDS) + 1 and r,
        30,
        what="dead letters",
    )
    by_source = [r["value"] for r in letters if r["value"]["source_topic"] == cluster.topics.movements]
    assert sorted(v["error"] for v in by_source) == sorted(r for r, _, _ in BAD_RECORDS)
    for v in by_source:
        assert v["partition"] is not None and v["offset"] is not None and v["detail"] or v["error"] == "empty"
    binary = [v for v in by_source if v["payload"].startswith("base64:")]
    assert len(binary) == 1
    assert any(v["error"] == "invalid_fields" and "qty" in v["detail"] for v in by_source)
    node_letters = [r["value"] for r in letters if r["value"]["source_topic"] == cluster.topics.nodes]
    assert [v["error"] for v in node_letters] == ["invalid_fields"]
    assert w.alive()
    assert w.metric("stockflow_dead_letters_total", {"reason": "unknown_node"}) == 1
    assert w.metric("stockflow_dead_letters_total") == len(BAD_RECORDS) + 1


def test_movement_envelope_applies_its_lines_once_and_dead_letters_the_bad(cluster):
    cluster.send("nodes", "S1", node_record("S1"))
    cluster.send("nodes", "S2", node_record("S2"))
    cluster.flush()
    w = cluster.add_worker()
    upload = movement_batch("SKU-V", [
        {"node_id": "S1", "type": "receipt", "qty": 10},
        {"node_id": "S2", "type": "count", "qty": 7},
        {"node_id": "S1", "type": "sale", "qty": 3},
        {"node_id": "NOWHERE", "type": "receipt", "qty": 1},
    ], event_id="upload-1")
    cluster.send("movements", "SKU-V", upload)
    cluster.send("movements", "SKU-V", upload)  # a producer retry: changes nothing
    hostile = [
        movement_batch("SKU-V", []),
        movement_batch("SKU-V", [{"node_id": "S1", "type": "receipt", "qty": 50},
                                 {"node_id": "S1", "type": "receipt", "qty": "5"}]),
        movement_batch("SKU-V", [{"node_id": "S1", "type": "count", "qty": 1}] * 1001),
        movement_batch("SKU-V", "S1 receipt 5"),
    ]
    for rec in hostile:
        cluster.send("movements", "SKU-V", rec)
    cluster.send("movements", "SKU-OTHER", movement_batch("SKU-V", [{"node_id": "S1", "type": "receipt", "qty": 50}]))
    cluster.send("movements", "SKU-V", movement("SKU-V", "S2", "receipt", 1))
    cluster.flush()

    nodes = wait_until(lambda: (n := atp_of(w, "SKU-V")[0]) and n.get("S2", {}).get("on_hand") == 8 and n, 60,
                       what="SKU-V after the envelope and a single movement")
    assert nodes["S1"]["on_hand"] == 7  # 10 - 3 once; nothing of the rejected envelopes
    letters = wait_until(lambda: (r := [x["value"] for x in cluster.read_all("deadletter")]) and len(r) >= 6 and r,
                         30, what="dead letters")
    assert sorted(v["error"] for v in letters) == ["invalid_fields"] * 4 + ["key_mismatch", "unknown_node"]
    (lost,) = [v for v in letters if v["error"] == "unknown_node"]
    line = json.loads(lost["payload"])  # the one line, as a single movement that can be sent again
    assert line["event_id"] == "upload-1/3" and line["sku"] == "SKU-V" and line["node_id"] == "NOWHERE"
    assert lost["offset"] is not None and "upload-1/3" in lost["detail"]
    assert any("movements.1.qty" in v["detail"] for v in letters)
    # the two copies of the upload: one applied, one skipped as a duplicate
    assert w.metric("stockflow_duplicates_skipped_total") >= 1
    avail = [r["value"] for r in cluster.read_all("availability") if r["key"] == "SKU-V"]
    # One event per SKU-node per batch, the batch's last figures (README,
    # "Micro-batches"): S2 at 7 shows only when the envelope and the single
    # movement after it fell into different batches. Never a figure of half
    # an envelope (S1 at 10) or of a rejected one.
    figures = {(a["node_id"], a["on_hand"]) for a in avail}
    assert {("S1", 7), ("S2", 8)} <= figures <= {("S1", 7), ("S2", 7), ("S2", 8)}
    assert w.alive()


def test_a_best_seller_at_many_nodes_reserved_by_many_orders_at_once(cluster):
    """A SKU owner's changelog record is the SKU's document with the answers
    its batch gave (agents/outbox.py), each carrying the SKU's ATP at every
    node it stocks: 500 nodes make an answer of about 9 KB, and 300 reserves
    arriving together a record over Kafka's 1 MB limit. Before batches
    ended early at a key's outbox budget, the stock agent crashed on
    MessageSizeTooLargeError, again on every restart."""
    n_nodes, n_orders = 500, 300
    for i in range(n_nodes):
        cluster.send("nodes", f"STORE-{i:04d}", node_record(f"STORE-{i:04d}", lat=52.0 + i / 1000))
        cluster.send("movements", "HOT", movement("HOT", f"STORE-{i:04d}", "receipt", 2))
    cluster.flush()
    w = cluster.add_worker()
    wait_until(lambda: http_get(f"{w.url}/atp/HOT")[1]["network_atp"] == 2 * n_nodes, 120, what="stock in ATP")
    for i in range(n_orders):  # at once: their reserves reach the owner together
        cluster.send("order_commands", f"hot-{i}", order_create(f"hot-{i}", [("HOT", 1)]))
    cluster.flush()

    def settled():
        statuses = [http_get(f"{w.url}/orders/hot-{i}") for i in range(n_orders)]
        return all(s == 200 and b["status"] == "allocated" for s, b in statuses)

    wait_until(settled, 120, 1.0, what="every order allocated")
    atp = http_get(f"{w.url}/atp/HOT")[1]
    assert atp["network_atp"] == 2 * n_nodes - n_orders
    assert sum(n["reserved"] for n in atp["nodes"]) == n_orders, atp
    assert w.alive(), w.tail()
    status, body = http_get(f"{w.url}/ready")
    assert status == 200 and body["crashed_agents"] == [], body
    assert "MessageSizeTooLarge" not in w.tail()
