"""Garbage to every HTTP route of running workers: never a 5xx, always a reason.

Requests go out over a raw socket so the test controls the exact bytes of
the request line (urllib and http.client would quote or refuse them). Two
workers, so that keyed GETs are also forwarded to the other worker (the
owner of the key) with the odd key in the URL.
"""
from __future__ import annotations

import gzip
import http.client
import json
import random
import socket
import time

import pytest

from ..hostile import MAY_PASS, MUST_FAIL, good
from ..support import http_get, node_record

pytestmark = pytest.mark.e2e

LIMIT = 4096  # STOCKFLOW_MAX_PAYLOAD_BYTES for the workers
# 50 MB of JSON in 50 KB: the limit must hold for what the body inflates to.
GZIP_BOMB = gzip.compress(b'{"pad":"' + b"0" * 50_000_000 + b'"}', compresslevel=9)

ODD_KEYS = [
    "%C3%A9t%C3%A9", "%F0%9F%92%A9", "%E2%80%AEevil", "%EF%BB%BFbom", "a%CC%81%CC%81",  # unicode
    "\u00e9raw".encode().decode("latin-1"),  # UTF-8 bytes sent unescaped in the request line
    "%00", "%0A", "%0D%0A", "%7F", "%25", "%2525", "%", "%zz", "%E", "a%20b", "+",  # percent-encodings
    "%ED%A0%80", "%FF%FE", "%C0%AF",  # a lone surrogate, not UTF-8, an overlong slash
    "..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%2F", "a%2Fb", "./.", "~",  # paths
    "a;b=c", "a?x=1&x=2", "a#frag", "'%20OR%201=1--", "%3Cscript%3E", "{}", "[]", "null",
    "x" * 5_000,  # long, still under aiohttp's request-line limit
    "x" * 10_000,  # over it: answered by aiohttp itself
    "%F0%9F%92%A9" * 1_500,
]
UNKNOWN_PATHS = ["/", "/nope", "/atp", "/atp/", "/orders/", "/orders/a/b", "/atp/a/b", "/../../etc/passwd",
                 "//", "/metrics/x", "/ready/", "/%00", "/ATP/x", "/orders%2Fx", "*", "http://evil.example/atp/x"]
WRONG_METHODS = [("PUT", "/orders"), ("DELETE", "/orders"), ("PATCH", "/orders"), ("GET", "/orders"),
                 ("POST", "/atp/x"), ("PUT", "/atp/x"), ("DELETE", "/orders/x"), ("POST", "/orders/x"),
                 ("PUT", "/metrics"), ("POST", "/ready"), ("DELETE", "/healthz"), ("OPTIONS", "/orders"),
                 ("HEAD", "/atp/x"), ("TRACE", "/orders"), ("BREW", "/orders"), ("G\u00c9T", "/orders")]


def raw_request(port: int, method: str, target: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 30.0) -> tuple[int, str, bytes]:
    """(status, content type, body) for exactly these request-line bytes."""
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    hdrs = dict(headers or {})
    if body is not None and "Transfer-Encoding" not in hdrs:
        hdrs.setdefault("Content-Length", str(len(body)))
    head += [f"{k}: {v}" for k, v in hdrs.items()]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) before taking the whole body
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()


def explained(status: int, ctype: str, body: bytes, method: str) -> bool:
    """A 4xx says why: a JSON error or some text (HEAD has no body by definition)."""
    if method == "HEAD":
        return True
    if "json" in ctype:
        doc = json.loads(body)
        return isinstance(doc, dict) and bool(doc.get("error") or doc.get("detail") or doc.get("message"))
    return bool(body.strip())


@pytest.fixture
def workers(cluster):
    cluster.send("nodes", "N1", node_record("N1"))
    cluster.flush()
    env = {"STOCKFLOW_MAX_PAYLOAD_BYTES": str(LIMIT)}
    w1 = cluster.add_worker(wait_ready=False, extra_env=env)
    w2 = cluster.add_worker(wait_ready=False, extra_env=env)
    w1.wait_ready()
    w2.wait_ready()
    return cluster, [w1, w2]


