"""``stockflow demo``: the main job on the embedded default (DESIGN.md section 8).

Starts the local broker unless ``STOCKFLOW_KAFKA_BOOTSTRAP`` is set, starts
workers, loads the sample network and catalogue, replays a compressed retail
day with live progress, and prints a summary. Every run uses a fresh topic
prefix so runs never mix; Ctrl-C stops everything the demo started.
"""
from __future__ import annotations

import json
import os
import signal
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from kafka import KafkaProducer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..errors import StockflowError
from .local_workers import LocalWorker, free_port, histogram_quantile, http_get, parse_metric
from .network import sample_network
from .simulator import RetailDay
from ..streams.topics import Topics

console = Console()


class DemoError(StockflowError):
    pass


def _bootstrap(stack: ExitStack, data_dir: Path) -> str:
    given = os.environ.get("STOCKFLOW_KAFKA_BOOTSTRAP")
    if given:
        console.print(f"[bold]Kafka[/]: using {given} (STOCKFLOW_KAFKA_BOOTSTRAP)")
        return given
    from ..kafka_local import broker

    kafka_dir = data_dir / "kafka"
    running = broker.status(kafka_dir)
    if running:
        console.print(f"[bold]Kafka[/]: already running at {running.bootstrap}")
        return running.bootstrap
    console.print("[bold]Kafka[/]: starting the local Apache Kafka broker (first run downloads the jars from Maven Central)...")
    t0 = time.monotonic()
    info = broker.start(port=free_port(9092), data_dir=kafka_dir)
    stack.callback(broker.stop, kafka_dir)
    console.print(f"[bold]Kafka[/]: {info.bootstrap} ready in {time.monotonic() - t0:.1f}s (log {info.log_path})")
    return info.bootstrap


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


def _table(sent: int, started: float, prog: Progress, phase: str) -> Table:
    elapsed = max(1e-6, time.monotonic() - started)
    processed = prog.processed()
    t = Table(title=f"stockflow demo: {phase}", show_header=False, min_width=52)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("events sent", f"{sent:,}")
    t.add_row("events processed", f"{processed:,}")
    t.add_row("processed / s", f"{processed / elapsed:,.0f}")
    t.add_row("availability events", f"{int(prog.m('stockflow_availability_events_total')):,}")
    t.add_row("orders received", f"{int(prog.m('stockflow_orders_received_total')):,}")
    for status in ("allocated", "partial", "backordered", "rejected"):
        t.add_row(f"  decisions {status}", f"{int(prog.m('stockflow_allocations_total', {'status': status})):,}")
    t.add_row("split shipments", f"{int(prog.m('stockflow_split_shipments_total')):,}")
    t.add_row("backordered lines", f"{int(prog.m('stockflow_backorders_total')):,}")
    t.add_row("dead letters", f"{int(prog.m('stockflow_dead_letters_total')):,}")
    t.add_row("duplicates skipped", f"{int(prog.m('stockflow_duplicates_skipped_total')):,}")
    p99 = prog.p99_ms()
    t.add_row("p99 order->decision", "n/a" if p99 is None else f"<= {p99:,.0f} ms")
    t.add_row("oversold", f"{int(prog.m('stockflow_oversell_violations_total'))}")
    return t


def main(args) -> int:
    duration = args.duration if args.duration is not None else 60.0
    seed = args.seed
    n_workers = max(1, args.workers)
    prefix = f"demo{datetime.now():%Y%m%d%H%M%S}"
    data_dir = Path(os.environ.get("STOCKFLOW_DATA_DIR", ".stockflow"))
    run_dir = data_dir / "demo" / prefix

    with ExitStack() as stack:
        bootstrap = _bootstrap(stack, data_dir)
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

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024)
        stack.callback(producer.close, 5)
        day = RetailDay(sample_network(), n_skus=args.skus, seed=seed)

        def send(rec) -> None:
            logical, key, value = rec
            payload = value if isinstance(value, bytes) else json.dumps(value).encode()
            producer.send(f"{prefix}.{_suffix(logical)}", key=key.encode() if key else None, value=payload)

        topics = Topics(prefix)
        prog = Progress(workers, [topics.nodes, topics.movements, topics.order_commands])
        sent = 0
        started = time.monotonic()
        for rec in day.network():
            send(rec)
            sent += 1
        producer.flush()
        with Live(_table(sent, started, prog, "loading stock"), console=console, refresh_per_second=4) as live:
            for rec in day.initial_stock():
                send(rec)
                sent += 1
                if sent % 5000 == 0:
                    prog.refresh()
                    live.update(_table(sent, started, prog, "loading stock"))
            producer.flush()
            # the day starts once the snapshot is in (bounded wait)
            load_end = time.monotonic() + 180
            while time.monotonic() < load_end and prog.processed() < sent:
                time.sleep(0.5)
                prog.refresh()
                live.update(_table(sent, started, prog, "loading stock"))
            day_end = time.monotonic() + duration
            next_ui = 0.0
            rate = args.rate
            tick_start = time.monotonic()
            tick_sent = 0
            while time.monotonic() < day_end:
                for rec in day.next_events():
                    send(rec)
                    sent += 1
                    tick_sent += 1
                # pace to the offered rate
                ahead = tick_sent / rate - (time.monotonic() - tick_start)
                if ahead > 0:
                    time.sleep(ahead)
                if time.monotonic() >= next_ui:
                    prog.refresh()
                    live.update(_table(sent, started, prog, "retail day"))
                    next_ui = time.monotonic() + 0.5
            producer.flush()
            # let the workers drain what was sent (bounded)
            drain_end = time.monotonic() + 120
            while time.monotonic() < drain_end:
                prog.refresh()
                live.update(_table(sent, started, prog, "draining"))
                if prog.processed() >= sent:
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            prog.refresh()
            live.update(_table(sent, started, prog, "done"))

        _print_atp(workers[0], day)
        summary = {
            "events": prog.processed(),
            "events_per_s": round(prog.processed() / elapsed, 1),
            "orders": int(prog.m("stockflow_orders_received_total")),
            "allocated": int(prog.m("stockflow_allocations_total", {"status": "allocated"})),
            "split_rate": _split_rate(prog),
            "backorders": int(prog.m("stockflow_backorders_total")),
            "dead_letters": int(prog.m("stockflow_dead_letters_total")),
            "oversold": int(prog.m("stockflow_oversell_violations_total")),
            "p99_ms": prog.p99_ms(),
        }
        console.print("[bold]Summary[/]: " + ", ".join(f"{k}: {v}" for k, v in summary.items()))
        if args.json_summary:
            Path(args.json_summary).write_text(json.dumps(summary, indent=2) + "\n")
        if summary["oversold"] != 0:
            return 1
    return 0


def _suffix(logical: str) -> str:
    from ..streams.topics import SPECS

    return SPECS[logical].suffix


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
