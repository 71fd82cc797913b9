"""The ``stockflow`` command (DESIGN.md section 1)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from .errors import StockflowError


def _settings(**overrides):
    from .settings import load

    try:
        return load(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "STOCKFLOW_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise StockflowError(f"bad setting {field}: {first['msg']}") from None


def _kafka_dir(data_dir: str | None) -> Path:
    if data_dir:
        return Path(data_dir)
    base = os.environ.get("STOCKFLOW_DATA_DIR", ".stockflow")
    return Path(base) / "kafka"


def cmd_kafka(args) -> int:
    from .kafka_local import broker

    data_dir = _kafka_dir(args.data_dir)
    if args.action == "start":
        info = broker.start(port=args.port, data_dir=data_dir)
        print(info.bootstrap)
        return 0
    if args.action == "stop":
        stopped = broker.stop(data_dir)
        print("stopped" if stopped else "not running")
        return 0
    info = broker.status(data_dir)
    if info is None:
        print(f"not running (data dir {data_dir})")
        return 1
    print(f"running at {info.bootstrap} (pid {info.pid}, data dir {info.data_dir})")
    return 0


def cmd_worker(args) -> int:
    settings = _settings(web_port=args.web_port, data_dir=args.data_dir)
    return run_worker(settings)


def run_worker(settings) -> int:
    import logging

    from faust.worker import Worker

    from . import collector
    from .app import create_app
    from .streams.admin import ensure_topics

    ensure_topics(settings)
    settings.worker_dir().mkdir(parents=True, exist_ok=True)
    rt = create_app(settings)
    worker = Worker(rt.app, loglevel=settings.log_level.upper(), quiet=True)
    collector.tune(settings.gc_threshold)
    # Faust's progress spinner sets the root logger to DEBUG so that every
    # log call spins it: aiokafka then builds a debug record for each
    # produced and fetched batch (7% of a worker's CPU in the ingest profile,
    # docs/benchmarks.md). No spinner, so the level above holds.
    worker.spinner = None
    logging.getLogger("stockflow").setLevel(settings.log_level.upper())
    profile_to = os.environ.get("STOCKFLOW_PROFILE")
    if profile_to:  # developer aid: cProfile the whole worker until it stops
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            worker.execute_from_commandline()
        finally:
            prof.disable()
            prof.dump_stats(profile_to)
        return 0
    worker.execute_from_commandline()
    return 0


def cmd_demo(args) -> int:
    from .connectors import demo

    return demo.main(args)


def cmd_bench(args) -> int:
    from . import bench

    return bench.main(args)


def cmd_failover(args) -> int:
    from . import failover

    return failover.main(args)


def cmd_simulate(args) -> int:
    from .connectors import simulate

    return simulate.main(args)


def cmd_import_stock(args) -> int:
    from .connectors import csv_import

    return csv_import.main_stock(args)


def cmd_import_nodes(args) -> int:
    from .connectors import csv_import

    return csv_import.main_nodes(args)


def cmd_tail(args) -> int:
    from .connectors import tail

    return tail.main(args)


def cmd_schema(args) -> int:
    from .streams import schema

    return schema.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stockflow", description="Stream-processing order management on Kafka")
    sub = p.add_subparsers(dest="command", required=True)

    k = sub.add_parser("kafka", help="the local Apache Kafka broker (dev/CI)")
    k.add_argument("action", choices=["start", "stop", "status"])
    k.add_argument("--port", type=int, default=9092)
    k.add_argument("--data-dir", default=None, help="default: $STOCKFLOW_DATA_DIR/kafka")
    k.set_defaults(func=cmd_kafka)

    w = sub.add_parser("worker", help="run one worker until SIGTERM/SIGINT")
    w.add_argument("--web-port", type=int, default=None)
    w.add_argument("--data-dir", default=None)
    w.set_defaults(func=cmd_worker)

    d = sub.add_parser("demo", help="the main job on the embedded default")
    d.add_argument("--duration", type=float, default=None, help="seconds of simulated traffic (default 120)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--skus", type=int, default=2000)
    d.add_argument("--rate", type=float, default=250.0, help="offered events per second during the day")
    d.add_argument("--json-summary", default=None)
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("bench", help="stockflow and its baselines against the local broker (docs/benchmarks.md)")
    b.add_argument("--json", action="store_true", help="print one JSON object with the figures (progress on stderr)")
    b.add_argument("--movements", type=int, default=30_000, help="movements in the backlog every consumer reads")
    b.add_argument("--orders", type=int, default=3_000, help="orders for orders_per_s")
    b.add_argument("--skus", type=int, default=5_000)
    b.add_argument("--nodes", type=int, default=50)
    b.add_argument("--seed", type=int, default=11)
    b.add_argument("--rate", type=float, default=500.0, help="offered orders/s for order_p50_ms/order_p99_ms")
    b.add_argument("--latency-seconds", type=float, default=10.0, help="how long that load is offered")
    b.add_argument("--rss-keys", type=int, default=1_000_000, help="SKU-node keys for rss_mb and recovery_s")
    b.add_argument("--envelope", type=int, default=50,
                   help="movements per envelope record for the extra envelope ingest figure (0: skip it)")
    b.add_argument("--envelope-movements", type=int, default=150_000, help="movements sent as envelopes")
    b.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every wait bound (slow machines)")
    b.add_argument("--no-doc", dest="doc", action="store_false", help="do not rewrite docs/benchmarks.md")
    b.set_defaults(func=cmd_bench)

    f = sub.add_parser("failover", help="fail-over and changelog recovery times against the local broker")
    f.add_argument("--json", action="store_true", help="print one JSON object with the figures (progress on stderr)")
    f.add_argument("--keys", type=int, default=200_000, help="SKU-node keys the workers hold (1,000,000 takes 15+ min here)")
    f.add_argument("--nodes", type=int, default=50, help="nodes per SKU (keys / nodes SKUs)")
    f.add_argument("--samples", type=int, default=24, help="SKUs asked, spread over every partition")
    f.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every wait bound (slow machines)")
    f.set_defaults(func=cmd_failover)

    s = sub.add_parser("simulate", help="publish a seeded retail day to any Kafka (the demo's traffic generator)")
    s.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    s.add_argument("--rate", type=float, default=250.0, help="events per second offered")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--skus", type=int, default=2000)
    s.add_argument("--no-setup", action="store_true", help="skip publishing the network and the stock snapshot")
    s.add_argument("--channels", default=None, help="channel shares, e.g. web=5,app=3,store=1")
    s.add_argument("--methods", default=None, help="delivery method shares, e.g. ship=6,pickup=2,same_day=2")
    s.add_argument("--short-rate", type=float, default=None, help="share of shipments reported short")
    s.add_argument("--cancel-rate", type=float, default=None, help="share of orders cancelled")
    s.add_argument("--return-rate", type=float, default=None, help="share of delivered orders returned")
    s.set_defaults(func=cmd_simulate)

    i = sub.add_parser("import-stock", help="a full inventory snapshot (CSV sku,node_id,on_hand) as count events")
    i.add_argument("file")
    i.set_defaults(func=cmd_import_stock)

    n = sub.add_parser("import-nodes", help="the node network from a CSV file")
    n.add_argument("file")
    n.set_defaults(func=cmd_import_nodes)

    t = sub.add_parser("tail", help="pretty-print a topic (contract name like allocations, or a full topic name)")
    t.add_argument("topic")
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("--max", type=int, default=None, help="stop after this many records")
    t.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    t.add_argument("--raw", action="store_true", help="one JSON object a line, no colours")
    t.set_defaults(func=cmd_tail)

    sc = sub.add_parser("schema", help="write the AsyncAPI document and JSON Schemas of every event")
    sc.add_argument("--out", default=None, help="folder (default: docs/schema in the source tree)")
    sc.add_argument("--check", action="store_true", help="exit 1 when the files differ from the models")
    sc.set_defaults(func=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except StockflowError as exc:
        print(f"stockflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
