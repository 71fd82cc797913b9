"""``stockflow demo``: the main job on the embedded default (DESIGN.md section 8).

Starts the local broker unless ``STOCKFLOW_KAFKA_BOOTSTRAP`` is set, starts
workers, loads the sample network and catalogue, replays a compressed retail
day (connectors/simulate.py: the generated input, plus the stores, WMS,
carriers and customers reacting to stockflow's fulfilment requests) with live
progress, and prints a summary. Every run uses a fresh topic prefix so runs
never mix; Ctrl-C stops everything the demo started.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from collections import Counter
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..errors import StockflowError
from ..metrics import LATENCY_BUCKETS
from .local_workers import LocalWorker, free_port, histogram_quantile, http_get, parse_metric
from .simulate import Traffic, build
from .simulator import RetailDay
from ..streams.topics import Topics

console = Console()


class DemoError(StockflowError):
    pass


def _bootstrap(stack: ExitStack, data_dir: Path) -> tuple[str, dict]:
    """The bootstrap address and the Kafka security settings of our clients."""
    given = os.environ.get("STOCKFLOW_KAFKA_BOOTSTRAP")
    if given:
        from ..settings import load

        console.print(f"[bold]Kafka[/]: using {given} (STOCKFLOW_KAFKA_BOOTSTRAP)")
        # the workers inherit the environment; our own clients must match it
        return given, load().kafka_security()
    from ..kafka_local import broker

    kafka_dir = data_dir / "kafka"
    running = broker.status(kafka_dir)
    if running:
        console.print(f"[bold]Kafka[/]: already running at {running.bootstrap}")
        return running.bootstrap, {}
    console.print("[bold]Kafka[/]: starting the local Apache Kafka broker (first run downloads the jars from Maven Central)...")
    t0 = time.monotonic()
    info = broker.start(port=free_port(9092), data_dir=kafka_dir)
    stack.callback(broker.stop, kafka_dir)
    console.print(f"[bold]Kafka[/]: {info.bootstrap} ready in {time.monotonic() - t0:.1f}s (log {info.log_path})")
    return info.bootstrap, {}


class Progress:
    """Figures read from the workers' /metrics."""

    def __init__(self, workers: list[LocalWorker], input_topics: list[str]) -> None:
        self.workers = workers
        self.input_topics = input_topics
        self.text = ""

    def refresh(self) -> None:
        texts = []
        for w in self.workers:
            try:
                texts.append(w.metrics_text())
            except (OSError, RuntimeError):
                pass
        self.text = "\n".join(texts)

    def m(self, name: str, labels: dict | None = None) -> float:
        return parse_metric(self.text, name, labels)

    def processed(self) -> int:
        """Input records processed (the internal reservation traffic aside)."""
        return int(sum(self.m("stockflow_events_processed_total", {"topic": t}) for t in self.input_topics))

    def p99_ms(self) -> float | None:
        # order create -> allocation decision; movements' latency includes
        # the initial stock load's backlog, which says little
        q = histogram_quantile(self.text, "stockflow_processing_latency_seconds", 0.99, "orders.commands")
        return None if q is None else q * 1000


STATUSES = ("created", "allocated", "partial", "backordered", "released", "shipped", "delivered", "returned",
            "cancelled", "rejected")


