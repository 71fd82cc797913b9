"""The Quix Streams baseline of ``stockflow bench`` (``quix_eps``).

The same ATP aggregation written with Quix Streams: a StreamingDataFrame
over the movements topic (orjson decode, Quix's ``json`` deserializer), a
stateful step that adds each movement's quantity to the per-key state
(RocksDB, changelog on; the record key is the SKU, the state key the node,
so the state holds one figure per SKU and node).

Run as ``python -m stockflow.bench_quix --bootstrap B --topic T --group G
--state-dir D --expect N --result F``; when N events have been aggregated it
writes the result file (``bench_clock.py``) and stops the application.
"""
from __future__ import annotations

import argparse
import sys

from .bench_clock import Clock


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stockflow.bench_quix")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0, help="the clock starts at this event (untimed warm-up)")
    p.add_argument("--result", required=True)
    args = p.parse_args(argv)

    from quixstreams import Application

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        commit_interval=1.0,
    )
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="json")
    sdf = app.dataframe(topic)
    clock = Clock(args.expect, args.warmup, args.result)

    def aggregate(value: dict, state) -> None:
        node = value["node_id"]
        state.set(node, state.get(node, 0) + value["qty"])
        if clock.tick():
            app.stop()

    sdf = sdf.update(aggregate, stateful=True)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
