"""The two replacements of Faust's per-record loops keep Faust's rules.

tables/restore.py applies queued changelog records a turn at a time;
streams/delivery.py hands a record to the conductor directly when nothing
can block it. The integration and chaos suites run both end to end; these
pin the rules that are easy to get wrong.
"""
from __future__ import annotations

import asyncio
from collections import Counter, defaultdict, deque
from types import SimpleNamespace

from faust.types import TP
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from stockflow.streams.delivery import (BUFFERED_WAIT_S, _blocker, _can_deliver_at_once, _ebb_without_settings,
                                       _producer_backlog, _room, drain_messages)
from stockflow.tables import restore

ACTIVE, STANDBY, GONE = TP("t-changelog", 0), TP("t-changelog", 1), TP("t-changelog", 2)


class _Table:
    recovery_buffer_size = 3
    standby_buffer_size = 3
    _on_changelog_event = None

    def __init__(self) -> None:
        self.applied: list[tuple[int, int]] = []

    def apply_changelog_batch(self, events) -> None:
        self.applied.extend((e.message.tp.partition, e.message.offset) for e in events)


class _Recovery(SimpleNamespace):
    should_stop = False
    in_recovery = True


def _recovery(table: _Table) -> _Recovery:
    return _Recovery(
        active_tps={ACTIVE}, standby_tps={STANDBY}, tp_to_table={ACTIVE: table, STANDBY: table},
        active_offsets=Counter({ACTIVE: 4}), standby_offsets=Counter(), buffers=defaultdict(list),
        buffer_sizes={}, _active_events_received_at={}, _standby_events_received_at={},
        _last_active_event_processed_at=None, _processing_times=deque(), num_samples_required_for_estimate=10,
        _last_flush_at=None)


def _event(tp: TP, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))


def test_a_turn_skips_seen_offsets_and_unassigned_partitions_and_applies_full_buffers():
    table = _Table()
    rec = _recovery(table)
    events = [_event(ACTIVE, o) for o in (3, 4, 5, 6)] + [_event(GONE, 9), _event(STANDBY, 0), _event(STANDBY, 0)]
    asyncio.run(restore._apply(rec, events))
    # 3 and 4 were seen already; GONE is nobody's now; the second STANDBY 0 is a repeat.
    assert table.applied == [(0, 5), (0, 6), (1, 0)]
    assert rec.active_offsets[ACTIVE] == 6 and rec.standby_offsets[STANDBY] == 0
    assert rec.buffers[table] == []


def test_a_turn_keeps_a_part_buffer_for_the_next_turn():
    table = _Table()
    rec = _recovery(table)
    asyncio.run(restore._apply(rec, [_event(ACTIVE, 5), _event(ACTIVE, 6)]))
    assert table.applied == [] and len(rec.buffers[table]) == 2


def test_a_gap_in_a_changelog_partition_is_reported_once_and_applied_as_before(caplog):
    table = _Table()
    rec = _recovery(table)
    rec.standby_offsets = Counter({STANDBY: 4})
    with caplog.at_level("WARNING", logger="stockflow.tables.restore"):
        asyncio.run(restore._apply(rec, [_event(STANDBY, 5), _event(STANDBY, 9), _event(STANDBY, 12)]))
    gaps = [r.getMessage() for r in caplog.records if "never reached" in r.getMessage()]
    assert len(gaps) == 1 and "record 9 follows 5; the 3 between" in gaps[0], gaps
    assert [o for _, o in table.applied] == [5, 9, 12]  # reported, not refused: compaction leaves gaps too
    caplog.clear()
    with caplog.at_level("WARNING", logger="stockflow.tables.restore"):
        asyncio.run(restore._apply(rec, [_event(ACTIVE, 5), _event(ACTIVE, 6)]))  # contiguous: quiet
    assert not [r for r in caplog.records if "never reached" in r.getMessage()]


