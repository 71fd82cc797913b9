"""``stockflow import-stock FILE.csv`` and ``stockflow import-nodes FILE.csv``.

A stock file is a full inventory snapshot, ``sku,node_id,on_hand``: one
``count`` movement per row, sent as envelopes (a SKU's rows, up to 1,000 to
a record: streams/events.py), which a worker takes several times faster
than a record per row. Event ids come from the file's content and the rows
(``import-<sha256 of the file, 16 hex>-<line>``: of the row, or of an
envelope's first row), so importing the same file twice (an operator's
retry, a cron job run again) changes stock once: the worker swallows the
repeats by event_id.

A nodes file is the network, one Node event per row on the compacted nodes
topic (a node is an upsert by node_id: importing it again is harmless).

Row checking is pure (:func:`stock_rows`, :func:`node_rows`) so it is
unit-tested without a broker. Good rows are sent even when others are bad;
the report names every bad row's line. Exit codes: 0 all sent, 1 some rows
rejected or not sent, 2 the file cannot be read at all (StockflowError).
"""
from __future__ import annotations

import csv
import hashlib
import io
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import orjson
from pydantic import BaseModel, ValidationError

from ..errors import StockflowError
from ..streams.codec import encode, encode_key, field_errors_text
from ..streams.events import (MAX_BATCH_MOVEMENTS, BatchedMovement, InventoryMovement, InventoryMovementBatch,
                              Node)

STOCK_COLUMNS = ("sku", "node_id", "on_hand")
NODE_REQUIRED = ("node_id", "kind", "lat", "lon")
NODE_COLUMNS = NODE_REQUIRED + (
    "services", "daily_capacity", "safety_stock", "cost_per_order", "cost_per_km", "active",
)
REPORT_LIMIT = 20
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


class ImportFileError(StockflowError):
    """The file as a whole cannot be imported (missing, unreadable, no header)."""


@dataclass
class Parsed:
    """What a file turned into: events to send and rows refused, by line."""

    rows: int = 0
    good: list[tuple[int, str, BaseModel]] = field(default_factory=list)  # (line, key, event)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def records(self) -> list[tuple[tuple[int, ...], str, BaseModel]]:
        """What to send: (the rows' lines, key, event), a record per row."""
        return [((line,), key, event) for line, key, event in self.good]


@dataclass
class ParsedStock(Parsed):
    digest: str = ""

    def records(self) -> list[tuple[tuple[int, ...], str, BaseModel]]:
        """A SKU's counts as envelopes of up to MAX_BATCH_MOVEMENTS, named
        after their first row. A snapshot gives each SKU-node one count, so
        gathering a SKU's rows from all over the file changes nothing."""
        by_sku: dict[str, list[tuple[int, InventoryMovement]]] = {}
        for line, key, event in self.good:
            by_sku.setdefault(key, []).append((line, event))
        out = []
        for sku, rows in by_sku.items():
            for i in range(0, len(rows), MAX_BATCH_MOVEMENTS):
                chunk = rows[i:i + MAX_BATCH_MOVEMENTS]
                first = chunk[0][1]
                envelope = InventoryMovementBatch(
                    event_id=f"import-{self.digest}-{chunk[0][0]}", occurred_at=first.occurred_at, sku=sku,
                    movements=tuple(BatchedMovement(node_id=m.node_id, type=m.type, qty=m.qty, reason=m.reason)
                                    for _, m in chunk))
                out.append((tuple(line for line, _ in chunk), sku, envelope))
        return out


@dataclass
class Report:
    rows: int
    sent: int
    rejected: list[tuple[int, str]]
    unconfirmed: int = 0  # handed to the producer, no answer before the flush timeout
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if not self.rejected and not self.unconfirmed and self.sent == self.rows else 1


