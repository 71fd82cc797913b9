"""bench_domain: the pure path an order takes, timed without a broker."""
import json
import random
from datetime import datetime, timezone

import pytest

from stockflow import bench, bench_domain
from stockflow.domain.reservations import atp_by_node
from stockflow.streams.events import Node

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc).isoformat()


def _world(n_skus=40, n_nodes=6, n_moves=400, n_orders=300, qty=(5, 20)):
    rng = random.Random(3)
    nodes = {f"N{i}": Node(node_id=f"N{i}", kind="store", lat=50 + i * 0.1, lon=10 + i * 0.1,
                           services=("ship",), cost_per_order=3 + i) for i in range(n_nodes)}
    skus = [f"S{i:03d}" for i in range(n_skus)]
    moves = [json.dumps({"event_id": f"m{i}", "occurred_at": NOW, "sku": skus[i % n_skus],
                         "node_id": rng.choice(sorted(nodes)), "type": "receipt", "qty": rng.randint(*qty)}).encode()
             for i in range(n_moves)]
    orders = [bench._order(i, "T", skus, rng, NOW)[1] for i in range(n_orders)]
    return nodes, bench_domain.stock_from(moves), orders, skus


def test_stock_is_the_movements_folded():
    nodes, stock, _, skus = _world()
    assert set(stock) == set(skus)
    # 400 receipts of 5 to 20 units over 40 SKUs: every unit is on hand, none reserved
    on_hand = sum(s.on_hand for st in stock.values() for s in st.stock.values())
    assert 400 * 5 <= on_hand <= 400 * 20
    assert all(s.reserved == 0 for st in stock.values() for s in st.stock.values())


def test_every_order_is_decided_and_the_figures_add_up():
    nodes, stock, orders, _ = _world()
    got = bench_domain.measure(nodes, stock, orders, warmup=50)
    assert got["orders_domain_orders"] == 250
    # plenty of stock: every order ends allocated, none stuck reserving
    assert got["orders_domain_statuses"] == {"allocated": 300}
    parts = got["orders_domain_parts_us"]
    assert set(parts) == set(bench_domain.PARTS) and all(v > 0 for v in parts.values())
    # the parts are laps of the same clock: they add up to the whole, give or take the loop itself
    assert sum(parts.values()) == pytest.approx(got["orders_domain_us"], rel=0.2)
    assert "us an order (the order side" in bench_domain.text(got)


def test_short_stock_ends_in_backorders_and_no_node_is_oversold():
    nodes, stock, orders, _ = _world(n_moves=40, qty=(1, 1))
    before = {sku: atp_by_node(st, nodes) for sku, st in stock.items()}
    got = bench_domain.measure(nodes, stock, orders, warmup=10)
    statuses = got["orders_domain_statuses"]
    assert sum(statuses.values()) == 300
    assert statuses.get("backordered", 0) + statuses.get("partial", 0) > 0
    assert set(statuses) <= {"allocated", "partial", "backordered"}
    # measure works on a copy: the caller's stock is as it was
    assert {sku: atp_by_node(st, nodes) for sku, st in stock.items()} == before


def test_too_few_orders_for_the_warmup_is_an_error():
    nodes, stock, orders, _ = _world(n_orders=20)
    with pytest.raises(ValueError, match="warm-up"):
        bench_domain.measure(nodes, stock, orders, warmup=20)