def test_the_reader_drains_the_queue_and_ends_recovery():
    table = _Table()

    async def run() -> _Recovery:
        fc = FlowControlEvent(initially_suspended=False)
        queue: ThrowableQueue = ThrowableQueue(maxsize=100, flow_control=fc)
        rec = _recovery(table)
        rec.active_highwaters = {ACTIVE: 10}
        rec.standby_highwaters = {}
        state = {"stop": False, "in_recovery": True}
        rec.tables = SimpleNamespace(changelog_queue=queue, standbys_ready=True, on_standbys_ready=lambda: None)
        rec._standbys_span = None
        rec._actives_span = None
        rec.app = SimpleNamespace(in_transaction=False)
        rec.signal_recovery_end = asyncio.Event()
        rec.standby_remaining_total = lambda: 0
        rec.need_recovery = lambda: rec.active_offsets[ACTIVE] < rec.active_highwaters[ACTIVE]

        def ended() -> None:
            rec.in_recovery = False
            rec.should_stop = True

        rec.flush_buffers = lambda: [table.apply_changelog_batch(b) or b.clear() for b in rec.buffers.values()]
        rec._set_recovery_ended = ended
        for offset in range(5, 11):
            queue.put_nowait(_event(ACTIVE, offset))
        await asyncio.wait_for(restore.read_changelogs(rec), timeout=10)
        return rec

    rec = asyncio.run(run())
    assert [o for _, o in table.applied] == [5, 6, 7, 8, 9, 10]
    assert rec.signal_recovery_end.is_set()


def _delivery_world(*, suspended=False, producer_size=0, locked=False, queue_full=False, threaded=False):
    fc = FlowControlEvent(initially_suspended=suspended)
    pending: asyncio.Queue = asyncio.Queue()
    for n in range(producer_size):
        pending.put_nowait(n)
    buffer = SimpleNamespace(size=producer_size, max_messages=100, pending=asyncio.Queue() if threaded else pending)
    app = SimpleNamespace(flow_control=fc, producer=SimpleNamespace(buffer=buffer),
                          conf=SimpleNamespace(producer_threaded=threaded))
    lock = asyncio.Lock()
    if locked:
        lock._locked = True
    channel = SimpleNamespace(queue=SimpleNamespace(full=lambda: queue_full))
    conductor = SimpleNamespace(_tp_to_callback_lock=lock, _tp_index={ACTIVE: [channel]})
    return app, conductor


def _at_once(world: tuple, tp: TP) -> bool:
    app, conductor = world
    return _can_deliver_at_once(app, conductor, tp, _producer_backlog(app))


def test_delivery_goes_direct_only_when_nothing_can_block_it():
    assert _at_once(_delivery_world(), ACTIVE)
    assert _at_once(_delivery_world(), GONE)  # no channel: nothing to wait for
    assert not _at_once(_delivery_world(suspended=True), ACTIVE)
    assert not _at_once(_delivery_world(producer_size=101), ACTIVE)
    assert not _at_once(_delivery_world(producer_size=101, threaded=True), ACTIVE)  # Faust's own size then
    assert _at_once(_delivery_world(producer_size=100), ACTIVE)  # over the limit blocks, at it does not
    assert not _at_once(_delivery_world(locked=True), ACTIVE)
    assert not _at_once(_delivery_world(queue_full=True), ACTIVE)


def test_a_delivery_blocked_only_by_a_full_queue_waits_for_a_quarter_free():
    app, conductor = _delivery_world(queue_full=True)
    full = _blocker(app, conductor, ACTIVE, _producer_backlog(app))
    assert isinstance(full, list) and len(full) == 1
    # Anything else that blocks keeps Faust's own wait.
    for world in (_delivery_world(queue_full=True, locked=True), _delivery_world(queue_full=True, suspended=True)):
        assert _blocker(world[0], world[1], ACTIVE, _producer_backlog(world[0])) is True

    async def run() -> list[int]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        for n in range(8):
            queue.put_nowait(n)
        sizes = []

        async def agent() -> None:  # takes one record per millisecond
            for _ in range(8):
                await asyncio.sleep(0.001)
                queue.get_nowait()
                sizes.append(queue.qsize())

        taker = asyncio.ensure_future(agent())
        await asyncio.wait_for(_room([queue], poll_s=0.0005), timeout=5)
        at_return = queue.qsize()
        await taker
        return [at_return, *sizes]

    at_return, *sizes = asyncio.run(run())
    assert at_return <= 6  # three quarters of 8
    assert 7 in sizes  # one free slot was not enough to return