# ----------------------------------------------------------------- reading
def read_file(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _rows(data: bytes, name: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; header problems raise."""
    try:
        # utf-8-sig: spreadsheets put a BOM in front of the header.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = None
    for header in reader:
        if any(c.strip() for c in header):
            break
    else:
        header = None
    if not header:
        raise ImportFileError(f"{name}: empty file; the first line must be the header {','.join(required)}")
    cols = [c.strip().lower() for c in header]
    missing = [c for c in required if c not in cols]
    if missing:
        raise ImportFileError(
            f"{name}: the header must name {','.join(required)}; missing {','.join(missing)} "
            f"(got {','.join(cols)[:200]})"
        )
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue  # blank lines are layout, not rows
        line = reader.line_num
        if len(cells) > len(cols):
            yield line, {"__error__": f"{len(cells)} cells but the header has {len(cols)}"}
            continue
        yield line, {c: (cells[i].strip() if i < len(cells) else "") for i, c in enumerate(cols)}


def _int(value: str, what: str, minimum: int | None = None) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, got {value[:40]!r}") from None
    if minimum is not None and n < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {n}")
    return n


def _float(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value[:40]!r}") from None


def _model_error(exc: ValidationError) -> str:
    return field_errors_text(exc.errors(include_url=False, include_input=False))


def stock_rows(data: bytes, name: str = "file", now: datetime | None = None) -> Parsed:
    """A snapshot file as count movements (one per SKU and node)."""
    digest = file_digest(data)
    occurred_at = (now or datetime.now(timezone.utc)).isoformat()
    out = ParsedStock(digest=digest)
    first_line: dict[tuple[str, str], int] = {}
    for line, row in _rows(data, name, STOCK_COLUMNS):
        out.rows += 1
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            sku, node_id = row["sku"], row["node_id"]
            if not sku:
                raise ValueError("sku is empty")
            if not node_id:
                raise ValueError("node_id is empty")
            if not row["on_hand"]:
                raise ValueError("on_hand is empty")
            on_hand = _int(row["on_hand"], "on_hand", minimum=0)
            # A snapshot names each SKU at each node once; two figures for
            # one place are a broken export, and picking one would be a guess.
            seen = first_line.get((sku, node_id))
            if seen is not None:
                raise ValueError(f"{sku} at {node_id} already given on line {seen}")
            event = InventoryMovement.model_validate_json(orjson.dumps({
                "event_id": f"import-{digest}-{line}",
                "occurred_at": occurred_at,
                "sku": sku,
                "node_id": node_id,
                "type": "count",
                "qty": on_hand,
                "reason": f"snapshot import {digest}",
            }), strict=True)
        except ValueError as exc:
            # ValidationError is a ValueError: one clause for both.
            reason = _model_error(exc) if isinstance(exc, ValidationError) else str(exc)
            out.rejected.append((line, reason))
            continue
        first_line[(sku, node_id)] = line
        out.good.append((line, event.sku, event))
    return out


def _services(value: str) -> list[str]:
    # "ship|pickup" or "ship pickup": a comma would need quoting in CSV.
    return [s for s in value.replace("|", " ").split() if s]


def _bool(value: str, what: str) -> bool:
    v = value.lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(f"{what} must be true or false, got {value[:40]!r}")


def node_rows(data: bytes, name: str = "file") -> Parsed:
    """A network file as Node events; empty optional cells take the
    contract's defaults (no daily limit, no safety stock, active)."""
    out = Parsed()
    first_line: dict[str, int] = {}
    for line, row in _rows(data, name, NODE_REQUIRED):
        out.rows += 1
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            for col in NODE_REQUIRED:
                if not row[col]:
                    raise ValueError(f"{col} is empty")
            node: dict = {
                "node_id": row["node_id"],
                "kind": row["kind"].lower(),
                "lat": _float(row["lat"], "lat"),
                "lon": _float(row["lon"], "lon"),
            }
            if row.get("services"):
                node["services"] = [s.lower() for s in _services(row["services"])]
            if row.get("daily_capacity"):
                node["daily_capacity"] = _int(row["daily_capacity"], "daily_capacity", minimum=0)
            if row.get("safety_stock"):
                node["safety_stock"] = _int(row["safety_stock"], "safety_stock", minimum=0)
            for col in ("cost_per_order", "cost_per_km"):
                if row.get(col):
                    node[col] = _float(row[col], col)
            if row.get("active"):
                node["active"] = _bool(row["active"], "active")
            seen = first_line.get(node["node_id"])
            if seen is not None:
                raise ValueError(f"node {node['node_id']} already given on line {seen}")
            event = Node.model_validate_json(orjson.dumps(node), strict=True)
        except ValueError as exc:
            reason = _model_error(exc) if isinstance(exc, ValidationError) else str(exc)
            out.rejected.append((line, reason))
            continue
        first_line[event.node_id] = line
        out.good.append((line, event.node_id, event))
    return out


# ----------------------------------------------------------------- sending
def _producer(settings):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            client_id="stockflow-import",
            acks="all",
            linger_ms=20,
            # One request in flight keeps a SKU's rows in file order through
            # retries (a later count must not land before an earlier one).
            max_in_flight_requests_per_connection=1,
            retries=5,
            **settings.kafka_security(),
        )
    except KafkaError as exc:
        raise StockflowError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None


def send(parsed: Parsed, topic: str, settings, console=None) -> Report:
    """Send the good rows with a progress bar on stderr; failures to send
    join the rejected rows (the file can be imported again: same ids)."""
    from kafka.errors import KafkaError
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = console or Console(stderr=True)
    rejected = list(parsed.rejected)
    sent = 0
    failed: list[tuple[int, str]] = []
    producer = _producer(settings)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=False) as progress:
            task = progress.add_task(f"→ {topic}", total=len(parsed.good))

            def ok(_meta, lines=()):
                nonlocal sent
                sent += len(lines)
                progress.advance(task, len(lines))

            def err(exc, lines=()):
                failed.extend((line, f"not sent: {type(exc).__name__}: {exc}"[:300]) for line in lines)
                progress.advance(task, len(lines))

            for lines, key, event in parsed.records():
                try:
                    fut = producer.send(topic, key=encode_key(key), value=encode(event))
                except KafkaError as exc:  # no metadata for the topic in time, buffer full
                    err(exc, lines=lines)
                    continue
                fut.add_callback(ok, lines=lines)
                fut.add_errback(err, lines=lines)
            producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    rejected.extend(failed)
    rejected.sort()
    unconfirmed = len(parsed.good) - sent - len(failed)
    return Report(rows=parsed.rows, sent=sent, rejected=rejected, unconfirmed=unconfirmed)