def post_bodies() -> list[tuple[str, bytes, dict]]:
    rng = random.Random(20261122)
    out = []
    for i, mutation in enumerate(MUST_FAIL + MAY_PASS):
        for j in range(2):
            value, _ = mutation(rng, "OrderCommand", f"garbage-{i}-{j}")
            out.append((mutation.__name__, value, {"Content-Type": "application/json"}))
    valid = json.dumps(good("OrderCommand", rng, "ct-test")).encode()
    out += [
        ("empty", b"", {"Content-Type": "application/json"}),
        ("no_content_type", b'{"type":', {}),
        ("text_plain", b"hello", {"Content-Type": "text/plain"}),
        ("form", b"type=create&order_id=x", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("multipart", b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n",
         {"Content-Type": "multipart/form-data; boundary=b"}),
        ("json_as_xml", valid.replace(b'"order_id":"ct-test"', b'"order_id":"ct-xml"'), {"Content-Type": "application/xml"}),
        ("bad_charset", b'{"a":"\xe9"}', {"Content-Type": "application/json; charset=latin-1"}),
        ("just_over_limit", b'{"pad":"' + b"p" * LIMIT + b'"}', {"Content-Type": "application/json"}),
        ("two_megabytes", b'{"pad":"' + b"p" * 2_000_000 + b'"}', {"Content-Type": "application/json"}),
        ("deep_300", b'{"x":' + b"[" * 300 + b"]" * 300 + b"}", {"Content-Type": "application/json"}),
        ("deep_1000", b'{"x":' + b"[" * 1000 + b"]" * 1000 + b"}", {"Content-Type": "application/json"}),
        ("deep_over_limit", b"[" * 10_000, {"Content-Type": "application/json"}),
        ("nul_bytes", b"\x00" * 100, {"Content-Type": "application/json"}),
        ("gzip_claimed", b"not gzip at all", {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        ("chunked_garbage", b"zz\r\nnot hex\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}),
        ("gzip_bomb", GZIP_BOMB, {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
    ]
    return out


def test_every_route_answers_garbage_below_500_with_a_reason(workers):
    cluster, ws = workers
    started = time.monotonic()
    bad: list[tuple] = []
    answered: list[int] = []

    def check(w, method, target, body=None, headers=None, what=""):
        status, ctype, text = raw_request(w.web_port, method, target, body, headers)
        answered.append(status)
        if status >= 500:
            bad.append((what or target[:80], method, status, text[:200]))
        elif status >= 400 and not explained(status, ctype, text, method):
            bad.append((what or target[:80], method, status, "4xx without a message", ctype))
        return status, text

    for w in ws:
        for key in ODD_KEYS:
            check(w, "GET", f"/atp/{key}")
            check(w, "GET", f"/orders/{key}")
        for path in UNKNOWN_PATHS:
            check(w, "GET", path)
        for method, path in WRONG_METHODS:
            check(w, method, path, body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    for name, body, headers in post_bodies():
        check(ws[0], "POST", "/orders", body, headers, what=name)
    assert not bad, bad[:15]
    # Something was refused, or the checks above could not tell.
    assert sum(400 <= s < 500 for s in answered) > 50

    # the specific answers the README promises
    status, _ = check(ws[0], "POST", "/orders", b'{"pad":"' + b"p" * LIMIT + b'"}', {"Content-Type": "application/json"})
    assert status == 413
    status, text = check(ws[0], "POST", "/orders", b'{"x":' + b"[" * 1000 + b"]" * 1000 + b"}")
    assert status == 422 and json.loads(text)["error"] == "not_json"
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, text = check(ws[0], "POST", "/orders", b"not gzip at all", gz)
    assert status == 400 and json.loads(text)["error"] == "bad_body"
    status, _ = check(ws[0], "POST", "/orders", GZIP_BOMB, gz)
    assert status == 413
    status, _ = check(ws[0], "POST", "/orders", b'{"pad":"' + b"p" * 2_000_000 + b'"}')
    assert status == 413
    status, text = check(ws[0], "POST", "/orders", gzip.compress(json.dumps(good("OrderCommand", random.Random(1), "gz-ok")).encode()), gz)
    assert status == 202 and json.loads(text)["order_id"] == "gz-ok"
    status, text = check(ws[1], "GET", "/atp/%C3%A9t%C3%A9")
    assert status == 200 and json.loads(text)["known"] is False and json.loads(text)["sku"] == "\u00e9t\u00e9"
    status, text = check(ws[1], "GET", "/orders/%F0%9F%92%A9")
    assert status == 404 and json.loads(text)["error"] == "unknown_order"

    for w in ws:
        assert w.alive(), w.tail()
        status, body = http_get(f"{w.url}/ready")
        assert status == 200 and body["crashed_agents"] == [], body
    assert ws[0].metric("stockflow_http_rejected_total", {"route": "/orders", "status": "422"}) > 0
    assert ws[0].metric("stockflow_http_rejected_total", {"route": "/orders", "status": "413"}) > 0
    assert time.monotonic() - started < 300