def _draining_consumer(buffered_by_call: list[set]) -> SimpleNamespace:
    """A consumer with what ``drain_messages`` uses: each getmany call sees
    the next set of buffered partitions, records its timeout and hands over
    one record; the loop stops once every set was seen."""
    app, conductor = _delivery_world()
    app.topics = conductor
    conductor.acks_enabled_for = lambda topic: True
    app.tables = SimpleNamespace(changelog_topics=set())
    stopped = asyncio.Event()
    consumer = SimpleNamespace(
        app=app, _stopped=stopped, _read_offset=defaultdict(lambda: None), _commit_every=None, _n_acked=0,
        diag=SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None),
        suspend_flow=asyncio.Event(), should_stop=False, consumer_stopped_errors=(), timeouts=[], delivered=[],
        _buffered_partitions=buffered_by_call[0])

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async def callback(message) -> None:
        consumer.delivered.append(message.offset)

    def getmany(timeout: float):
        consumer.timeouts.append(timeout)
        n = len(consumer.timeouts)
        if n < len(buffered_by_call):
            consumer._buffered_partitions = buffered_by_call[n]  # what the agents' queues did meanwhile
        else:
            stopped.set()

        async def records():
            yield ACTIVE, SimpleNamespace(offset=n, topic=ACTIVE.topic)

        return records()

    consumer.sleep, consumer.callback, consumer.getmany = sleep, callback, getmany
    return consumer


def test_the_fetch_waits_briefly_while_a_queue_has_a_partition_out_of_it():
    # A partition Faust takes out of the fetch for its queue's pressure comes
    # back without waking aiokafka's wait for new records, while its own
    # records wait in aiokafka: a full second's wait stalled the worker.
    consumer = _draining_consumer([set(), {ACTIVE}, {ACTIVE, STANDBY}, set()])
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    asyncio.run(asyncio.wait_for(drain_messages(consumer, fetcher), timeout=10))
    assert consumer.timeouts == [1.0, BUFFERED_WAIT_S, BUFFERED_WAIT_S, 1.0]
    assert BUFFERED_WAIT_S < 0.1
    assert consumer.delivered == [1, 2, 3, 4]


def test_the_producer_buffer_ebbs_without_reading_settings_per_record():
    class _Conf:
        reads = 0

        @property
        def producer_threaded(self) -> bool:
            _Conf.reads += 1
            return False

    class _Buffer:  # ProducerBuffer's part the conductor uses
        def __init__(self, pending: int) -> None:
            self.app = SimpleNamespace(conf=_Conf())
            self.max_messages = 3
            self.pending = asyncio.Queue()
            for n in range(pending):
                self.pending.put_nowait(n)
            self.flushed = 0

        async def wait_until_ebb(self) -> None:  # Faust's: flush down to the limit
            self.flushed += 1

    _ebb_without_settings(_Buffer)

    async def run(buffer: _Buffer) -> None:
        for _ in range(5):
            await buffer.wait_until_ebb()

    under, over = _Buffer(pending=3), _Buffer(pending=4)
    asyncio.run(run(under))
    asyncio.run(run(over))
    assert under.flushed == 0 and over.flushed == 5  # over the limit: Faust's own wait, every time
    assert _Conf.reads == 2  # once per buffer, not once per record


def test_a_record_that_fails_costs_only_itself():
    class _Failing(_Table):
        def apply_changelog_batch(self, events) -> None:
            if any(e.message.offset == 7 for e in events) and not getattr(self, "failed", False):
                self.failed = True
                raise RuntimeError("disk full")
            super().apply_changelog_batch(events)

    table = _Failing()
    rec = _recovery(table)
    asyncio.run(restore._apply(rec, [_event(ACTIVE, o) for o in (5, 6, 7, 8, 9, 10)]))
    # 5-7 failed to apply once and stayed buffered; the turn went on, and
    # the next full buffer applied them with 8.
    assert [o for _, o in table.applied] == [5, 6, 7, 8]
    assert [e.message.offset for e in rec.buffers[table]] == [9, 10] and rec.active_offsets[ACTIVE] == 10