def print_report(report: Report, name: str, out=None) -> None:
    out = out or sys.stdout
    print(f"{name}: {report.rows} rows read, {report.sent} sent, {len(report.rejected)} rejected"
          f" ({report.elapsed_s:.1f}s)", file=out)
    if report.unconfirmed:
        print(f"  {report.unconfirmed} rows not confirmed by Kafka in time: import the file again"
              " (same event ids, nothing counts twice)", file=out)
    for line, reason in report.rejected[:REPORT_LIMIT]:
        print(f"  line {line}: {reason}", file=out)
    if len(report.rejected) > REPORT_LIMIT:
        print(f"  ... and {len(report.rejected) - REPORT_LIMIT} more", file=out)


def _run(args, parse, logical: str) -> int:
    from ..cli import _settings
    from ..streams.admin import ensure_topics
    from ..streams.topics import Topics

    data = read_file(args.file)
    name = str(args.file)
    parsed = parse(data, name)
    settings = _settings()
    # A topic the broker auto-creates on first send gets the broker's
    # partition count, not stockflow's, and every later key would land on
    # the wrong partition: create the contract's topics first.
    ensure_topics(settings)
    started = time.monotonic()
    report = send(parsed, Topics(settings.topic_prefix).name(logical), settings)
    report.elapsed_s = time.monotonic() - started
    print_report(report, name)
    return report.exit_code


def main_stock(args) -> int:
    return _run(args, stock_rows, "movements")


def main_nodes(args) -> int:
    return _run(args, node_rows, "nodes")
