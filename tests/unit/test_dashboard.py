"""The dashboard's pure parts: the data document and the self-contained page."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from stockflow import metrics
from stockflow.connectors import dashboard
from stockflow.connectors.dashboard import (
    HEADERS,
    PAGE,
    build_data,
    histogram_quantile,
    metric_samples,
    order_statuses,
    parse_top,
    top_skus,
)
from stockflow.streams.events import Node

NOW = datetime(2025, 6, 3, 14, 30, tzinfo=timezone.utc)
TODAY = "2025-06-03"


def node(node_id: str, kind: str = "store", lat: float = 52.5, lon: float = 13.4, **kw) -> Node:
    return Node.model_validate({"node_id": node_id, "kind": kind, "lat": lat, "lon": lon, **kw})


def order_state(status: str) -> dict:
    return {"status": status, "lines": {}, "shipments": {}}


# ------------------------------------------------------------------ quantiles


def test_histogram_quantile_interpolates_like_promql():
    buckets = [(0.1, 0.0), (0.5, 10.0), (1.0, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.5)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.75)
    # the first bucket starts at 0, as in PromQL
    assert histogram_quantile(0.25, [(1.0, 4.0), (math.inf, 4.0)]) == pytest.approx(0.25)


def test_histogram_quantile_in_the_inf_bucket_answers_the_highest_finite_bound():
    assert histogram_quantile(0.99, [(0.1, 1.0), (5.0, 2.0), (math.inf, 10.0)]) == 5.0


def test_histogram_quantile_without_observations_is_none():
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None


# ------------------------------------------------------------------ pieces


def test_top_skus_ranks_by_network_atp_and_ignores_negative_and_empty():
    view = {"A": {"N1": 3, "N2": 4}, "B": {"N1": 9}, "C": {"N1": 7, "N2": -5}, "D": {"N1": 0}, "E": {}}
    top = top_skus(view, 3)
    assert [(t["sku"], t["network_atp"], t["nodes"]) for t in top] == [("B", 9, 1), ("A", 7, 2), ("C", 7, 1)]
    assert [t["sku"] for t in top_skus(view, 10)] == ["B", "A", "C"]  # D and E hold nothing


def test_order_statuses_counts_in_lifecycle_order_and_bounds_the_scan():
    states = [order_state("shipped"), order_state("allocated"), order_state("allocated"), "garbage", order_state("backordered")]
    doc = order_statuses(states, limit=10)
    assert doc["by_status"] == {"allocated": 2, "backordered": 1, "shipped": 1, "unreadable": 1}
    assert list(doc["by_status"])[:3] == ["allocated", "backordered", "shipped"]
    assert doc["scanned"] == 5 and doc["truncated"] is False
    bounded = order_statuses(iter(states), limit=2)
    assert bounded["scanned"] == 2 and bounded["truncated"] is True
    assert sum(bounded["by_status"].values()) == 2


def test_order_statuses_derives_the_status_when_the_state_has_none():
    line = {"qty": 2, "cancelled": 2, "rejected": 0, "shipped": 0, "returned": 0, "alloc": {}, "backordered": 0}
    assert order_statuses([{"lines": {"L1": line}, "shipments": {}}])["by_status"] == {"cancelled": 1}


def test_parse_top_clamps():
    assert parse_top(None) == dashboard.TOP_SKUS
    assert parse_top("3") == 3
    assert parse_top("0") == 1
    assert parse_top("100000") == dashboard.MAX_TOP_SKUS
    assert parse_top("ten") == dashboard.TOP_SKUS


# ------------------------------------------------------------------ the document


def sample_input() -> dict:
    p = "sfx"
    samples = [
        ("stockflow_events_processed_total", {"topic": f"{p}.inventory.movements"}, 40.0),
        ("stockflow_events_processed_total", {"topic": f"{p}.orders.commands"}, 3.0),
        ("stockflow_allocations_total", {"status": "allocated"}, 2.0),
        ("stockflow_allocations_total", {"status": "backordered"}, 1.0),
        ("stockflow_dead_letters_total", {"reason": "not_json"}, 1.0),
        ("stockflow_dead_letters_total", {"reason": "unknown_node"}, 4.0),
        ("stockflow_orders_received_total", {}, 3.0),
        ("stockflow_split_shipments_total", {}, 1.0),
        ("stockflow_backorders_total", {}, 1.0),
        ("stockflow_oversell_violations_total", {}, 0.0),
        ("stockflow_consumer_lag", {"topic": f"{p}.inventory.movements"}, 7.0),
        ("stockflow_ready", {}, 1.0),
    ]
    # 10 movement events under 10 ms, 10 order events between 0.1 and 0.25 s
    for le, mv, oc in [("0.01", 10, 0), ("0.1", 10, 0), ("0.25", 10, 10), ("+Inf", 10, 10)]:
        samples.append(("stockflow_processing_latency_seconds_bucket", {"topic": f"{p}.inventory.movements", "le": le}, float(mv)))
        samples.append(("stockflow_processing_latency_seconds_bucket", {"topic": f"{p}.orders.commands", "le": le}, float(oc)))
    samples.append(("stockflow_processing_latency_seconds_count", {"topic": f"{p}.inventory.movements"}, 10.0))
    samples.append(("stockflow_processing_latency_seconds_count", {"topic": f"{p}.orders.commands"}, 10.0))
    return dict(
        nodes={
            "DC-1": node("DC-1", kind="dc", lat=50.1, lon=8.7, daily_capacity=100),
            "ST-1": node("ST-1", lat=52.5, lon=13.4),
            "ST-OFF": node("ST-OFF", lat=48.1, lon=11.6, active=False),
        },
        atp_by_sku={"A": {"DC-1": 10, "ST-1": 2}, "B": {"ST-1": 5}, "C": {"DC-1": 0}},
        released={("DC-1", TODAY): {"s1", "s2"}, ("DC-1", "2025-06-02"): {"old"}, ("ST-1", TODAY): {"s3"}},
        samples=samples,
        orders=order_statuses([order_state("allocated"), order_state("backordered")]),
        now=NOW,
        prefix=p,
        top_n=10,
        worker={"id": "127.0.0.1:6066"},
    )


def test_build_data_network_and_nodes_are_the_global_views():
    d = build_data(**sample_input())
    assert d["network"] == {
        "skus": 3,
        "network_atp": 17,
        "top_skus": [{"sku": "A", "network_atp": 12, "nodes": 2}, {"sku": "B", "network_atp": 5, "nodes": 1}],
    }
    by_id = {n["node_id"]: n for n in d["nodes"]}
    assert set(by_id) == {"DC-1", "ST-1", "ST-OFF"}
    assert (by_id["DC-1"]["lat"], by_id["DC-1"]["lon"], by_id["DC-1"]["kind"]) == (50.1, 8.7, "dc")
    # yesterday's release does not count today
    assert [by_id[n]["released_today"] for n in ("DC-1", "ST-1", "ST-OFF")] == [2, 1, 0]
    assert [by_id[n]["atp"] for n in ("DC-1", "ST-1", "ST-OFF")] == [10, 7, 0]
    assert by_id["DC-1"]["daily_capacity"] == 100 and by_id["ST-1"]["daily_capacity"] is None
    assert by_id["ST-OFF"]["active"] is False
    assert d["released_today"] == 3


def test_build_data_counters_are_this_workers_registry():
    d = build_data(**sample_input())
    assert d["allocations"] == {"allocated": 2, "partial": 0, "backordered": 1, "rejected": 0}
    assert d["dead_letters"] == {"unknown_node": 4, "not_json": 1}
    assert list(d["dead_letters"]) == ["unknown_node", "not_json"]  # most first
    assert d["counters"]["dead_letters"] == 5
    assert d["counters"]["orders_received"] == 3 and d["counters"]["split_shipments"] == 1
    assert d["counters"]["oversell_violations"] == 0
    # topic names lose the deployment's prefix
    assert d["events"] == {"inventory.movements": 40, "orders.commands": 3}
    assert d["lag"] == {"inventory.movements": 7}
    assert d["orders"]["by_status"] == {"allocated": 1, "backordered": 1}
    assert d["worker"] == {"id": "127.0.0.1:6066", "ready": True}
    assert d["generated_at"].startswith("2025-06-03T14:30")


def test_build_data_latency_quantiles_over_all_topics_and_per_topic():
    lat = build_data(**sample_input())["latency"]
    assert lat["count"] == 20
    assert lat["p50"] == pytest.approx(0.01)  # rank 10 ends the first bucket
    assert 0.1 < lat["p99"] <= 0.25
    assert set(lat["by_topic"]) == {"inventory.movements", "orders.commands"}
    assert lat["by_topic"]["inventory.movements"]["p99"] <= 0.01
    assert lat["by_topic"]["orders.commands"]["p50"] == pytest.approx(0.175)


def test_build_data_with_nothing_at_all_is_a_complete_document():
    """A fresh worker: no nodes, no stock, no samples. The page renders this."""
    d = build_data(nodes={}, atp_by_sku={}, released={}, samples=[], orders=order_statuses([]), now=NOW)
    assert d["network"] == {"skus": 0, "network_atp": 0, "top_skus": []}
    assert d["nodes"] == [] and d["released_today"] == 0
    assert d["allocations"] == {"allocated": 0, "partial": 0, "backordered": 0, "rejected": 0}
    assert d["dead_letters"] == {} and d["events"] == {} and d["lag"] == {}
    assert d["latency"] == {"count": 0, "p50": None, "p90": None, "p99": None, "by_topic": {}}
    assert d["worker"]["ready"] is False
    # every key the page reads is there, and it serialises
    for key in ("network", "nodes", "orders", "allocations", "counters", "dead_letters", "events", "lag", "latency", "worker", "generated_at"):
        assert key in d
    orjson.loads(orjson.dumps(d))


def test_build_data_reads_real_registry_samples():
    """metric_samples() on a registry with the real metric classes gives what build_data expects."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    reg = CollectorRegistry()
    Counter("stockflow_allocations", "x", ["status"], registry=reg).labels("partial").inc(3)
    Counter("stockflow_orders_received", "x", registry=reg).inc(2)
    h = Histogram("stockflow_processing_latency_seconds", "x", ["topic"], buckets=metrics.LATENCY_BUCKETS, registry=reg)
    for _ in range(4):
        h.labels("p.inventory.movements").observe(0.003)
    d = build_data(nodes={}, atp_by_sku={}, released={}, samples=metric_samples(reg), orders=order_statuses([]), now=NOW, prefix="p")
    assert d["allocations"]["partial"] == 3
    assert d["counters"]["orders_received"] == 2
    assert d["latency"]["count"] == 4
    assert 0.0025 < d["latency"]["p50"] <= 0.005
    assert set(d["latency"]["by_topic"]) == {"inventory.movements"}


