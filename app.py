"""The Faust app and everything a worker holds, built from settings."""
from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from . import metrics
from .settings import Settings
from .streams.topics import SPECS as TOPIC_SPECS, Topics
from .tables.replica import AtpView, CapacityView, NodeView
from .tables.stock import OrderTable, SeenTable, StockTable, approx_keys

log = logging.getLogger(__name__)


def kafka_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection settings for our own aiokafka clients (security passes through)."""
    return {"bootstrap_servers": settings.kafka_bootstrap.split(","), **settings.kafka_security()}


def _faust_credentials(settings: Settings) -> Any:
    ctx = settings.kafka_ssl_context()
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.secret(settings.kafka_sasl_password),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


@dataclass
class Runtime:
    settings: Settings
    app: faust.App
    topics: Topics
    faust_topics: dict[str, Any]
    node_view: NodeView
    atp_view: AtpView
    capacity_view: CapacityView
    stock: StockTable
    orders: OrderTable
    seen: SeenTable
    emit: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def crashed_agents(self) -> list[str]:
        """Agents whose actor crashed: the worker answers but decides nothing."""
        out = []
        for name, agent in self.app.agents.items():
            if getattr(agent, "crashed", False) or any(getattr(a, "crashed", False) for a in getattr(agent, "_actors", ())):
                out.append(name)
        return out

    def is_ready(self) -> bool:
        app = self.app
        recovery = app.tables.recovery
        return (
            not self.crashed_agents()
            and self.node_view.ready.is_set()
            and self.atp_view.ready.is_set()
            and self.capacity_view.ready.is_set()
            and recovery.completed.is_set()
            and not app.rebalancing
            and not recovery.in_recovery
        )


def _widen_faust_send_buffer() -> None:
    """Faust's send buffer stalls the stream whenever more than 100 records
    wait. Agent batches no longer use it (tables/writes.py), but a table
    write outside a batch does, and Faust flushes the buffer before every
    commit anyway."""
    from faust.transport.producer import ProducerBuffer

    ProducerBuffer.max_messages = 100_000


def _make_buffer_flush_drain() -> None:
    """Faust flushes its send buffer before committing offsets, but that flush
    gives up once 0.1 s passes without a message going out (a loaded machine,
    a broker restarting): the commit then goes ahead with table changelog
    records still buffered, and a SIGKILL at that moment loses those updates
    for good (found by tests/chaos). Flush until every record put before the
    flush began has been handed to the producer. Only those: the offsets to
    commit are chosen before the flush, and waiting for an empty buffer
    while the agents keep writing could stall a commit for seconds."""
    from faust.transport.producer import ProducerBuffer

    if getattr(ProducerBuffer, "_stockflow_drains", False):
        return
    put, handover = ProducerBuffer.put, ProducerBuffer._send_pending

    def _put(self, fut) -> None:
        self._stockflow_put = getattr(self, "_stockflow_put", 0) + 1
        put(self, fut)

    async def _send_pending(self, fut) -> None:
        try:
            await handover(self, fut)
        finally:
            self._stockflow_sent = getattr(self, "_stockflow_sent", 0) + 1

    async def flush(self) -> None:
        target = getattr(self, "_stockflow_put", 0)
        while getattr(self, "_stockflow_sent", 0) < target:
            if self.state != "running" and self.size:
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            try:
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass  # still sending (broker away?): keep waiting, never commit ahead

    ProducerBuffer.put = _put
    ProducerBuffer._send_pending = _send_pending
    ProducerBuffer.flush = flush
    ProducerBuffer._stockflow_drains = True


# Topics where an offset jump is normal (compaction removes records); on
# every other input topic a jump can mean records dropped before a handler
# saw them, and committing past it would lose them.
COMPACTED_INPUTS: set[str] = set()


def _never_commit_past_dropped_records() -> None:
    """Faust treats any jump in the offsets it hands to streams as a "gap" and
    commits over it, meant for compacted topics. A jump also happens when a
    flow-control resume clears channel queues that already hold records of
    the current generation: the records are gone unacked, and the gap commit
    then skips them for good (tests/integration/test_crash.py lost 512
    records per partition at a restart this way). On append-only topics we
    leave the jump uncommitted: Faust's own check then holds the commit at
    the hole, so nothing unhandled is ever committed as done."""
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_stockflow_gaps", False):
        return
    add_gap = Consumer._add_gap

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        if tp.topic in COMPACTED_INPUTS:
            await add_gap(self, tp, offset_from, offset_to)
            return
        # Also seen when a seek rewinds the read offset while later records
        # are still queued: harmless then, since they are handled in order.
        log.warning("offsets %d..%d of %s:%d jumped over (queued before a seek, or dropped): not committed over",
                    offset_from, offset_to - 1, tp.topic, tp.partition)

    Consumer._add_gap = _add_gap
    Consumer._stockflow_gaps = True


# What the seek running in this task found: partition -> committed offset or None.
_SEEK_FOUND: contextvars.ContextVar[dict | None] = contextvars.ContextVar("stockflow_seek_found", default=None)


def _remember_each_generations_seek() -> None:
    """After a rebalance Faust seeks every assigned partition to its committed
    offset; records can reach the agents before that seek is done. Remember
    which generation's seek finished, and the committed offsets it found, so
    agents/batches.py starts each partition there (agents/inorder.py)."""
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import Consumer as DriverConsumer

    if getattr(Consumer, "_stockflow_seeks", False):
        return
    perform_seek = Consumer.perform_seek

    async def _perform_seek(self) -> None:
        generation = self.app.consumer_generation_id
        # This seek's own answer (seek_to_committed below fills it, in this
        # task), not Faust's running _committed_offset: that one keeps older
        # generations' offsets where this seek found none. The long chaos run
        # met a seek right after a broker restart that found no committed
        # offset at all; the stale map let records of a partition through
        # from wherever the fetcher stood, and one arriving after a later one
        # was skipped as applied (a movement lost: docs/reliability.md, bug 20).
        found: dict = {}
        token = _SEEK_FOUND.set(found)
        try:
            await perform_seek(self)
        finally:
            _SEEK_FOUND.reset(token)
        # A generation can seek twice (a recovery restarted): each seek
        # starts the partitions again, so it is counted. None: no committed
        # offset found for that partition (agents/inorder.py asks again).
        last = getattr(self, "_stockflow_seeked", (None, None, 0))
        if last[0] is not None and generation is not None and generation < last[0]:
            # Begun before a newer generation's seek and finished after it:
            # Faust's fetcher seeks on its own when a rebalance stops the flow
            # mid-fetch, still in the old generation. Recorded, it hid the new
            # generation's seek, and every record of the new generation waited
            # SEEK_WAIT_S for a seek that had already happened (the "stock
            # loaded" failures of tests/e2e/test_orders.py, docs/reliability.md).
            log.warning("a seek begun in generation %s finished after generation %s's: not recorded",
                        generation, last[0])
            return
        committed = {TP(tp.topic, tp.partition): (o if o is not None and o >= 0 else None) for tp, o in found.items()}
        self._stockflow_seeked = (generation, committed, last[2] + 1)

    seek_to_committed = DriverConsumer.seek_to_committed

    async def _seek_to_committed(self) -> Any:
        got = await seek_to_committed(self)
        found = _SEEK_FOUND.get(None)
        if found is not None:
            found.update(got)
        return got

    DriverConsumer.seek_to_committed = _seek_to_committed
    Consumer.perform_seek = _perform_seek
    Consumer._stockflow_seeks = True


def seeked_generation(consumer: Any) -> tuple[Any, dict, int] | None:
    """(generation, committed offsets, how many seeks so far) of the last
    finished seek, if any."""
    return getattr(consumer, "_stockflow_seeked", None)


async def seek_in_order(consumer: Any, tp: Any, offset: int) -> None:
    """Read ``tp`` again from ``offset``, the way Faust's own ``seek`` does,
    but inside the consumer's thread. Faust's aiokafka driver seeks from the
    calling thread while its fetcher runs in the consumer thread: a seek
    landing in the middle of ``fetched_records`` crashed the fetcher with a
    KeyError, and the worker with it (the long chaos run, many partitions
    asked again at once while the broker was away)."""
    thread = getattr(consumer, "_thread", None)
    if thread is None or not hasattr(thread, "call_thread"):
        await consumer.seek(tp, offset)
        return
    await thread.call_thread(thread._ensure_consumer().seek, tp, offset)
    consumer._read_offset[tp] = offset if offset else None


async def committed_or_start(consumer: Any, tps: list) -> dict:
    """Where each partition's records start for this group: tp -> (offset,
    whether it is a committed one); without a commit (a fresh group) the
    partition's first offset (auto_offset_reset is earliest). One trip to
    the consumer's thread for all of them, as seek_in_order goes there:
    one trip each cost 1.5 s at a fresh group's start."""
    from aiokafka import TopicPartition

    thread = consumer._thread
    aio = thread._ensure_consumer()
    asked = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}

    async def look_up() -> dict:
        out = {}
        for atp, tp in asked.items():
            offset = await aio.committed(atp)
            if offset is not None and offset >= 0:
                out[tp] = (offset, True)
        fresh = [atp for atp, tp in asked.items() if tp not in out]
        if fresh:
            for atp, offset in (await aio.beginning_offsets(fresh)).items():
                out[asked[atp]] = (offset, False)
        return out

    return await thread.call_thread(look_up)


