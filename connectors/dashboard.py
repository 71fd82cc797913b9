"""A live dashboard page on every worker: ``GET /dashboard`` and ``GET /dashboard/data``.

The page is one self-contained HTML document (inline CSS and JS, SVG and
canvas, no external URL) that polls ``/dashboard/data`` every 2 s, so it
works on a machine with no internet access and needs no build step.

What a worker can see decides what the page shows, and the page says so:

- global (the same on every worker): the node network (``NodeView``), ATP per
  SKU and node (``AtpView``, the replicated view orders are planned on) and
  the shipments released per node today (``CapacityView``, read from
  ``stockflow.fulfillment.requests``, which is what "allocations per node"
  means here; no per-node metric is needed for it);
- this worker only: the Prometheus counters in ``metrics.REGISTRY`` (events,
  allocations, dead letters, latency, lag) and the status of the orders whose
  partitions this worker owns. Cluster totals of the counters are what the
  Grafana dashboard (``deploy/grafana``) is for; fetching the other workers'
  ``/metrics`` from here would duplicate Prometheus badly.

The data building is pure (``build_data``) and unit-tested with plain inputs.
"""
from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .. import metrics
from ..domain.orders import order_status

if TYPE_CHECKING:
    from ..app import Runtime

TOP_SKUS = 10
MAX_TOP_SKUS = 50
# Counting order statuses walks the local orders table (RocksDB) on the event
# loop; a bound keeps one page refresh from stalling the agents on a big table.
ORDER_SCAN_LIMIT = 5000
ORDER_SCAN_TTL_S = 5.0
# Several open tabs must not each rebuild the data every 2 s.
DATA_TTL_S = 1.0

ORDER_STATUSES = (
    "created", "allocated", "partial", "backordered", "released", "shipped",
    "delivered", "cancelled", "returned", "rejected",
)
ALLOCATION_STATUSES = ("allocated", "partial", "backordered", "rejected")

Sample = tuple[str, Mapping[str, str], float]


# ------------------------------------------------------------------ pure parts


