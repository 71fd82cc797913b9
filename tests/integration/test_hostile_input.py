"""Hostile records on every input topic, through the real broker and a real worker.

DESIGN.md section 5 ("Bad input"): a record that breaks the contract goes to
the dead-letter topic with a reason, a counter rises, processing goes on;
nothing is dropped without a trace. The batch comes from tests/hostile.py
(seeded, so every run sends the same bytes; the unit tests check that each
record breaks the way it is tagged).
"""
from __future__ import annotations

import base64
import time
from collections import Counter

import pytest

from ..hostile import INPUTS, KNOWN_REASONS, hostile_records
from ..support import http_get, movement, node_record, order_create, order_decided, post, wait_until

pytestmark = pytest.mark.integration

LIMIT = 4096  # STOCKFLOW_MAX_PAYLOAD_BYTES for the worker: oversize records stay small
PER_TOPIC = 40
SEED = 20261122
RSS_LIMIT_KB = 600 * 1024  # generous: an idle worker sits near 150 MB; a parser blow-up would not
DEAD_LETTER_PAYLOAD_LIMIT = 64 * 1024  # README: the payload is cut at 64 KiB


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def expected_payload(value: bytes | None) -> str:
    if value is None:
        return ""
    cut = value[:DEAD_LETTER_PAYLOAD_LIMIT]
    try:
        return cut.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(cut).decode("ascii")


def test_hostile_records_are_dead_lettered_one_to_one_and_good_ones_still_flow(cluster):
    cluster.send("nodes", "N1", node_record("N1"))
    cluster.flush()
    w = cluster.add_worker(extra_env={"STOCKFLOW_MAX_PAYLOAD_BYTES": str(LIMIT)})
    rss_start = rss_kb(w.proc.pid)

    # Sent one by one and awaited, so each record's offset is known exactly.
    sent: dict[tuple[str, int, int], object] = {}
    started = time.monotonic()
    for logical in INPUTS:
        topic = cluster.topics.name(logical)
        for h in hostile_records(SEED, logical, PER_TOPIC, LIMIT):
            md = cluster.producer.send(topic, key=h.key, value=h.value).get(timeout=30)
            sent[(topic, md.partition, md.offset)] = h
    assert len(sent) == PER_TOPIC * len(INPUTS)
    assert time.monotonic() - started < 120, "producing the batch took too long"

    # Good records after the hostile ones: the worker must still process them.
    cluster.send("movements", "GOOD-SKU", movement("GOOD-SKU", "N1", "receipt", 7))
    cluster.flush()
    wait_until(lambda: http_get(f"{w.url}/atp/GOOD-SKU")[1]["network_atp"] == 7, 90, what="good movement in ATP")
    cluster.send("order_commands", "good-order", order_create("good-order", [("GOOD-SKU", 2)]))
    cluster.flush()
    doc = wait_until(order_decided(w.url, "good-order"), 90, what="good order decided")
    assert doc["status"] == "allocated"
    assert http_get(f"{w.url}/atp/GOOD-SKU")[1]["network_atp"] == 5

    # Polled until all are there; on a shortfall the checks below say which
    # records are missing rather than only that the wait timed out.
    deadline = time.monotonic() + 90
    letters = cluster.read_all("deadletter", timeout=10, min_count=len(sent))
    while len(letters) < len(sent) and time.monotonic() < deadline:
        time.sleep(1.0)
        letters = cluster.read_all("deadletter", timeout=10, min_count=len(sent))
    by_source = Counter((d["value"]["source_topic"], d["value"]["partition"], d["value"]["offset"]) for d in letters)
    # One to one: every hostile record exactly once, nothing else dead-lettered.
    assert {k for k, n in by_source.items() if n > 1} == set()
    missing = sorted(set(sent) - set(by_source))
    assert not missing, [(k, sent[k].name) for k in missing[:10]]
    extra = sorted(set(by_source) - set(sent))
    assert not extra, extra[:10]
    wrong = []
    for d in letters:
        v = d["value"]
        h = sent[(v["source_topic"], v["partition"], v["offset"])]
        if v["error"] not in KNOWN_REASONS or v["error"] not in h.reasons:
            wrong.append((h.name, v["error"], sorted(h.reasons), v["detail"][:120]))
        elif v["payload"] != expected_payload(h.value):
            wrong.append((h.name, "payload differs", len(v["payload"])))
        elif not v["detail"]:
            wrong.append((h.name, "no detail for the operator"))
    assert not wrong, wrong[:10]
    reasons = Counter(d["value"]["error"] for d in letters)
    # the batch really covers the ways a record can break
    assert {"empty", "too_large", "not_json", "not_object", "invalid_fields", "bad_key", "key_mismatch",
            "unknown_node", "unknown_order"} <= set(reasons), reasons

    assert w.alive(), w.tail()
    status, body = http_get(f"{w.url}/ready")
    assert status == 200 and body["crashed_agents"] == [], body
    assert w.metric("stockflow_dead_letters_total") == len(sent)
    rss_end = rss_kb(w.proc.pid)
    assert rss_end < RSS_LIMIT_KB, f"worker RSS {rss_end // 1024} MB (started at {rss_start // 1024} MB)"


