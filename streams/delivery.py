"""Hand fetched records to Faust's channels without two tasks per record.

Faust's fetcher loop (``Consumer._drain_messages``) delivers every record
with ``wait_first(callback(message), suspend_flow.wait())``: two tasks and
an ``asyncio.wait`` per record, so that a rebalance can interrupt a
delivery that is blocked. That was a third of a restoring worker's main
thread (docs/benchmarks.md), and the same path feeds the agents.

A delivery blocks only when flow control is suspended, the producer buffer
is over its limit, the conductor's subscription lock is held, or a channel
queue of the record's partition is full. When none of these holds the
callback runs straight through without yielding, so nothing can interrupt
it either way, and this loop awaits it directly. When only full queues
block it, the loop waits (interruptibly, as Faust does) until they have a
quarter free, then delivers directly. Otherwise it keeps Faust's
interruptible wait. Everything else is Faust's loop, unchanged, but two
things (docs/benchmarks.md, session 15): the fetch waits 10 ms, not a
second, while a partition is out of it for its queue's pressure
(``drain_messages`` says why), and the conductor's per-record check of
the producer buffer reads its size without settings lookups.

Records of the stock and orders agents' topics skip the conductor and
Faust's stream altogether: they go straight to the agent's inbox
(streams/inbox.py says why and which of the stream's rules it keeps).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, cast

from .inbox import inboxes

# How often a delivery blocked on a full channel queue looks for room.
ROOM_POLL_S = 0.001
# How long a fetch waits for new records while a partition is out of it
# because its channel queue is under pressure (``drain_messages`` says why).
BUFFERED_WAIT_S = 0.01


def _producer_backlog(app: Any) -> Callable[[], int]:
    """What ``ProducerBuffer.size`` counts, without its two ``app.conf``
    reads per call (a tenth of the fetch loop, once per record)."""
    return _backlog_of(app.producer.buffer, app.conf.producer_threaded)


def _backlog_of(buffer: Any, threaded: bool) -> Callable[[], int]:
    if threaded:
        return lambda: buffer.size
    return buffer.pending.qsize


def _ebb_without_settings(buffer_class: Any) -> None:
    """Faust's conductor awaits ``ProducerBuffer.wait_until_ebb`` for every
    record it delivers, and that reads ``size``, two ``app.conf`` lookups:
    a tenth of the delivery's time with nothing else to do (docs/benchmarks.md,
    session 15). The same test, with the size read as ``_producer_backlog``
    reads it; Faust's own wait when the buffer is over its limit."""
    wait = buffer_class.wait_until_ebb

    async def wait_until_ebb(self: Any) -> None:
        backlog = self.__dict__.get("_stockflow_backlog")
        if backlog is None:
            backlog = self.__dict__["_stockflow_backlog"] = _backlog_of(self, self.app.conf.producer_threaded)
        if backlog() > self.max_messages:
            await wait(self)

    buffer_class.wait_until_ebb = wait_until_ebb


def _can_deliver_at_once(app: Any, conductor: Any, tp: Any, backlog: Callable[[], int]) -> bool:
    return _blocker(app, conductor, tp, backlog) is None


def _blocker(app: Any, conductor: Any, tp: Any, backlog: Callable[[], int]) -> Any:
    """None when a delivery cannot block; the full channel queues when they
    are all that blocks it; True for anything else."""
    if not app.flow_control.is_active():
        return True
    if backlog() > app.producer.buffer.max_messages:
        return True
    if conductor._tp_to_callback_lock.locked():
        return True
    full = [channel.queue for channel in conductor._tp_index.get(tp, ()) if channel.queue.full()]
    return full or None


