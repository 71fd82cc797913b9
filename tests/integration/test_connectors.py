"""The connectors against the real broker and real workers: CSV imports,
``stockflow tail`` and the Shopify orders/create webhook."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stockflow.connectors.shopify import ROUTE, sign

from ..support import http_get, movement, node_record, post, wait_until

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify_order_create.json"
SECRET = "whsec-test-0123456789"


def stockflow(cluster, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The ``stockflow`` command under the cluster's broker and topic prefix."""
    env = cluster.worker_env(0)
    del env["STOCKFLOW_WEB_PORT"]
    return subprocess.run([sys.executable, "-m", "stockflow.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)



def on_hand(worker, sku: str) -> dict[str, int]:
    status, body = http_get(f"{worker.url}/atp/{sku}")
    assert status == 200, body
    return {n["node_id"]: n["on_hand"] for n in body["nodes"]}


def test_csv_imports_reach_atp_and_tail_prints_them(cluster, tmp_path):
    nodes_csv = tmp_path / "nodes.csv"
    nodes_csv.write_text(
        "node_id,kind,lat,lon,services,daily_capacity,safety_stock,cost_per_order,cost_per_km,active\n"
        "DC-1,dc,52.39,13.52,ship|same_day,5000,0,4.5,0.08,true\n"
        "ST-1,store,52.52,13.40,ship pickup,,2,6,0.12,\n"
        "ST-X,warehouse,52.5,13.3,ship,,,,,\n"
    )
    # Before any worker: the import creates the topics with stockflow's partition count.
    res = stockflow(cluster, "import-nodes", str(nodes_csv))
    assert res.returncode == 1, res.stderr
    assert "3 rows read, 2 sent, 1 rejected" in res.stdout
    assert "line 4:" in res.stdout and "kind" in res.stdout

    w = cluster.add_worker()
    stock_csv = tmp_path / "snapshot.csv"
    stock_csv.write_text(
        "sku,node_id,on_hand\n"
        "IMP-A,DC-1,10\n"
        "IMP-A,ST-1,3\n"
        "IMP-B,DC-1,oops\n"
        "IMP-B,ST-1,7\n"
        "IMP-C,DC-1,-4\n"
    )
    res = stockflow(cluster, "import-stock", str(stock_csv))
    assert res.returncode == 1, res.stderr
    assert "5 rows read, 3 sent, 2 rejected" in res.stdout
    assert "line 4: on_hand must be a whole number, got 'oops'" in res.stdout
    assert "line 6: on_hand must be >= 0, got -4" in res.stdout
    assert "inventory.movements" in res.stderr  # the progress bar names its topic

    wait_until(lambda: on_hand(w, "IMP-A") == {"DC-1": 10, "ST-1": 3}, 60, what="IMP-A counted")
    wait_until(lambda: on_hand(w, "IMP-B") == {"ST-1": 7}, 60, what="IMP-B counted")
    atp = http_get(f"{w.url}/atp/IMP-A")[1]
    assert {n["node_id"]: n["atp"] for n in atp["nodes"]} == {"DC-1": 10, "ST-1": 1}  # ST-1 safety stock 2
    assert http_get(f"{w.url}/atp/IMP-C")[1]["known"] is False

    # A sale, then the same file again: its counts carry the same event ids,
    # so the worker skips them and the sale stands. The last sale follows the
    # re-import on the SKU's partition, so once it shows the re-import is done.
    cluster.send("movements", "IMP-A", movement("IMP-A", "DC-1", "sale", 3))
    cluster.flush()
    wait_until(lambda: on_hand(w, "IMP-A")["DC-1"] == 7, 60, what="sale applied")
    res = stockflow(cluster, "import-stock", str(stock_csv))
    assert res.returncode == 1 and "3 sent" in res.stdout
    cluster.send("movements", "IMP-A", movement("IMP-A", "DC-1", "sale", 1))
    cluster.flush()
    wait_until(lambda: on_hand(w, "IMP-A")["DC-1"] == 6, 60, what="re-import skipped, second sale applied")
    assert on_hand(w, "IMP-A") == {"DC-1": 6, "ST-1": 3}

    # tail: 3 imported counts + 3 re-imported (a SKU's rows are one
    # envelope: 2 records each time) + 2 sales are on the topic
    res = stockflow(cluster, "tail", "inventory.movements", "--from-beginning", "--max", "6", "--timeout", "30")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count('"type": "count"') == 6
    assert res.stdout.count('"movements"') == 4
    assert res.stdout.count('"type": "sale"') == 2
    for sku in ("IMP-A", "IMP-B"):
        assert f"{sku}  " in res.stdout  # the key heads its record
    assert "6 records from " in res.stderr

    res = stockflow(cluster, "tail", "nodes", "--from-beginning", "--max", "2", "--raw", "--timeout", "30")
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert sorted(r["key"] for r in records) == ["DC-1", "ST-1"]
    assert all(r["key"] == r["value"]["node_id"] and r["offset"] >= 0 and r["timestamp"] for r in records)

    # bounded by --timeout alone: an idle topic ends the tail, nothing printed
    res = stockflow(cluster, "tail", "allocations", "--timeout", "1")
    assert res.returncode == 0 and res.stdout == "" and "0 records" in res.stderr
    res = stockflow(cluster, "tail", "no.such.topic", "--timeout", "1")
    assert res.returncode == 2 and "no topic 'no.such.topic'" in res.stderr


def test_shopify_webhook_order_end_to_end(cluster):
    cluster.send("nodes", "BER", node_record("BER", kind="dc", lat=52.39, lon=13.52, services=["ship"]))
    cluster.flush()
    w = cluster.add_worker(extra_env={"STOCKFLOW_SHOPIFY_WEBHOOK_SECRET": SECRET})
    for sku in ("IPOD2008GREEN", "CASE-BLK-01"):
        cluster.send("movements", sku, movement(sku, "BER", "receipt", 5))
    cluster.flush()
    wait_until(lambda: on_hand(w, "CASE-BLK-01") == {"BER": 5} and on_hand(w, "IPOD2008GREEN") == {"BER": 5},
               60, what="stock")
    url = w.url + ROUTE
    raw = FIXTURE.read_bytes()
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
               "X-Shopify-Shop-Domain": "jsmith.myshopify.com"}

    status, body = post(url, raw, {**headers, "X-Shopify-Hmac-Sha256": sign("not-the-secret", raw)})
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = post(url, raw, headers)
    assert status == 401 and "missing" in body["detail"]
    assert w.metric("stockflow_http_rejected_total", {"route": ROUTE, "status": "401"}) == 2

    status, body = post(url, raw, {**headers, "X-Shopify-Hmac-Sha256": sign(SECRET, raw)})
    assert status == 202, body
    assert body == {"event_id": "shopify-450789469-create", "order_id": "shopify-450789469", "type": "create"}

    doc = wait_until(lambda: (r := http_get(f"{w.url}/orders/shopify-450789469")) and r[0] == 200
                     and r[1]["status"] == "allocated" and r[1], 60, what="shopify order allocated")
    assert {(ln["line_id"], ln["sku"], ln["qty"]) for ln in doc["lines"]} == {
        ("466157049", "IPOD2008GREEN", 2), ("703073504", "CASE-BLK-01", 1)}
    assert [s["node_id"] for s in doc["shipments"]] == ["BER"]

    # Shopify's retry of the same delivery: accepted again, skipped by event_id
    status, _ = post(url, raw, {**headers, "X-Shopify-Hmac-Sha256": sign(SECRET, raw)})
    assert status == 202
    commands_topic = cluster.topics.order_commands
    wait_until(lambda: w.metric("stockflow_duplicates_skipped_total", {"topic": commands_topic}) == 1, 60,
               what="the retry skipped as a duplicate")
    decisions = [r for r in cluster.read_all("allocations") if r["key"] == "shopify-450789469"]
    assert len(decisions) == 1
    assert {a["node_id"]: a["reserved"] for a in http_get(f"{w.url}/atp/CASE-BLK-01")[1]["nodes"]} == {"BER": 1}

    # a signed order that cannot be mapped: 422 naming Shopify's field, nothing sent
    bad = json.loads(raw)
    bad["id"] = 450789470
    bad["shipping_address"]["latitude"] = None
    bad_raw = json.dumps(bad).encode()
    status, body = post(url, bad_raw, {**headers, "X-Shopify-Hmac-Sha256": sign(SECRET, bad_raw)})
    assert status == 422 and [f["field"] for f in body["fields"]] == ["shipping_address.latitude"]
    assert w.metric("stockflow_http_rejected_total", {"route": ROUTE, "status": "422"}) == 1
    assert not [r for r in cluster.read_all("order_commands") if r["key"] == "shopify-450789470"]