def test_hostile_answers_on_the_internal_topic_are_dead_lettered_whole_and_orders_still_flow(cluster):
    """internal.order-events is stockflow's own, but a record there that is
    not one of its answers (streams/answers.py) must not stop the orders
    agent either: dead-lettered whole, none of its answers applied."""
    cluster.send("nodes", "N1", node_record("N1"))
    cluster.send("movements", "SKU-A", movement("SKU-A", "N1", "receipt", 9))
    cluster.flush()
    w = cluster.add_worker()
    wait_until(lambda: http_get(f"{w.url}/atp/SKU-A")[1]["network_atp"] == 9, 90, what="stock in ATP")
    cluster.send("order_commands", "o-known", order_create("o-known", [("SKU-A", 2)]))
    cluster.flush()
    before = wait_until(lambda: (r := http_get(f"{w.url}/orders/o-known")) and r[0] == 200
                        and r[1]["status"] == "allocated" and r[1], 90, what="first order allocated")

    fine = {"kind": "reserved", "order_id": "o-known", "attempt": 1, "sku": "SKU-A", "granted": {"N1": 2}}
    hostile = {
        "not JSON": b"{not json",
        "an answers record with one bad answer": {"order_id": "o-known", "kind": "answers",
                                                  "answers": [fine, {"order_id": "o-known", "kind": "nonsense"}]},
        "a reserved answer without its sku": {k: v for k, v in fine.items() if k != "sku"},
        "an answer about another order": {"order_id": "o-known", "kind": "answers",
                                          "answers": [dict(fine, order_id="o-other")]},
        "an answer for an order nobody placed": dict(fine, order_id="o-nobody"),
    }
    for value in hostile.values():
        key = value.get("order_id") if isinstance(value, dict) else "o-known"
        cluster.send("order_events", key, value)
    cluster.flush()

    # good records after them still flow
    cluster.send("order_commands", "o-after", order_create("o-after", [("SKU-A", 3)]))
    cluster.flush()
    after = wait_until(order_decided(w.url, "o-after"), 90, what="order after the hostile answers")
    assert after["status"] == "allocated"
    assert http_get(f"{w.url}/atp/SKU-A")[1]["network_atp"] == 4

    letters = cluster.read_all("deadletter", timeout=10, min_count=len(hostile))
    assert sorted(d["value"]["error"] for d in letters) == sorted(
        ["bad_internal_event"] * 4 + ["unknown_order"]), [d["value"]["detail"] for d in letters]
    assert all(d["value"]["source_topic"] == cluster.topics.order_events and d["value"]["detail"] for d in letters)
    assert http_get(f"{w.url}/orders/o-known")[1]["lines"] == before["lines"]  # nothing of them applied
    assert w.alive(), w.tail()
    status, body = http_get(f"{w.url}/ready")
    assert status == 200 and body["crashed_agents"] == [], body


def test_an_order_too_large_to_keep_is_dead_lettered_and_the_worker_keeps_running(cluster):
    """An order's document, with the records its batch decided, is one
    changelog record (agents/outbox.py). Before the create's size bound
    (streams/events.py), this order (300 lines of 200-character ids, each
    shipped from its own node, well within the 500 lines a create may carry)
    was allocated in the local store, and then its decision's record failed
    as over Kafka's 1 MB limit: the orders agent crashed on
    MessageSizeTooLargeError, /ready answered 503, and the restarted agent
    met the same record. Now the create is refused, as bad input."""
    pad = "x" * 196
    n = 300
    skus = [f"S{i:03d}{pad}" for i in range(n)]
    for i, sku in enumerate(skus):
        cluster.send("nodes", f"N{i:03d}", node_record(f"N{i:03d}", lat=52.0 + i / 100))
        cluster.send("movements", sku, movement(sku, f"N{i:03d}", "receipt", 1))
    cluster.send("nodes", "N-small", node_record("N-small"))
    cluster.send("movements", "SKU-A", movement("SKU-A", "N-small", "receipt", 5))
    cluster.flush()
    w = cluster.add_worker()
    wait_until(lambda: http_get(f"{w.url}/atp/{skus[-1]}")[1]["network_atp"] == 1
               and http_get(f"{w.url}/atp/SKU-A")[1]["network_atp"] == 5, 90, what="stock in ATP")

    big = order_create("O" * 200, [(sku, 1) for sku in skus], event_id="oc-big")
    big["customer"]["customer_id"] = "cust-big"
    for i, line in enumerate(big["lines"]):
        line["line_id"] = f"L{i:03d}{pad}"
    status, body = post(f"{w.url}/orders", big)  # refused at the intake too
    assert status == 422 and "create too large to keep" in str(body), (status, body)
    cluster.send("order_commands", big["order_id"], big)
    cluster.send("order_commands", "o-after", order_create("o-after", [("SKU-A", 2)]))
    cluster.flush()

    after = wait_until(order_decided(w.url, "o-after"), 90, what="order after the large one")
    assert after["status"] == "allocated"
    letters = cluster.read_all("deadletter", timeout=10, min_count=1)
    assert [(d["value"]["error"], d["value"]["source_topic"]) for d in letters] == [
        ("invalid_fields", cluster.topics.order_commands)]
    assert "create too large to keep" in letters[0]["value"]["detail"]
    assert http_get(f"{w.url}/orders/{big['order_id']}")[0] == 404
    assert http_get(f"{w.url}/atp/{skus[0]}")[1]["network_atp"] == 1  # nothing of it reserved
    assert w.alive(), w.tail()
    status, body = http_get(f"{w.url}/ready")
    assert status == 200 and body["crashed_agents"] == [], body
