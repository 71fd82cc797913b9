"""The HTTP edge of every worker (DESIGN.md section 6).

Keyed queries are routed by Faust to the worker that owns the key's
partition, so any worker answers for any SKU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from .. import metrics
from ..domain.atp import atp, expected_supply, network_atp

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


def register(rt: "Runtime") -> None:
    app = rt.app
    stock_table = rt.stock.table

    @app.page("/atp/{sku}")
    class AtpView(View):
        @app.table_route(table=stock_table, match_info="sku")
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
                {"ready": ready, "nodes_loaded": rt.node_view.ready.is_set()},
                status=200 if ready else 503,
            )
