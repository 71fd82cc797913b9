"""``stockflow tail TOPIC``: print a topic's records as they come.

No consumer group: the partitions are assigned directly, so tailing commits
no offsets and never joins (or rebalances) a group that real consumers use.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from ..errors import StockflowError
from ..streams.codec import payload_text
from ..streams.topics import SPECS, Topics


def resolve(name: str, prefix: str) -> str:
    """A contract name (``allocations``, ``order_status``), a topic suffix
    (``orders.status``, ``inventory.movements``) under the configured prefix,
    or else a full topic name as given."""
    if name in SPECS:
        return Topics(prefix).name(name)
    for spec in SPECS.values():
        if name == spec.suffix:
            return f"{prefix}.{spec.suffix}"
    return name


def record_dict(rec) -> dict[str, Any]:
    """One record as plain data: the value parsed when it is JSON, else its
    text (``base64:`` when it is not UTF-8), so nothing breaks the tail."""
    value: Any = None
    if rec.value is not None:
        try:
            value = orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            value = payload_text(rec.value)
    key = None if rec.key is None else payload_text(rec.key)
    ts = None
    if rec.timestamp is not None and rec.timestamp >= 0:
        ts = datetime.fromtimestamp(rec.timestamp / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return {"key": key, "partition": rec.partition, "offset": rec.offset, "timestamp": ts, "value": value}


class Printer:
    def __init__(self, raw: bool) -> None:
        self.raw = raw
        self.count = 0
        if not raw:
            from rich.console import Console

            self.console = Console(highlight=False, soft_wrap=True)

    def __call__(self, d: dict) -> None:
        self.count += 1
        if self.raw:
            sys.stdout.write(orjson.dumps(d).decode() + "\n")
            sys.stdout.flush()  # a pipe (jq, grep) sees each record at once
            return
        from rich.text import Text

        head = Text()
        # Text, not markup: a key like "[red]" is data, not a style.
        head.append(str(d["key"]), style="bold cyan")
        head.append(f"  {d['partition']}@{d['offset']}", style="magenta")
        head.append(f"  {d['timestamp'] or '-'}", style="dim")
        self.console.print(head)
        v = d["value"]
        if isinstance(v, (dict, list)):
            self.console.print_json(data=v)
        else:
            self.console.print(Text(str(v)))


def _consumer(settings):
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            client_id="stockflow-tail",
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,  # tailing a typo must not create a topic
            **settings.kafka_security(),
        )
    except KafkaError as exc:
        raise StockflowError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None


def _hint(consumer, topic: str) -> str:
    prefix = topic.rsplit(".", 1)[0] + "." if "." in topic else ""
    names = sorted(t for t in consumer.topics() if not t.startswith("__"))
    # On a shared cluster the full list is noise: the same prefix first.
    near = [t for t in names if prefix and t.startswith(prefix)] or names
    if not near:
        return "it has no topics yet"
    more = f", ... {len(near) - 20} more" if len(near) > 20 else ""
    return "topics: " + ", ".join(near[:20]) + more


def tail(consumer, topic: str, emit, from_beginning: bool = False, max_records: int | None = None,
         idle_timeout: float | None = None) -> int:
    """Print records until ``max_records`` or ``idle_timeout`` seconds
    without one (either may be None: follow until Ctrl-C); the count."""
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise StockflowError(f"no topic {topic!r} on this cluster ({_hint(consumer, topic)})")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    count = 0
    last = time.monotonic()
    while max_records is None or count < max_records:
        if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
            break
        want = 500 if max_records is None else min(500, max_records - count)
        batch = consumer.poll(timeout_ms=200, max_records=want)
        records = [r for rs in batch.values() for r in rs]
        if not records:
            continue
        last = time.monotonic()
        # Interleave partitions by time, as they happened, not partition by partition.
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        for r in records:
            emit(record_dict(r))
            count += 1
            if max_records is not None and count >= max_records:
                break
    return count


def main(args) -> int:
    from ..cli import _settings

    if args.max is not None and args.max <= 0:
        raise StockflowError("--max must be a positive number of records")
    if args.timeout is not None and args.timeout <= 0:
        raise StockflowError("--timeout must be a positive number of seconds")
    settings = _settings()
    topic = resolve(args.topic, settings.topic_prefix)
    consumer = _consumer(settings)
    printer = Printer(args.raw)
    try:
        tail(consumer, topic, printer, args.from_beginning, args.max, args.timeout)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a follow ends: not an error
    except BrokenPipeError:
        # `stockflow tail ... | head`: the reader left; stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        consumer.close()
    print(f"{printer.count} record{'s' if printer.count != 1 else ''} from {topic}", file=sys.stderr)
    return 0