def test_a_cleared_changelog_queue_is_read_again_from_its_lowest_offsets(monkeypatch):
    """Faust clears the changelog queue when flow resumes; what it held must
    be fetched again and applied in order, or the store misses it for good
    (bug 21): later records are dropped until the lowest cleared one is back."""
    asked = []

    async def read_again(recovery, lowest):
        asked.append(dict(lowest))

    monkeypatch.setattr(restore, "_read_again", read_again)
    table = _Table()

    async def run():
        fc = FlowControlEvent(initially_suspended=False)
        queue = ThrowableQueue(maxsize=100, flow_control=fc, clear_on_resume=True)
        rec = _recovery(table)
        rec.app = SimpleNamespace(consumer="the consumer", consumer_generation_id=4)
        restore._read_again_what_a_clear_drops(rec, queue)
        restore._read_again_what_a_clear_drops(rec, queue)  # wrapped once
        for offset in (5, 6, 7):
            queue.put_nowait(_event(STANDBY, offset))
        queue.put_nowait(_event(ACTIVE, 40))
        fc.resume()  # what Faust does at the end of a recovery
        await asyncio.sleep(0)
        assert queue.empty()
        # records fetched before the seek lands are dropped; the re-read is applied in order
        await restore._apply(rec, [_event(STANDBY, 8), _event(ACTIVE, 41)])
        assert rec.standby_offsets.get(STANDBY) is None and rec.active_offsets.get(ACTIVE) == 4  # as before
        await restore._apply(rec, [_event(STANDBY, o) for o in (5, 6, 7, 8)] + [_event(ACTIVE, 40)])
        return rec

    rec = asyncio.run(run())
    assert asked == [{STANDBY: 5, ACTIVE: 40}]
    assert rec.standby_offsets[STANDBY] == 8 and rec.active_offsets[ACTIVE] == 40
    assert rec._stockflow_rewind == {}


def test_a_rewind_never_outlives_its_generation_or_its_patience(monkeypatch):
    asked = []

    async def read_again(recovery, lowest):
        asked.append(dict(lowest))

    monkeypatch.setattr(restore, "_read_again", read_again)
    patience = restore.REWIND_PATIENCE_S

    async def run():
        rec = SimpleNamespace(app=SimpleNamespace(consumer_generation_id=2), _stockflow_rewind={})
        rec._stockflow_rewind[STANDBY] = (5, 1, 0.0, 1)
        assert not restore._rewound(rec, STANDBY, 9, 1.0)  # a new generation: its recovery decides
        rec._stockflow_rewind[STANDBY] = (5, 2, 0.0, 1)
        assert restore._rewound(rec, STANDBY, 9, 1.0)
        # out of patience: asked again (still dropping), until the last ask
        now = 0.0
        for _ in range(restore.REWIND_TRIES - 1):
            now += patience + 1
            assert restore._rewound(rec, STANDBY, 9, now)
            await asyncio.sleep(0)
        assert restore._rewound(rec, STANDBY, 9, now + 1.0)  # patience starts again with each ask
        assert not restore._rewound(rec, STANDBY, 9, now + patience + 1)  # then it gives up, loudly
        return rec

    rec = asyncio.run(run())
    assert asked == [{STANDBY: 5}] * (restore.REWIND_TRIES - 1)
    assert rec._stockflow_rewind == {}


def test_reading_again_only_ever_goes_back():
    sought = []

    class Aio:
        def __init__(self, positions):
            self.positions = positions

        async def position(self, tp):
            if tp.partition not in self.positions:
                raise RuntimeError("not assigned")
            return self.positions[tp.partition]

        def seek(self, tp, offset):
            sought.append((tp.partition, offset))

    aio = Aio({ACTIVE.partition: 50, STANDBY.partition: 3})

    class Thread:
        def _ensure_consumer(self):
            return aio

        async def call_thread(self, fn, *args):
            got = fn(*args)
            return await got if asyncio.iscoroutine(got) else got

    flaky = TP("y-changelog", 98)  # assigned, but its position cannot be read now (the broker away)
    consumer = SimpleNamespace(_thread=Thread(), _read_offset={}, assignment=lambda: {ACTIVE, STANDBY, flaky})
    gone = TP("x-changelog", 99)
    rec = SimpleNamespace(app=SimpleNamespace(consumer=consumer),
                          _stockflow_rewind={gone: (1, 0, 0.0, 1), flaky: (7, 0, 0.0, 1)})
    asyncio.run(restore._read_again(rec, {ACTIVE: 40, STANDBY: 5, gone: 1, flaky: 7}))
    # back to 40 where the fetcher was past it; not forward to 5 from 3; the unassigned one left alone
    assert sought == [(ACTIVE.partition, 40)]
    assert consumer._read_offset == {ACTIVE: 40}
    assert gone not in rec._stockflow_rewind  # nothing will come back for it: no waiting
    assert rec._stockflow_rewind[flaky] == (7, 0, 0.0, 1)  # still ours: wait, and ask again later