def metric_samples(registry) -> list[Sample]:
    """(sample name, labels, value) for every sample in a prometheus registry."""
    return [(s.name, dict(s.labels), float(s.value)) for fam in registry.collect() for s in fam.samples]


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """PromQL's ``histogram_quantile`` over cumulative (le, count) buckets:
    linear interpolation inside the bucket that holds the rank; a rank in the
    +Inf bucket answers the highest finite bound. None without observations."""
    pairs = sorted(buckets)
    if not pairs or pairs[-1][1] <= 0:
        return None
    total = pairs[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in pairs:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _short_topic(topic: str, prefix: str) -> str:
    return topic[len(prefix) + 1:] if prefix and topic.startswith(prefix + ".") else topic


def _by_label(samples: list[Sample], name: str, label: str, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for sname, labels, value in samples:
        if sname == name and label in labels:
            key = labels[label]
            if label == "topic":
                key = _short_topic(key, prefix)
            out[key] = out.get(key, 0.0) + value
    return out


def _total(samples: list[Sample], name: str) -> float:
    return sum(v for n, _, v in samples if n == name)


def _latency(samples: list[Sample], prefix: str) -> dict:
    name = "stockflow_processing_latency_seconds"
    per_topic: dict[str, dict[float, float]] = {}
    overall: dict[float, float] = {}
    counts: dict[str, float] = {}
    for sname, labels, value in samples:
        if sname == name + "_bucket":
            le = float(labels["le"])
            topic = _short_topic(labels.get("topic", ""), prefix)
            per_topic.setdefault(topic, {})[le] = per_topic.setdefault(topic, {}).get(le, 0.0) + value
            overall[le] = overall.get(le, 0.0) + value
        elif sname == name + "_count":
            topic = _short_topic(labels.get("topic", ""), prefix)
            counts[topic] = counts.get(topic, 0.0) + value

    def quantiles(b: dict[float, float]) -> dict:
        items = list(b.items())
        return {
            "count": int(max((c for _, c in items), default=0)),
            "p50": histogram_quantile(0.5, items),
            "p90": histogram_quantile(0.9, items),
            "p99": histogram_quantile(0.99, items),
        }

    out = quantiles(overall)
    out["by_topic"] = {t: quantiles(b) for t, b in sorted(per_topic.items()) if counts.get(t, 0) > 0}
    return out


def top_skus(atp_by_sku: Mapping[str, Mapping[str, int]], n: int) -> list[dict]:
    """The n SKUs with the most network ATP (ties by SKU, so the list is stable)."""
    totals = ((sku, sum(max(0, int(q)) for q in by_node.values())) for sku, by_node in atp_by_sku.items())
    best = heapq.nsmallest(n, totals, key=lambda t: (-t[1], t[0]))
    return [
        {
            "sku": sku,
            "network_atp": total,
            "nodes": sum(1 for q in atp_by_sku[sku].values() if q > 0),
        }
        for sku, total in best
        if total > 0
    ]


def order_statuses(states: Iterable[Any], limit: int = ORDER_SCAN_LIMIT) -> dict:
    """Orders by status over at most ``limit`` order states (the status the
    orders agent stored; derived from the lines when a state lacks it)."""
    by_status: Counter = Counter()
    scanned = 0
    it = iter(states)
    for state in itertools.islice(it, limit):
        scanned += 1
        try:
            status = state.get("status")
            by_status[status if isinstance(status, str) else order_status(state)] += 1
        except (KeyError, TypeError, AttributeError):
            by_status["unreadable"] += 1
    truncated = next(it, None) is not None
    ordered = {s: by_status[s] for s in ORDER_STATUSES if by_status.get(s)}
    ordered.update({s: c for s, c in sorted(by_status.items()) if s not in ordered})
    return {"by_status": ordered, "scanned": scanned, "truncated": truncated}


def node_rows(
    nodes: Mapping[str, Any],
    atp_by_sku: Mapping[str, Mapping[str, int]],
    released: Mapping[tuple[str, str], Any],
    today: str,
) -> list[dict]:
    """Every node with its coordinates, the ATP it holds over all SKUs and the
    shipments released from it today (CapacityView: global, from the topic)."""
    atp_at: Counter = Counter()
    for by_node in atp_by_sku.values():
        for node_id, q in by_node.items():
            if q > 0:
                atp_at[node_id] += int(q)
    rows = []
    for node_id, n in sorted(nodes.items()):
        rows.append(
            {
                "node_id": node_id,
                "kind": n.kind,
                "lat": n.lat,
                "lon": n.lon,
                "active": bool(n.active),
                "atp": atp_at.get(node_id, 0),
                "released_today": len(released.get((node_id, today), ())),
                "daily_capacity": n.daily_capacity,
            }
        )
    return rows


def build_data(
    *,
    nodes: Mapping[str, Any],
    atp_by_sku: Mapping[str, Mapping[str, int]],
    released: Mapping[tuple[str, str], Any],
    samples: list[Sample],
    orders: dict,
    now: datetime,
    prefix: str = "",
    top_n: int = TOP_SKUS,
    worker: Mapping[str, Any] | None = None,
) -> dict:
    """The document ``/dashboard/data`` answers, from plain inputs."""
    today = now.astimezone(timezone.utc).date().isoformat()
    node_list = node_rows(nodes, atp_by_sku, released, today)
    allocations = _by_label(samples, "stockflow_allocations_total", "status")
    dead = _by_label(samples, "stockflow_dead_letters_total", "reason")
    ready = _total(samples, "stockflow_ready")
    return {
        "generated_at": now.isoformat(),
        "worker": {**(worker or {}), "ready": ready >= 1},
        "scope": {
            "global": ["network", "nodes"],
            "this_worker": ["orders", "allocations", "counters", "dead_letters", "events", "latency", "lag"],
        },
        "network": {
            "skus": sum(1 for by_node in atp_by_sku.values() if by_node),
            "network_atp": sum(max(0, int(q)) for by_node in atp_by_sku.values() for q in by_node.values()),
            "top_skus": top_skus(atp_by_sku, top_n),
        },
        "nodes": node_list,
        "released_today": sum(r["released_today"] for r in node_list),
        "orders": orders,
        "allocations": {
            **{s: int(allocations.get(s, 0)) for s in ALLOCATION_STATUSES},
            **{s: int(v) for s, v in allocations.items() if s not in ALLOCATION_STATUSES},
        },
        "counters": {
            "orders_received": int(_total(samples, "stockflow_orders_received_total")),
            "split_shipments": int(_total(samples, "stockflow_split_shipments_total")),
            "backorders": int(_total(samples, "stockflow_backorders_total")),
            "oversell_violations": int(_total(samples, "stockflow_oversell_violations_total")),
            "availability_events": int(_total(samples, "stockflow_availability_events_total")),
            "reservation_replans": int(_total(samples, "stockflow_reservation_replans_total")),
            "duplicates_skipped": int(_total(samples, "stockflow_duplicates_skipped_total")),
            "dead_letters": int(sum(dead.values())),
        },
        "dead_letters": {r: int(v) for r, v in sorted(dead.items(), key=lambda kv: (-kv[1], kv[0]))},
        "events": {t: int(v) for t, v in sorted(_by_label(samples, "stockflow_events_processed_total", "topic", prefix).items())},
        "lag": {t: int(v) for t, v in sorted(_by_label(samples, "stockflow_consumer_lag", "topic", prefix).items())},
        "latency": _latency(samples, prefix),
    }


# ------------------------------------------------------------------ the page

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stockflow dashboard</title>
<style>
  :root { --bg:#eef1f5; --card:#fff; --ink:#1d2733; --mute:#6b7785; --line:#d9dee5;
          --blue:#2f6fde; --green:#1f9d6b; --amber:#e09a1a; --red:#d64545; --violet:#7b52c9; --grey:#9aa5b1; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 "DejaVu Sans", system-ui, sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:baseline; gap:16px; padding:12px 20px; background:#1d2733; color:#fff; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
  header .meta { color:#c6cfda; font-size:13px; }
  #status { margin-left:auto; font-size:13px; padding:2px 10px; border-radius:10px; background:#44505e; }
  #status.ok { background:var(--green); } #status.error { background:var(--red); }
  main { display:grid; grid-template-columns:repeat(12, 1fr); gap:14px; padding:14px 20px 24px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; min-width:0; }
  .card h2 { font-size:13px; text-transform:uppercase; letter-spacing:.6px; color:var(--mute); margin:0 0 8px; font-weight:600; }
  .card h2 small { text-transform:none; letter-spacing:0; font-weight:400; }
  .span3 { grid-column:span 3; } .span4 { grid-column:span 4; } .span5 { grid-column:span 5; }
  .span6 { grid-column:span 6; } .span7 { grid-column:span 7; } .span8 { grid-column:span 8; } .span12 { grid-column:span 12; }
  .kpis { display:grid; grid-template-columns:repeat(auto-fit, minmax(120px, 1fr)); gap:10px; }
  .kpi { border-left:4px solid var(--blue); padding:4px 10px; }
  .kpi .v { font-size:22px; font-weight:700; } .kpi .l { font-size:12px; color:var(--mute); }
  .kpi.good { border-color:var(--green); } .kpi.bad { border-color:var(--red); } .kpi.bad .v { color:var(--red); }
  .empty { color:var(--mute); font-style:italic; margin:6px 0; }
  table { border-collapse:collapse; width:100%; font-size:13px; }
  th, td { text-align:left; padding:3px 6px; border-bottom:1px solid var(--line); white-space:nowrap; }
  td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
  svg text { font-family:"DejaVu Sans", system-ui, sans-serif; }
  .legend { font-size:12px; color:var(--mute); display:flex; gap:12px; flex-wrap:wrap; margin-top:4px; }
  .legend i { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:4px; vertical-align:-1px; }
  .scroll { max-height:260px; overflow:auto; }
  canvas { width:100%; height:170px; display:block; }
  footer { padding:0 20px 16px; color:var(--mute); font-size:12px; }
</style>
</head>
<body data-state="loading">
<header>
  <h1>stockflow</h1>
  <span class="meta" id="worker">worker</span>
  <span class="meta" id="updated">waiting for data</span>
  <span id="status">loading</span>
</header>
<main>
  <section class="card span12"><div class="kpis" id="kpis"></div></section>
  <section class="card span5"><h2>Top SKUs by network ATP <small>(all nodes, global)</small></h2><div id="skus"></div></section>
  <section class="card span7"><h2>Allocations per node <small>(shipments released today, global)</small></h2>
    <div id="map"></div>
    <div class="legend"><span><i style="background:var(--blue)"></i>DC</span><span><i style="background:var(--green)"></i>store</span>
      <span><i style="background:var(--amber)"></i>dropship</span><span><i style="background:var(--violet)"></i>3PL</span>
      <span><i style="background:var(--grey)"></i>inactive</span><span>circle area = shipments released today</span></div>
  </section>
  <section class="card span4"><h2>Order flow by status <small id="orders-scope">(orders this worker owns)</small></h2><div id="orders"></div></section>
  <section class="card span4"><h2>Allocations by status <small>(this worker)</small></h2><div id="allocs"></div></section>
  <section class="card span4"><h2>Dead letters by reason <small>(this worker)</small></h2><div id="dead"></div></section>
  <section class="card span6"><h2>Throughput and latency <small>(this worker, since page load)</small></h2>
    <canvas id="timeline" width="600" height="170"></canvas>
    <div class="legend"><span><i style="background:var(--blue)"></i>events/s</span><span><i style="background:var(--red)"></i>p99 latency (ms)</span><span id="latency-now"></span></div>
  </section>
  <section class="card span6"><h2>Events per topic <small>(this worker)</small></h2><div class="scroll" id="topics"></div></section>
  <section class="card span12"><h2>Nodes</h2><div class="scroll" id="nodes"></div></section>
</main>
<footer>Network ATP, nodes and releases per node come from views every worker replicates; counters, latency,
dead letters and order statuses are this worker's own (Prometheus and Grafana show the cluster).</footer>
<script>
(function () {
  'use strict';
  var DATA_URL = location.pathname.replace(/\/+$/, '') + '/data' + location.search;
  var POLL_MS = 2000, KEEP = 150;
  var history = [], prev = null, polls = 0;
  var KIND = { dc: 'var(--blue)', store: 'var(--green)', dropship: 'var(--amber)', '3pl': 'var(--violet)' };
  var STATUS = { created: '#9aa5b1', allocated: '#1f9d6b', partial: '#e09a1a', backordered: '#c77d14', released: '#2f6fde',
    shipped: '#2f6fde', delivered: '#16704d', cancelled: '#6b7785', returned: '#7b52c9', rejected: '#d64545' };

  function $(id) { return document.getElementById(id); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function num(n) {
    if (n === null || n === undefined || isNaN(n)) return '\u2013';
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return (Math.round(n * 10) / 10).toLocaleString('en');
  }
  function secs(s) {
    if (s === null || s === undefined) return '\u2013';
    return s < 1 ? (s * 1000).toFixed(s < 0.01 ? 1 : 0) + ' ms' : s.toFixed(2) + ' s';
  }
  function entries(obj) { return Object.keys(obj || {}).map(function (k) { return [k, obj[k]]; }); }

  // Horizontal bars as inline SVG markup (innerHTML parses it as SVG).
  function bars(rows, emptyText) {
    rows = rows.filter(function (r) { return r.value > 0; });
    if (!rows.length) return '<p class="empty">' + esc(emptyText) + '</p>';
    var max = Math.max.apply(null, rows.map(function (r) { return r.value; }));
    var rowH = 22, labelW = 130, w = 460, barW = w - labelW - 60, h = rows.length * rowH + 4;
    var out = '<svg viewBox="0 0 ' + w + ' ' + h + '" width="100%" role="img">';
    rows.forEach(function (r, i) {
      var y = i * rowH + 2, bw = Math.max(2, barW * r.value / max);
      out += '<text x="' + (labelW - 6) + '" y="' + (y + 15) + '" text-anchor="end" font-size="12" fill="#1d2733">' + esc(r.label) + '</text>' +
        '<rect x="' + labelW + '" y="' + (y + 3) + '" width="' + bw.toFixed(1) + '" height="' + (rowH - 7) + '" rx="3" fill="' + (r.color || '#2f6fde') + '"></rect>' +
        '<text x="' + (labelW + bw + 5).toFixed(1) + '" y="' + (y + 15) + '" font-size="12" fill="#1d2733">' + esc(num(r.value)) + '</text>';
    });
    return out + '</svg>';
  }

  function kpis(d, rate) {
    var c = d.counters || {}, lat = d.latency || {}, allocs = 0;
    entries(d.allocations).forEach(function (e) { allocs += e[1]; });
    var split = allocs ? (100 * c.split_shipments / allocs).toFixed(1) + '%' : '\u2013';
    var items = [
      ['Network ATP', num(d.network.network_atp), ''], ['SKUs in stock', num(d.network.skus), ''],
      ['Nodes', num(d.nodes.length), ''], ['Released today', num(d.released_today), ''],
      ['Orders received', num(c.orders_received), ''], ['Allocations', num(allocs), ''],
      ['Split shipments', split, ''], ['Backorders', num(c.backorders), ''],
      ['Dead letters', num(c.dead_letters), c.dead_letters ? 'bad' : 'good'],
      ['Oversell guard', num(c.oversell_violations), c.oversell_violations ? 'bad' : 'good'],
      ['Events/s', rate === null ? '\u2013' : num(rate), ''], ['Latency p50', secs(lat.p50), ''], ['Latency p99', secs(lat.p99), '']
    ];
    return items.map(function (k) {
      return '<div class="kpi ' + k[2] + '"><div class="v">' + esc(k[1]) + '</div><div class="l">' + esc(k[0]) + '</div></div>';
    }).join('');
  }

  // Node coordinates on an equirectangular projection, x scaled by cos(latitude)
  // so distances look right at the network's latitude.
  function map(nodes) {
    if (!nodes.length) return '<p class="empty">no nodes yet (stockflow.nodes is empty)</p>';
    var W = 640, H = 330, pad = 34;
    var lats = nodes.map(function (n) { return n.lat; }), lons = nodes.map(function (n) { return n.lon; });
    var minLat = Math.min.apply(null, lats), maxLat = Math.max.apply(null, lats);
    var minLon = Math.min.apply(null, lons), maxLon = Math.max.apply(null, lons);
    var k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    var spanX = Math.max((maxLon - minLon) * k, 0.02), spanY = Math.max(maxLat - minLat, 0.02);
    var s = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
    var ox = (W - spanX * s) / 2, oy = (H - spanY * s) / 2;
    if (maxLon - minLon === 0) ox = W / 2;
    if (maxLat - minLat === 0) oy = H / 2;
    function X(lon) { return ox + (lon - minLon) * k * s; }
    function Y(lat) { return oy + (maxLat - lat) * s; }
    var out = '<svg viewBox="0 0 ' + W + ' ' + H + '" width="100%" role="img"><rect width="' + W + '" height="' + H + '" fill="#f4f7fb" rx="6"></rect>';
    var step = Math.max(spanY, spanX / k) > 8 ? 5 : (Math.max(spanY, spanX / k) > 2 ? 1 : 0.25);
    for (var g = Math.ceil((minLat - 5) / step) * step; g <= maxLat + 5; g += step) {
      var gy = Y(g); if (gy < 0 || gy > H) continue;
      out += '<line x1="0" x2="' + W + '" y1="' + gy.toFixed(1) + '" y2="' + gy.toFixed(1) + '" stroke="#dde4ee"></line>' +
        '<text x="4" y="' + (gy - 3).toFixed(1) + '" font-size="10" fill="#9aa5b1">' + g.toFixed(step < 1 ? 2 : 0) + '\u00b0</text>';
    }
    for (g = Math.ceil((minLon - 10) / step) * step; g <= maxLon + 10; g += step) {
      var gx = X(g); if (gx < 0 || gx > W) continue;
      out += '<line y1="0" y2="' + H + '" x1="' + gx.toFixed(1) + '" x2="' + gx.toFixed(1) + '" stroke="#dde4ee"></line>';
    }
    var maxRel = Math.max.apply(null, nodes.map(function (n) { return n.released_today; }).concat([1]));
    var ranked = nodes.slice().sort(function (a, b) { return b.released_today - a.released_today || b.atp - a.atp; });
    var labelled = {};
    ranked.slice(0, nodes.length <= 40 ? nodes.length : 15).forEach(function (n) { labelled[n.node_id] = true; });
    ranked.slice().reverse().forEach(function (n) {
      var r = 4 + 18 * Math.sqrt(n.released_today / maxRel), x = X(n.lon), y = Y(n.lat);
      var fill = n.active ? (KIND[n.kind] || 'var(--blue)') : 'var(--grey)';
      out += '<circle cx="' + x.toFixed(1) + '" cy="' + y.toFixed(1) + '" r="' + r.toFixed(1) + '" fill="' + fill +
        '" fill-opacity="0.55" stroke="' + fill + '" stroke-width="1.5"><title>' + esc(n.node_id + ': ' + n.released_today +
        ' released today, ATP ' + n.atp) + '</title></circle>';
      if (labelled[n.node_id]) {
        out += '<text x="' + (x + r + 3).toFixed(1) + '" y="' + (y + 4).toFixed(1) + '" font-size="11" fill="#1d2733">' +
          esc(n.node_id) + (n.released_today ? ' \u00b7 ' + n.released_today : '') + '</text>';
      }
    });
    return out + '</svg>';
  }

  function nodeTable(nodes) {
    if (!nodes.length) return '<p class="empty">no nodes yet</p>';
    var rows = nodes.slice().sort(function (a, b) { return b.released_today - a.released_today || b.atp - a.atp || (a.node_id < b.node_id ? -1 : 1); });
    return '<table><tr><th>node</th><th>kind</th><th class="n">lat</th><th class="n">lon</th><th class="n">ATP units</th>' +
      '<th class="n">released today</th><th class="n">daily capacity</th><th>active</th></tr>' +
      rows.slice(0, 200).map(function (n) {
        return '<tr><td>' + esc(n.node_id) + '</td><td>' + esc(n.kind) + '</td><td class="n">' + n.lat.toFixed(3) + '</td><td class="n">' +
          n.lon.toFixed(3) + '</td><td class="n">' + esc(num(n.atp)) + '</td><td class="n">' + n.released_today + '</td><td class="n">' +
          (n.daily_capacity === null ? '\u221e' : n.daily_capacity) + '</td><td>' + (n.active ? 'yes' : 'no') + '</td></tr>';
      }).join('') + '</table>';
  }

  function topicTable(d, rates) {
    var names = {};
    [d.events, d.lag, d.latency.by_topic].forEach(function (o) { Object.keys(o || {}).forEach(function (k) { names[k] = true; }); });
    var list = Object.keys(names).sort();
    if (!list.length) return '<p class="empty">no events processed yet</p>';
    return '<table><tr><th>topic</th><th class="n">processed</th><th class="n">/s</th><th class="n">lag</th><th class="n">p50</th><th class="n">p99</th></tr>' +
      list.map(function (t) {
        var l = (d.latency.by_topic || {})[t] || {};
        return '<tr><td>' + esc(t) + '</td><td class="n">' + esc(num(d.events[t] || 0)) + '</td><td class="n">' +
          esc(rates[t] === undefined ? '\u2013' : num(rates[t])) + '</td><td class="n">' + esc(num((d.lag || {})[t] || 0)) +
          '</td><td class="n">' + esc(secs(l.p50)) + '</td><td class="n">' + esc(secs(l.p99)) + '</td></tr>';
      }).join('') + '</table>';
  }

  function timeline(canvas) {
    var ratio = window.devicePixelRatio || 1, w = canvas.clientWidth || 600, h = canvas.clientHeight || 170;
    canvas.width = w * ratio; canvas.height = h * ratio;
    var g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    g.fillStyle = '#f4f7fb'; g.fillRect(0, 0, w, h);
    g.font = '11px "DejaVu Sans", sans-serif';
    if (history.length < 2) {
      g.fillStyle = '#6b7785'; g.fillText('collecting samples (one every 2 s)\u2026', 12, h / 2);
      return;
    }
    function line(key, color) {
      var vals = history.map(function (p) { return p[key]; });
      var max = Math.max.apply(null, vals.filter(function (v) { return v !== null; }).concat([1e-9]));
      g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
      var started = false;
      history.forEach(function (p, i) {
        if (p[key] === null) { started = false; return; }
        var x = 30 + (w - 40) * i / (KEEP - 1), y = h - 16 - (h - 30) * p[key] / max;
        if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
      });
      g.stroke();
      return max;
    }
    g.strokeStyle = '#dde4ee'; g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) { var y = 14 + (h - 30) * i / 4; g.beginPath(); g.moveTo(30, y); g.lineTo(w - 10, y); g.stroke(); }
    var maxRate = line('rate', '#2f6fde'), maxP99 = line('p99ms', '#d64545');
    g.fillStyle = '#2f6fde'; g.fillText('max ' + num(maxRate) + '/s', 34, 11);
    g.fillStyle = '#d64545'; g.fillText('max ' + num(maxP99) + ' ms', w - 110, 11);
  }

  function totalEvents(d) { var t = 0; entries(d.events).forEach(function (e) { t += e[1]; }); return t; }

  function render(d, at) {
    var rate = null, rates = {};
    if (prev) {
      var dt = (at - prev.at) / 1000;
      if (dt > 0) {
        rate = Math.max(0, (totalEvents(d) - totalEvents(prev.d)) / dt);
        entries(d.events).forEach(function (e) { rates[e[0]] = Math.max(0, (e[1] - (prev.d.events[e[0]] || 0)) / dt); });
      }
    }
    prev = { d: d, at: at };
    history.push({ rate: rate, p99ms: d.latency.p99 === null ? null : d.latency.p99 * 1000 });
    if (history.length > KEEP) history.shift();

    var w = d.worker || {};
    $('worker').textContent = 'worker ' + (w.id || '') + (w.ready ? ' \u00b7 ready' : ' \u00b7 not ready');
    $('updated').textContent = 'updated ' + new Date(d.generated_at).toLocaleTimeString('en-GB');
    $('kpis').innerHTML = kpis(d, rate);
    $('skus').innerHTML = bars(d.network.top_skus.map(function (s) {
      return { label: s.sku, value: s.network_atp, color: '#2f6fde' };
    }), 'no stock in the network yet');
    $('map').innerHTML = map(d.nodes);
    var o = d.orders || { by_status: {} };
    $('orders-scope').textContent = '(orders this worker owns' + (o.truncated ? ', first ' + o.scanned + ' scanned' : '') + ')';
    $('orders').innerHTML = bars(entries(o.by_status).map(function (e) {
      return { label: e[0], value: e[1], color: STATUS[e[0]] };
    }), 'no orders on this worker yet');
    $('allocs').innerHTML = bars(entries(d.allocations).map(function (e) {
      return { label: e[0], value: e[1], color: STATUS[e[0]] };
    }), 'no allocation decisions yet');
    $('dead').innerHTML = bars(entries(d.dead_letters).map(function (e) {
      return { label: e[0], value: e[1], color: '#d64545' };
    }), 'no dead letters');
    $('topics').innerHTML = topicTable(d, rates);
    $('nodes').innerHTML = nodeTable(d.nodes);
    $('latency-now').textContent = 'now: p50 ' + secs(d.latency.p50) + ', p90 ' + secs(d.latency.p90) + ', p99 ' + secs(d.latency.p99) +
      ' over ' + num(d.latency.count) + ' events';
    timeline($('timeline'));
  }

  function setStatus(state, text) {
    var el = $('status');
    el.className = state; el.textContent = text;
    document.body.setAttribute('data-state', state);
  }

  window.addEventListener('error', function (e) { document.body.setAttribute('data-js-error', String(e.message)); });

  function poll() {
    fetch(DATA_URL, { cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (d) {
        try {
          render(d, Date.now());
        } catch (e) {
          // a rendering bug: visible on the page and to the headless test
          document.body.setAttribute('data-js-error', String(e && e.stack || e));
          throw e;
        }
        polls += 1;
        document.body.setAttribute('data-polls', String(polls));
        setStatus('ok', 'live');
      })
      .catch(function (e) { setStatus('error', 'no data: ' + (e && e.message || e)); })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
</script>
</body>
</html>
"""

# The page loads nothing from anywhere: the browser enforces it.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


# ------------------------------------------------------------------ wiring


class _Cache:
    def __init__(self) -> None:
        self.data: dict[int, tuple[float, dict]] = {}
        self.orders: tuple[float, dict] | None = None


def _orders(rt: "Runtime", cache: _Cache) -> dict:
    now = time.monotonic()
    if cache.orders and now - cache.orders[0] < ORDER_SCAN_TTL_S:
        return cache.orders[1]
    try:
        doc = order_statuses(rt.orders.values(), ORDER_SCAN_LIMIT)
    except Exception as exc:  # during a rebalance the stores come and go
        doc = {"by_status": {}, "scanned": 0, "truncated": False, "error": type(exc).__name__}
    cache.orders = (now, doc)
    return doc


def collect(rt: "Runtime", top_n: int = TOP_SKUS, cache: _Cache | None = None) -> dict:
    cache = cache or _Cache()
    now = time.monotonic()
    hit = cache.data.get(top_n)
    if hit and now - hit[0] < DATA_TTL_S:
        return hit[1]
    metrics.READY.set(1 if rt.is_ready() else 0)
    s = rt.settings
    doc = build_data(
        nodes=dict(rt.node_view.nodes),
        atp_by_sku=rt.atp_view.by_sku,
        released=rt.capacity_view.released,
        samples=metric_samples(metrics.REGISTRY),
        orders=_orders(rt, cache),
        now=datetime.now(timezone.utc),
        prefix=rt.topics.prefix,
        top_n=top_n,
        worker={"id": f"{s.web_host}:{s.web_port}", "web_port": s.web_port},
    )
    cache.data[top_n] = (now, doc)
    return doc


def parse_top(raw: str | None) -> int:
    try:
        return min(MAX_TOP_SKUS, max(1, int(raw))) if raw else TOP_SKUS
    except ValueError:
        return TOP_SKUS


def register(rt: "Runtime") -> None:
    from faust.web import Request, Response, View

    app = rt.app
    cache = _Cache()

    @app.page("/dashboard")
    class DashboardPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(PAGE, headers=dict(HEADERS))

    @app.page("/dashboard/data")
    class DashboardData(View):
        async def get(self, request: Request) -> Response:
            top = parse_top(request.query.get("top"))
            return self.json(collect(rt, top, cache), headers={"Cache-Control": "no-store"})