def hold_back(consumer: Any, message: Any) -> None:
    """Leave a record unhandled and unacknowledged without Faust acking it
    later: the commit then stays below it until it is fetched again."""
    message.acked = True
    consumer._unacked_messages.discard(message)


def _clear_queues_only_after_a_suspend(app: faust.App) -> None:
    """Faust's recovery resumes the stream partitions, seeks, and only then
    resumes flow control, which clears every channel queue: records fetched
    in between (this generation's, not stale ones) are dropped unacked
    (found by tests/integration/test_crash.py: a restart lost 4,096 queued
    movements). Stale records only exist after a suspend (a rebalance), so
    a resume clears the queues only then; resuming a flow that is already
    running keeps what it holds."""
    fc = app.flow_control
    resume = fc.resume

    def _resume() -> None:
        if fc.is_active():
            return
        resume()

    fc.resume = _resume


def create_app(settings: Settings) -> Runtime:
    _widen_faust_send_buffer()
    _make_buffer_flush_drain()
    _never_commit_past_dropped_records()
    _remember_each_generations_seek()
    # Faust's per-record loops, fetch to channel and changelog to table,
    # replaced by ones that keep their rules without a task per record.
    from .streams import delivery
    from .tables import restore

    delivery.install()
    restore.install()
    from .agents import trace

    if trace.TRACE:
        trace.install()
    return _build(settings)