def test_raw_topics_open_one_inbox_for_the_agents_topics():
    """agents/batches.py's raw_topics: the channel Faust subscribes, bytes
    as they are, and the inbox its records go to instead of the conductor
    (streams/inbox.py), open before any fetch."""
    import faust

    from stockflow.agents.batches import raw_topics
    from stockflow.streams.inbox import inboxes

    app = faust.App("raw-topics-test", broker="kafka://127.0.0.1:1")
    topic = raw_topics(app, "a", "b").clone(is_iterator=True)
    assert (topic.key_type, topic.value_type, topic.key_serializer, topic.value_serializer) == \
        (bytes, bytes, "raw", "raw")
    held = inboxes(app)
    assert set(held) == {"a", "b"} and held["a"] is held["b"]
    assert held["a"].maxsize == app.conf.stream_buffer_maxsize


# Bug 23 (docs/reliability.md): what aiokafka's fetch returns when Faust's
# live set of active partitions is empty, played on aiokafka's own code.
class _TpState:
    paused = False

    def __init__(self, position: int) -> None:
        self.position = position

    def consumed_to(self, offset: int) -> None:
        self.position = offset


class _PartitionRecords:
    def __init__(self, offsets: list[int]) -> None:
        self._it = iter([SimpleNamespace(offset=o) for o in offsets])
        self.next_fetch_offset = offsets[0]

    def __iter__(self):
        return self

    def __next__(self):
        msg = next(self._it)
        self.next_fetch_offset = msg.offset + 1
        return msg


def _fetcher_holding(tp, offsets: list[int]) -> tuple[SimpleNamespace, _TpState]:
    from aiokafka.consumer.fetcher import FetchResult

    state = _TpState(offsets[0])
    assignment = SimpleNamespace(active=True, state_value=lambda _tp: state)
    result = FetchResult(tp, assignment=assignment, partition_records=_PartitionRecords(offsets), backoff=0)
    fetcher = SimpleNamespace(_subscriptions=SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda _tp: True),
                              _records={tp: result}, _notify=lambda _f: None, _wait_consume_future=None, _closed=False)
    return fetcher, state


def test_an_emptied_live_set_no_longer_fetches_every_partition():
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.structs import TopicPartition

    from stockflow.streams.delivery import LivePartitions

    tp = TopicPartition("t-changelog", 0)
    # Faust's own set, emptied by a rebalance while the fetch waits: aiokafka
    # reads it as "every partition", returns the paused partition's records
    # and moves its position past them; Faust then drops them (not active).
    fetcher, state = _fetcher_holding(tp, [1329, 1330, 1331])
    got = asyncio.run(Fetcher.fetched_records(fetcher, set(), timeout=0))
    assert [m.offset for m in got[tp]] == [1329, 1330, 1331] and state.position == 1332
    # The live view: empty means none, and the records stay for later.
    fetcher, state = _fetcher_holding(tp, [1329, 1330, 1331])
    live: set = set()
    assert asyncio.run(Fetcher.fetched_records(fetcher, LivePartitions(live), timeout=0)) == {}
    assert state.position == 1329
    live.add(tp)  # resumed during the wait: fetched, as with Faust's own set
    got = asyncio.run(Fetcher.fetched_records(fetcher, LivePartitions(live), timeout=0))
    assert [m.offset for m in got[tp]] == [1329, 1330, 1331]
    # Every partition buffered (its queue full): getmany hands those over
    # though not active, and an empty set fetched them before; it still does.
    fetcher, state = _fetcher_holding(tp, [7, 8])
    got = asyncio.run(Fetcher.fetched_records(fetcher, LivePartitions(set(), {tp}), timeout=0))
    assert [m.offset for m in got[tp]] == [7, 8]
    fetcher, state = _fetcher_holding(tp, [7, 8])  # with active ones, only those, as before
    other = TopicPartition("t-changelog", 1)
    assert asyncio.run(Fetcher.fetched_records(fetcher, LivePartitions({other}, {tp}), timeout=0)) == {}


def test_the_consumer_thread_fetches_through_the_live_view():
    from stockflow.streams.delivery import LivePartitions, _fetch_only_active

    seen = []

    class _Thread:
        consumer = SimpleNamespace(_buffered_partitions={"buffered"})

        async def getmany(self, active_partitions, timeout):
            seen.append(active_partitions)
            return {}

    _fetch_only_active(_Thread)
    live: set = set()
    asyncio.run(_Thread().getmany(live, 1.0))
    asyncio.run(_Thread().getmany(None, 1.0))
    assert isinstance(seen[0], LivePartitions) and seen[0].tps is live and bool(seen[0])
    assert "buffered" in seen[0] and "paused" not in seen[0]
    assert seen[1] is None  # client-only mode: every partition, as Faust asks