def exposed_sample_names() -> set[str]:
    """Series names the real registry exposes, by metric type, as prometheus-client names them."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}
    return {fam.name + s for fam in metrics.REGISTRY.collect() for s in suffixes[fam.type]}


def test_every_metric_the_dashboard_reads_exists_in_metrics_py():
    src = Path(dashboard.__file__).read_text()
    used = set(re.findall(r'"(stockflow_[a-z_]+)"', src))
    used |= {base + "_bucket" for base in used if base.endswith("_seconds")}
    used |= {base + "_count" for base in used if base.endswith("_seconds")}
    used = {u for u in used if not u.endswith("_seconds")}
    assert len(used) >= 10, used
    missing = used - exposed_sample_names()
    assert not missing, f"dashboard.py reads metrics that metrics.py does not export: {sorted(missing)}"


# ------------------------------------------------------------------ the page


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_page_has_no_external_url():
    assert not re.search(r"https?:", PAGE, re.I), "the page must not name any http(s) URL"
    assert not re.search(r"""["'(]\s*//[a-z0-9]""", PAGE, re.I), "no protocol-relative URL either"
    assert "@import" not in PAGE and "url(" not in PAGE


def test_page_loads_no_resource_at_all():
    parser = _Tags()
    parser.feed(PAGE)
    tags = parser.tags
    scripts = [a for t, a in tags if t == "script"]
    assert scripts and all("src" not in a for a in scripts), "scripts are inline"
    assert not [t for t, _ in tags if t in ("link", "iframe", "img", "object", "embed", "base")]
    for tag, attrs in tags:
        for name in ("src", "href", "srcset", "action", "data"):
            assert name not in attrs, f"<{tag} {name}=...> loads something"
    # the only request: its own data, relative to where the page is served
    assert "fetch(DATA_URL" in PAGE and "location.pathname" in PAGE


def test_page_is_complete_html_with_the_panels():
    assert PAGE.lstrip().lower().startswith("<!doctype html>")
    assert PAGE.rstrip().endswith("</html>")
    for element_id in ("kpis", "skus", "map", "orders", "allocs", "dead", "timeline", "topics", "nodes"):
        assert f'id="{element_id}"' in PAGE, element_id
    assert "this worker" in PAGE and "global" in PAGE  # the page says what each number covers


def test_the_browser_is_told_to_load_nothing_else():
    csp = dict(part.strip().split(" ", 1) for part in HEADERS["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert "http" not in HEADERS["Content-Security-Policy"]
