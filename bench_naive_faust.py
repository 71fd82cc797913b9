"""The naive Faust baseline of ``stockflow bench`` (``naive_faust_eps``).

A minimal Faust app, the way Faust's own examples are written: one agent
taking the movements one event at a time (``async for value in stream``),
decoding the JSON with orjson and adding the quantity to a RocksDB table
keyed ``sku|node`` (changelog on). No micro-batches, no validation, no
outputs: the per-event cost of the framework itself.

With ``--floor`` it measures instead the floor of the worker's own Faust
path (``faust_floor_eps``, an extra figure): Faust set up as the stockflow
worker sets it up (its replacement of Faust's delivery loop,
streams/delivery.py, handing the records to an inbox, streams/inbox.py;
micro-batches of the worker's size and wait; Faust events over the record
bytes as they are), and nothing done with the events: no decode, no table,
no output. No stockflow worker can ingest faster than that.

With ``--floor --outputs OUT`` the same floor also writes, for each event,
the four records the worker writes for a movement (``output_floor_eps``,
an extra figure): its seen-events and SKU-state changelog records, its
availability event and its ATP-view record, to the topics ``OUT-seen``,
``OUT-stock``, ``OUT-availability`` and ``OUT-atp``, with values of the
worker's sizes built once, sent a partition at a time as the worker sends
them (streams/produce.py) and acknowledged before the next batch, as the
worker's are. No state, no decode, no validation: what the contract's
records cost on this path, before any of stockflow's own work.

Run as ``python -m stockflow.bench_naive_faust --bootstrap B --topic T
--app-id A --data-dir D --expect N --result F [--floor]``; when the agent
has taken N events it writes the result file (``bench_clock.py``), then
keeps running until SIGTERM.
"""
from __future__ import annotations

import argparse
import sys

from .bench_clock import Clock


def build(args):
    import faust
    import orjson

    app = faust.App(
        args.app_id,
        broker=[f"kafka://{hp.strip()}" for hp in args.bootstrap.split(",")],
        store="rocksdb://",
        datadir=args.data_dir,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        web_enabled=False,
    )
    clock = Clock(args.expect, args.warmup, args.result)
    if args.floor:
        return _floor(app, args, clock)
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    schema = faust.Schema(key_type=str, value_type=int, key_serializer="json", value_serializer="json")
    table = app.Table("atp", default=int, partitions=args.partitions, schema=schema)

    @app.agent(topic)
    async def aggregate(stream):
        async for value in stream:
            m = orjson.loads(value)
            key = f"{m['sku']}|{m['node_id']}"
            table[key] += m["qty"]
            clock.tick()

    return app


def _floor(app, args, clock: Clock):
    from .agents.batches import raw_topics
    from .settings import load
    from .streams import delivery
    from .streams.inbox import take_batches

    delivery.install()
    settings = load()  # the worker's, environment included
    topic = raw_topics(app, args.topic)  # the worker's agents' declaration, inbox included

    write = _output_writer(app, args.outputs) if args.outputs else None

    @app.agent(topic, concurrency=1)
    async def floor(stream):
        async for events in take_batches(app, stream.channel, settings.batch_size, settings.batch_within_s):
            if write is not None:
                await write(events)
            for _ in events:
                clock.tick()

    return app


OUTPUT_KINDS = ("seen", "stock", "availability", "atp")


def output_topics(prefix: str) -> list[str]:
    return [f"{prefix}-{kind}" for kind in OUTPUT_KINDS]


def sample_values() -> tuple[bytes, bytes, bytes, bytes]:
    """One value per output, as the worker encodes them for a receipt at
    the bench's default sizes (30,000 movements over 5,000 SKUs: about six
    nodes a SKU holds)."""
    from .domain.atp import NodeStock, SkuState
    from .domain.idempotency import position
    from .streams.codec import encode_availability
    from .tables.writes import encode_value

    nodes = {f"N{i:02d}": NodeStock(20 + i, 0) for i in range(6)}
    state = SkuState(sku="B01234", stock=nodes, offsets={"bench20261125000000-inventory.movements.v1:3": 12345})
    seen = encode_value(position("bench20261125000000-inventory.movements.v1", 3, 12345))
    row = {"sku": "B01234", "node_id": "N03", "on_hand": 23, "reserved": 0, "safety_stock": 2, "atp": 21,
           "network_atp": 135}
    return seen, encode_value(state.to_dict()), encode_availability(row, "2026-11-25T10:00:00.000000Z"), b"21"


def _output_writer(app, prefix: str):
    """``write(events)``: the four records per event, acknowledged before it returns."""
    import asyncio

    from .streams.produce import send_partition

    seen_t, stock_t, avail_t, atp_t = output_topics(prefix)
    seen_v, stock_v, avail_v, atp_v = sample_values()

    async def write(events) -> None:
        producer = app.producer._ensure_producer()
        out: dict[tuple[str, int], list] = {}
        for event in events:
            msg = event.message
            key, p = msg.key, msg.partition
            # Keys as distinct as the worker's: a seen entry per event, a state and an event per SKU.
            out.setdefault((seen_t, p), []).append((key + b"|" + str(msg.offset).encode(), seen_v))
            out.setdefault((stock_t, p), []).append((key, stock_v))
            out.setdefault((avail_t, p), []).append((key, avail_v))
            out.setdefault((atp_t, p), []).append((key + b"/N03", atp_v))
        futures = []
        for (name, p), records in out.items():
            futures += [f for f, _ in await send_partition(producer, name, p, records)]
        await asyncio.gather(*futures)

    return write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stockflow.bench_naive_faust")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--app-id", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0, help="the clock starts at this event (untimed warm-up)")
    p.add_argument("--result", required=True)
    p.add_argument("--floor", action="store_true", help="the worker's Faust path with nothing to do (faust_floor_eps)")
    p.add_argument("--outputs", metavar="PREFIX",
                   help="with --floor: also write the worker's four records per event to PREFIX-* (output_floor_eps)")
    args = p.parse_args(argv)

    from faust.worker import Worker

    app = build(args)
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
