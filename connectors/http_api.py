"""The HTTP edge of every worker (DESIGN.md section 6).

Keyed queries are routed by Faust to the worker that owns the key's
partition, so any worker answers for any SKU.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp.web import RequestPayloadError
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from .. import metrics
from .auth import refusal
from ..domain.atp import atp, expected_supply, network_atp
from ..domain.orders import status_document
from ..streams.codec import encode, encode_key, field_errors
from ..streams.events import OrderCommand

if TYPE_CHECKING:
    from ..app import Runtime


def atp_document(rt: "Runtime", sku: str) -> dict:
    state = rt.stock.get(sku)
    nodes = rt.node_view.nodes
    rows = []
    for node_id in sorted(state.stock):
        s = state.stock[node_id]
        node = nodes.get(node_id)
        rows.append(
            {
                "node_id": node_id,
                "on_hand": s.on_hand,
                "reserved": s.reserved,
                "safety_stock": node.safety_stock if node else 0,
                "atp": atp(s, node),
                "active": bool(node and node.active),
            }
        )
    return {
        "sku": sku,
        "known": bool(state.stock or state.supply),
        "nodes": rows,
        "network_atp": network_atp(state, nodes),
        "expected": [
            {"supply_id": sid, "node_id": n, "qty": q, "eta": eta}
            for sid, n, q, eta in expected_supply(state)
        ],
    }


def parse_order(raw: bytes, max_bytes: int) -> tuple[OrderCommand | None, int, dict]:
    """(command, HTTP status, body): 202 with the command, or a 4xx with why."""
    if len(raw) > max_bytes:
        return None, 413, {"error": "payload_too_large", "limit_bytes": max_bytes}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, 422, {"error": "not_json", "detail": str(exc)[:200]}
    if not isinstance(body, dict):
        return None, 422, {"error": "not_object", "detail": "the body must be a JSON object"}
    # Channels may leave the envelope to us: a fresh event_id and the time now.
    body.setdefault("event_id", str(uuid.uuid4()))
    body.setdefault("occurred_at", datetime.now(timezone.utc).isoformat())
    try:
        filled = orjson.dumps(body)
    except orjson.JSONEncodeError:
        # orjson reads 1024 levels of nesting but writes only 254: a body in
        # between parses, then fails here (it was a 500).
        return None, 422, {"error": "not_json", "detail": "the body is nested too deeply"}
    try:
        cmd = OrderCommand.model_validate_json(filled, strict=True)
    except ValidationError as exc:
        # pydantic's parser nests less deeply than orjson's: same answer as
        # the dead-letter side gives (not_json), not a field error.
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False, include_input=False)):
            return None, 422, {"error": "not_json", "detail": "the body is nested too deeply"}
        return None, 422, {"error": "invalid_fields", "fields": field_errors(exc)}
    return cmd, 202, {"event_id": cmd.event_id, "order_id": cmd.order_id, "type": cmd.type}


def routed(rt: "Runtime", table, param: str):
    """Like Faust's ``table_route``, but a worker that has not produced to the
    table's changelog yet first fetches its metadata (Faust's router would
    raise inside the producer's partitioner: a 500), and a key whose owner is
    unknown during a rebalance gets a 503 with a reason."""
    from faust.exceptions import SameNode
    from faust.web.exceptions import ServiceUnavailable

    app = rt.app

    def deco(fun):
        async def get(view: View, request: Request, **kwargs) -> Response:
            key = request.match_info[param]
            for attempt in (1, 2):
                try:
                    return await app.router.route_req(table.name, key, view.web, request)
                except SameNode:
                    return await fun(view, request, **kwargs)
                except TypeError:
                    if attempt == 2:
                        break
                    producer = app.producer._ensure_producer()
                    await producer.partitions_for(table.changelog_topic.get_topic_name())
                except (KeyError, ServiceUnavailable):
                    break
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    # The owner died and the group has not moved its
                    # partitions yet (seen in tests/chaos): a 503, not a 500.
                    return view.json({"error": "owner_unreachable",
                                      "detail": f"the worker that owns this key does not answer ({type(exc).__name__}); retry"},
                                     status=503)
            return view.json({"error": "not_ready", "detail": "the owner of this key is not known yet; retry"}, status=503)

        return get

    return deco


def register(rt: "Runtime") -> None:
    app = rt.app
    stock_table = rt.stock.table
    orders_table = rt.orders.table
    commands_topic = rt.faust_topics[rt.topics.order_commands]

    @app.page("/orders")
    class OrderIntake(View):
        async def post(self, request: Request) -> Response:
            try:
                raw = await request.read()
            except RequestPayloadError as exc:
                # aiohttp raises while reading a body it cannot decode (a
                # Content-Encoding: gzip that is not gzip); uncaught, a 500.
                metrics.HTTP_REJECTED.labels("/orders", "400").inc()
                return self.json({"error": "bad_body", "detail": str(exc)[:200]}, status=400)
            settings = rt.settings
            why = refusal(request.headers, raw, settings.secret(settings.intake_token),
                          settings.secret(settings.intake_hmac_secret))
            if why is not None:
                metrics.HTTP_REJECTED.labels("/orders", "401").inc()
                return self.json({"error": "unauthorized", "detail": why}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="stockflow"'})
            cmd, status, body = parse_order(raw, settings.max_payload_bytes)
            if cmd is None:
                metrics.HTTP_REJECTED.labels("/orders", str(status)).inc()
                return self.json(body, status=status)
            fut = await commands_topic.send(key=encode_key(cmd.order_id), value=encode(cmd))
            await fut  # 202 only once the command is on the topic
            return self.json(body, status=202)

    @app.page("/orders/{order_id}")
    class OrderView(View):
        @routed(rt, orders_table, "order_id")
        async def get(self, request: Request, order_id: str) -> Response:
            state = rt.orders.get(order_id)
            if state is None:
                return self.json({"error": "unknown_order", "order_id": order_id}, status=404)
            doc = status_document(state, datetime.now(timezone.utc))
            doc["shipments"] = [
                {"shipment_id": sid, "node_id": sh["node_id"], "status": sh["status"],
                 "lines": [{"line_id": lid, "sku": sku, "qty": q} for lid, sku, q in sh["lines"]]}
                for sid, sh in state["shipments"].items()
            ]
            return self.json(doc)

    @app.page("/atp/{sku}")
    class AtpView(View):
        @routed(rt, stock_table, "sku")
        async def get(self, request: Request, sku: str) -> Response:
            return self.json(atp_document(rt, sku))

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            ready = rt.is_ready()
            metrics.READY.set(1 if ready else 0)
            return self.json(
                {"ready": ready, "nodes_loaded": rt.node_view.ready.is_set(), "crashed_agents": rt.crashed_agents()},
                status=200 if ready else 503,
            )