def _table(started: float, prog: Progress, traffic: Traffic, phase: str) -> Table:
    elapsed = max(1e-6, time.monotonic() - started)
    processed = prog.processed()
    flow = Table(title="stream", show_header=False)
    flow.add_column("what")
    flow.add_column("value", justify="right")
    flow.add_row("events sent", f"{traffic.sent:,}")
    flow.add_row("events processed", f"{processed:,}")
    flow.add_row("processed / s", f"{processed / elapsed:,.0f}")
    flow.add_row("availability events", f"{int(prog.m('stockflow_availability_events_total')):,}")
    flow.add_row("orders received", f"{int(prog.m('stockflow_orders_received_total')):,}")
    flow.add_row("[bold]decisions[/]", f"{int(prog.m('stockflow_allocations_total')):,}")
    for status in ("allocated", "partial", "backordered", "rejected"):
        flow.add_row(f"  {status}", f"{int(prog.m('stockflow_allocations_total', {'status': status})):,}")
    flow.add_row("split shipments", f"{int(prog.m('stockflow_split_shipments_total')):,}")
    flow.add_row("backordered lines", f"{int(prog.m('stockflow_backorders_total')):,}")
    flow.add_row("dead letters", f"{int(prog.m('stockflow_dead_letters_total')):,}")
    # a cancel crossing a shipment on the wire: expected, counted, not lost
    flow.add_row("  races", f"{int(prog.m('stockflow_dead_letters_total', {'reason': 'invalid_transition'})):,}")
    flow.add_row("duplicates skipped", f"{int(prog.m('stockflow_duplicates_skipped_total')):,}")
    flow.add_row("p99 order->decision", _p99_text(prog.p99_ms()))
    oversold = int(prog.m("stockflow_oversell_violations_total"))
    flow.add_row("oversold", f"[bold green]{oversold}[/]" if oversold == 0 else f"[bold red]{oversold}[/]")

    orders = Table(title="orders and fulfilment", show_header=False)
    orders.add_column("what")
    orders.add_column("value", justify="right")
    counts = traffic.status_counts()
    orders.add_row("[bold]orders by status[/]", f"{sum(counts.values()):,}")
    for status in STATUSES:
        orders.add_row(f"  {status}", f"{counts.get(status, 0):,}")
    f = traffic.figures()
    orders.add_row("[bold]fulfilment updates[/]", f"{f['fulfilment_updates']:,}")
    orders.add_row("  shipped / picked up", f"{f['shipped']:,}")
    orders.add_row("  shorts", f"{f['shorts']:,}")
    orders.add_row("  rejected by node", f"{f['rejected_by_nodes']:,}")
    orders.add_row("customer cancels", f"{f['cancels']:,}")
    orders.add_row("returns asked / in", f"{f['return_requests']:,} / {f['returns_received']:,}")

    grid = Table.grid(padding=(0, 2))
    grid.title = f"stockflow demo: {phase}"
    grid.add_row(flow, orders)
    return grid


def _stop_on_sigterm(signum, frame) -> None:
    # `kill` gets the same clean stop as Ctrl-C; a second SIGTERM kills at once
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt


def main(args) -> int:
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    # the day is long enough for orders to ship, be delivered and returned
    duration = args.duration if args.duration is not None else 120.0
    seed = args.seed
    n_workers = max(1, args.workers)
    prefix = f"demo{datetime.now():%Y%m%d%H%M%S}"
    data_dir = Path(os.environ.get("STOCKFLOW_DATA_DIR", ".stockflow"))
    run_dir = data_dir / "demo" / prefix

    with ExitStack() as stack:
        bootstrap, security = _bootstrap(stack, data_dir)
        env = {
            "STOCKFLOW_KAFKA_BOOTSTRAP": bootstrap,
            "STOCKFLOW_TOPIC_PREFIX": prefix,
            "STOCKFLOW_APP_ID": prefix,
            "STOCKFLOW_DATA_DIR": str(run_dir),
        }
        workers = []
        port = 6066
        for i in range(n_workers):
            port = free_port(port)
            workers.append(LocalWorker.create(env, port, run_dir / f"worker-{i + 1}.log"))
            port += 1
        stack.callback(lambda: [w.stop(signal.SIGTERM, 30) for w in workers])
        console.print(f"[bold]Workers[/]: starting {n_workers} (topics {prefix}.*, logs in {run_dir})")
        for w in workers:
            w.start(wait_ready=False)
        for w in workers:
            w.wait_ready(180)
        console.print("[bold]Workers[/]: ready at " + ", ".join(w.url for w in workers))

        day, actor = build(None, seed=seed, n_skus=args.skus)
        traffic = Traffic(bootstrap, prefix, day, actor, security)
        stack.callback(traffic.close)

        topics = Topics(prefix)
        prog = Progress(workers, [topics.nodes, topics.movements, topics.order_commands, topics.fulfillment_updates])
        started = time.monotonic()
        with Live(_table(started, prog, traffic, "loading stock"), console=console, refresh_per_second=4) as live:
            def show(phase: str) -> Callable[..., None]:
                def tick(*_: object) -> None:
                    prog.refresh()
                    live.update(_table(started, prog, traffic, phase))
                return tick

            traffic.publish_setup(on_progress=show("loading stock"))
            # the day starts once the snapshot is in (bounded wait)
            load_end = time.monotonic() + 180
            while time.monotonic() < load_end and prog.processed() < traffic.sent:
                time.sleep(0.5)
                show("loading stock")()
            traffic.run_day(duration, args.rate, on_tick=show("retail day"))
            # stores and carriers finish what was released, the workers drain (bounded)
            traffic.drain(120, settled=lambda: prog.processed() >= traffic.sent, on_tick=show("draining"))
            # the last status events of what was just processed
            traffic.pause(1.0)
            elapsed = time.monotonic() - started
            show("done")()

        _print_atp(workers[0], day)
        f = traffic.figures()
        p99 = prog.p99_ms()
        summary = {
            "events": prog.processed(),
            "events_per_s": round(prog.processed() / elapsed, 1),
            "orders": int(prog.m("stockflow_orders_received_total")),
            "allocated": int(prog.m("stockflow_allocations_total", {"status": "allocated"})),
            "split_rate": _split_rate(prog),
            "backorders": int(prog.m("stockflow_backorders_total")),
            "dead_letters": int(prog.m("stockflow_dead_letters_total")),
            "oversold": int(prog.m("stockflow_oversell_violations_total")),
            # JSON has no infinity: beyond the largest bucket we only know a lower bound
            "p99_ms": p99 if p99 is None or math.isfinite(p99) else None,
            "p99_ms_above": LATENCY_BUCKETS[-1] * 1000 if p99 is not None and not math.isfinite(p99) else None,
            "orders_by_status": dict(traffic.status_counts().most_common()),
            "fulfilment_updates": f["fulfilment_updates"],
            "shipped": f["shipped"],
            "shorts": f["shorts"],
            "rejected_by_nodes": f["rejected_by_nodes"],
            "cancels": f["cancels"],
            "returns": f["returns_received"],
            "cancels_crossing_shipments": f["cancels_too_late_for_wms"],
            "dead_letters_by_reason": _dead_letters_by_reason(prog),
        }
        console.print("[bold]Summary[/]: " + ", ".join(f"{k}: {v}" for k, v in summary.items()))
        if args.json_summary:
            Path(args.json_summary).write_text(json.dumps(summary, indent=2) + "\n")
        if summary["oversold"] != 0:
            return 1
    return 0


def _dead_letters_by_reason(prog: Progress) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for line in prog.text.splitlines():
        if line.startswith("stockflow_dead_letters_total{") and 'reason="' in line:
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            reasons[reason] += int(float(line.rpartition(" ")[2]))
    return dict(reasons.most_common())


def _p99_text(p99: float | None) -> str:
    if p99 is None:
        return "n/a"
    if not math.isfinite(p99):
        return f"> {LATENCY_BUCKETS[-1] * 1000:,.0f} ms"
    return f"<= {p99:,.0f} ms"


def _split_rate(prog: Progress) -> float:
    allocs = prog.m("stockflow_allocations_total")
    return round(prog.m("stockflow_split_shipments_total") / allocs, 4) if allocs else 0.0


def _print_atp(worker: LocalWorker, day: RetailDay) -> None:
    t = Table(title="ATP of the best sellers (GET /atp/{sku})")
    for col in ("sku", "network ATP", "nodes stocked", "top node", "expected supply"):
        t.add_column(col)
    for sku in day.skus[:5]:
        status, body = http_get(f"{worker.url}/atp/{sku}")
        if status != 200:
            t.add_row(sku, f"HTTP {status}", "", "", "")
            continue
        nodes = [n for n in body["nodes"] if n["on_hand"] > 0]
        top = max(body["nodes"], key=lambda n: n["atp"], default=None)
        t.add_row(
            sku,
            str(body["network_atp"]),
            str(len(nodes)),
            f"{top['node_id']} ({top['atp']})" if top else "-",
            str(sum(e["qty"] for e in body["expected"])),
        )
    console.print(t)