def _build(settings: Settings) -> Runtime:
    from .agents import inventory, nodes, orders
    from .agents.emit import Emitter
    from .connectors import dashboard, http_api, shopify

    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        broker_credentials=_faust_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.worker_dir()),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.table_standby_replicas,
        broker_commit_interval=settings.commit_interval_s,
        # A SIGKILLed worker's partitions move on once its session expires:
        # keep that short so fail-over takes seconds, not a minute.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_s / 4),
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_host,
        canonical_url=settings.canonical_url,
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_max_batch_size=256 * 1024,
        autodiscover=False,
        web_enabled=True,
        stream_wait_empty=True,
    )
    topics = Topics(settings.topic_prefix)
    faust_topics = {
        name: app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        for name in topics.all()
    }
    # Keys and values are bytes to Faust: tables/writes.py writes the JSON
    # itself, and so a restore puts the changelog's bytes into RocksDB
    # without Faust decoding every value first (a tenth of a restore's CPU).
    # bytes keys also serialise raw, so the router hashes the same bytes the
    # producers keyed the input topic with.
    stock_table = app.Table("stock", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    seen_table = app.Table("seen-events", default=None, key_type=bytes, value_type=bytes,
                           partitions=settings.partitions)
    orders_table = app.Table("orders", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    node_view = NodeView(topics.nodes, settings.max_payload_bytes, kafka_client_kwargs(settings))
    atp_view = AtpView(topics.atp_view, kafka_client_kwargs(settings))
    capacity_view = CapacityView(topics.fulfillment_requests, kafka_client_kwargs(settings))
    rt = Runtime(
        settings=settings,
        app=app,
        topics=topics,
        faust_topics=faust_topics,
        node_view=node_view,
        atp_view=atp_view,
        capacity_view=capacity_view,
        stock=StockTable(stock_table, keep=settings.decoded_skus),
        orders=OrderTable(orders_table),
        seen=SeenTable(seen_table),
    )
    _clear_queues_only_after_a_suspend(app)
    COMPACTED_INPUTS.update(topics.name(n) for n, spec in TOPIC_SPECS.items() if spec.compacted)
    rt.emit = Emitter(app)
    rt.emit.deadletter_topic = topics.deadletter

    nodes.register(rt)
    inventory.register(rt)
    orders.register(rt)
    http_api.register(rt)
    shopify.register(rt)
    dashboard.register(rt)

    @app.task
    async def follow_nodes() -> None:
        await node_view.run()

    @app.task
    async def follow_atp() -> None:
        await atp_view.run()

    @app.task
    async def follow_capacity() -> None:
        await capacity_view.run()

    @app.timer(interval=5.0)
    async def gauges() -> None:
        metrics.READY.set(1 if rt.is_ready() else 0)
        metrics.TABLE_KEYS.labels("stock").set(approx_keys(stock_table))
        metrics.TABLE_KEYS.labels("seen-events").set(approx_keys(seen_table))
        metrics.TABLE_KEYS.labels("orders").set(approx_keys(orders_table))
        metrics.TABLE_KEYS.labels("atp-view").set(atp_view.keys())
        await _update_lag(rt)

    return rt


async def _update_lag(rt: Runtime) -> None:
    consumer = rt.app.consumer
    try:
        assignment = consumer.assignment()
    except Exception:
        return
    lag: dict[str, int] = {}
    for tp in assignment:
        try:
            high = consumer.highwater(tp)
            pos = await asyncio.wait_for(consumer.position(tp), 1.0)
        except Exception:
            continue
        if high is None or pos is None:
            continue
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - pos)
    for topic, value in lag.items():
        metrics.CONSUMER_LAG.labels(topic).set(value)


__all__ = ["Runtime", "create_app", "kafka_client_kwargs"]
