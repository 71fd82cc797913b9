"""POST /orders behind a token or an HMAC signature, on a real worker."""
from __future__ import annotations

import json

import pytest

from stockflow.connectors.auth import SIGNATURE_HEADER, sign

from ..support import http_get, order_create, parse_metric, post, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "tok-e2e-4f9a1c"
HMAC_SECRET = "hmac-e2e-77b2d0"



def test_intake_requires_a_valid_credential_and_counts_refusals(cluster):
    w = cluster.add_worker(extra_env={"STOCKFLOW_INTAKE_TOKEN": TOKEN, "STOCKFLOW_INTAKE_HMAC_SECRET": HMAC_SECRET})
    url = f"{w.url}/orders"
    body = json.dumps(order_create("AUTH-1", [("SKU-A", 1)])).encode()

    status, doc = post(url, body, {})
    assert status == 401 and doc["error"] == "unauthorized" and "Bearer" in doc["detail"]
    assert post(url, body, {"Authorization": "Bearer wrong"})[0] == 401
    assert post(url, body, {SIGNATURE_HEADER: sign("not-the-secret", body)})[0] == 401

    status, doc = post(url, body, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 202 and doc["order_id"] == "AUTH-1"
    other = json.dumps(order_create("AUTH-2", [("SKU-A", 1)])).encode()
    assert post(url, other, {SIGNATURE_HEADER: sign(HMAC_SECRET, other)})[0] == 202
    # a body signed, then changed in transit
    assert post(url, other + b" ", {SIGNATURE_HEADER: sign(HMAC_SECRET, other)})[0] == 401

    text = w.metrics_text()
    assert parse_metric(text, "stockflow_http_rejected_total", {"route": "/orders", "status": "401"}) == 4
    # only the authenticated orders reached the topic
    keys = {r["key"] for r in cluster.read_all("order_commands", min_count=2, timeout=10)}
    assert keys == {"AUTH-1", "AUTH-2"}
    wait_until(lambda: http_get(f"{w.url}/orders/AUTH-1")[0] == 200, 60, what="AUTH-1 decided")
    for secret in (TOKEN, HMAC_SECRET):
        assert secret not in text
        assert secret not in w.log_path.read_text(errors="replace")