async def _room(queues: list, poll_s: float = ROOM_POLL_S) -> None:
    """Until every queue is at most three quarters full. Waiting for a
    single free slot would block again on the next record, and each blocked
    record costs Faust's two-task wait: with the agent behind (a backlog),
    most records took that path, 8% of the ingest profile (session 12)."""
    while any(q.qsize() > q.maxsize * 3 // 4 for q in queues):
        await asyncio.sleep(poll_s)


async def drain_messages(self: Any, fetcher: Any) -> None:
    """Faust's ``Consumer._drain_messages`` (faust-streaming 0.15, which pyproject.toml pins), with
    the direct delivery above."""
    from faust.transport.consumer import CONSUMER_FETCHING
    from mode import Service

    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    app = self.app
    conductor = app.topics
    suspended = self.suspend_flow.is_set
    backlog = _producer_backlog(app)
    # Changelog records are delivered even below the read offset: the
    # restore reader skips what it has applied (tables/restore.py), and a
    # fetch delivered just after the recovery's seek, then cleared from the
    # changelog queue when flow resumed, left the read offset past records
    # that were never applied; their fetch again was dropped here, and the
    # restored store lacked them for good (docs/reliability.md, bug 21).
    changelogs = frozenset(app.tables.changelog_topics)

    # Records of an agent's topics go to its inbox (streams/inbox.py), not
    # through the conductor to Faust's stream.
    inbox_of = inboxes(app).get
    flow_active = app.flow_control.is_active

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            # A partition Faust took out of the fetch when its channel queue
            # came under pressure (``_buffered_partitions``) comes back once
            # that queue empties, and its records, fetched long before, wait
            # in aiokafka meanwhile; coming back does not wake aiokafka's wait
            # for new records. Waiting its full second, each fetched chunk
            # ended in a second of nothing whenever our delivery had filled a
            # queue (a third of a backlog's time, both threads idle).
            ait = getmany(timeout=BUFFERED_WAIT_S if self._buffered_partitions else 1.0)

            # Faust sleeps here too: getmany can return at once many times
            # in a row without giving the loop back.
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset or tp.topic in changelogs:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            if acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        inbox = inbox_of(tp.topic)
                        if inbox is not None:
                            if not flow_active():
                                # The conductor waits for flow control too:
                                # records put before a recovery ends are
                                # cleared by its resume.
                                await self.wait_first(app.flow_control.acquire(), self.suspend_flow.wait())
                            if inbox.full():
                                await self.wait_first(_room([inbox]), self.suspend_flow.wait())
                            # Suspended: a rebalance began, and the group's
                            # seek fetches the record again (as the conductor's
                            # delivery is cut short by the suspend).
                            if not suspended():
                                inbox.put(message)
                            set_read_offset(tp, offset)
                            continue
                        blocker = None if suspended() else _blocker(app, conductor, tp, backlog)
                        if isinstance(blocker, list):
                            # Only a full queue: wait for room once, as
                            # interruptibly as Faust's wait, then go direct.
                            await self.wait_first(_room(blocker), self.suspend_flow.wait())
                            blocker = None if suspended() else _blocker(app, conductor, tp, backlog)
                        if blocker is None and not suspended():
                            await callback(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


class LivePartitions:
    """Faust's live set of active partitions as the fetch sees it, except
    that an empty set never stands for a paused partition.

    Faust hands aiokafka its live ``_active_partitions`` set, and aiokafka's
    ``fetched_records`` keeps looking at it while it waits, returning the
    buffered records of every partition in it (``if partitions and tp not
    in partitions: skip``); a fetch begun before a rebalance waits through
    it (for the new assignment, then for records). The rebalance empties the
    set (every partition paused), and an empty set reads as "every
    partition": the fetch then returns the records of paused partitions,
    aiokafka moves their positions past them, and Faust's ``getmany`` drops
    them because their partition is not active. For a standby changelog
    partition just sought to its store's offset, that was the first fetch
    of its catch-up, gone for good; the store applied what came next
    (docs/reliability.md, bug 23). So an empty set stands for the
    partitions ``getmany`` hands over without being active, the buffered
    ones (their channel queue full), as an empty set did for them before;
    never for a paused one. Membership stays live: a partition Faust resumes
    during the wait is fetched, as before."""

    __slots__ = ("tps", "buffered")

    def __init__(self, tps: Any, buffered: Any = frozenset()) -> None:
        self.tps = tps
        self.buffered = buffered

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: Any) -> bool:  # all aiokafka's fetch asks of it
        tps = self.tps
        return tp in tps if tps else tp in self.buffered


def _fetch_only_active(thread_class: Any) -> None:
    getmany = thread_class.getmany

    async def _getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
        if active_partitions is not None and not isinstance(active_partitions, LivePartitions):
            buffered = getattr(getattr(self, "consumer", None), "_buffered_partitions", frozenset())
            active_partitions = LivePartitions(active_partitions, buffered)
        return await getmany(self, active_partitions, timeout)

    thread_class.getmany = _getmany


def install() -> None:
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.transport.producer import ProducerBuffer

    if getattr(Consumer, "_stockflow_delivery", False):
        return
    Consumer._drain_messages = drain_messages
    _fetch_only_active(AIOKafkaConsumerThread)
    _ebb_without_settings(ProducerBuffer)
    Consumer._stockflow_delivery = True
