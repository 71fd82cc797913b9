"""The agents' inboxes (streams/inbox.py): batches as take_events hands
them, cleared with the channel queues, Faust's skip and ack rules kept.

Kafka is not mocked here: these hold the inbox against the few attributes
of a Faust app it reads. The integration and e2e suites run it against the
real broker and workers (every agent batch goes through it).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from mode.utils.queues import FlowControlEvent

from stockflow.streams.delivery import _room
from stockflow.streams.inbox import Inbox, open_inbox, take_batches


@dataclass(eq=False)
class Record:
    topic: str
    offset: int
    generation_id: int = 1
    tracked: bool = False
    acked: bool = False
    key: bytes = b"k"
    value: bytes = b"v"
    headers: tuple = ()


class Consumer:
    def __init__(self) -> None:
        self._unacked_messages: set = set()
        self.acks: list[int] = []

    @property
    def unacked(self) -> set:
        return self._unacked_messages

    def ack(self, message: Record) -> bool:
        if message.acked:
            return False
        message.acked = True
        self._unacked_messages.discard(message)
        self.acks.append(message.offset)
        return True


class Event:
    def __init__(self, app, key, value, headers, message) -> None:
        self.message = message


@pytest.fixture
def make_app():
    def make(maxsize: int = 100):
        flow = FlowControlEvent(initially_suspended=False)
        return SimpleNamespace(
            flow_control=flow, consumer=Consumer(), consumer_generation_id=1,
            topics=SimpleNamespace(acking_topics={"t"}),
            conf=SimpleNamespace(Event=Event, stream_buffer_maxsize=maxsize),
        )
    return make


def run(coro):
    return asyncio.run(coro)


def test_a_full_batch_is_taken_at_once_and_never_more_than_asked(make_app):
    async def scenario():
        inbox = Inbox(make_app(), {"t"}, 100)
        for i in range(7):
            inbox.put(Record("t", i))
        first = await asyncio.wait_for(inbox.take(5, 30.0), 1.0)  # 30 s would fail the 1 s bound
        second = await inbox.take(5, 0.01)
        return [r.offset for r in first], [r.offset for r in second]

    assert run(scenario()) == ([0, 1, 2, 3, 4], [5, 6])


def test_a_short_batch_waits_out_the_window_then_goes(make_app):
    async def scenario():
        inbox = Inbox(make_app(), {"t"}, 100)
        inbox.put(Record("t", 0))
        taking = asyncio.ensure_future(inbox.take(5, 0.2))
        await asyncio.sleep(0.05)
        early = taking.done()
        inbox.put(Record("t", 1))
        got = await asyncio.wait_for(taking, 2.0)
        return early, [r.offset for r in got]

    assert run(scenario()) == (False, [0, 1])


def test_an_idle_inbox_hands_over_the_first_record_that_comes(make_app):
    async def scenario():
        inbox = Inbox(make_app(), {"t"}, 100)
        taking = asyncio.ensure_future(inbox.take(5, 0.01))
        await asyncio.sleep(0.1)  # ten windows with nothing: still waiting, nothing returned
        waited = not taking.done()
        inbox.put(Record("t", 9))
        got = await asyncio.wait_for(taking, 1.0)
        return waited, [r.offset for r in got]

    assert run(scenario()) == (True, [9])


def test_flow_control_clears_the_inbox_as_it_clears_channel_queues(make_app):
    app = make_app()
    inbox = Inbox(app, {"t"}, 100)
    inbox.put(Record("t", 0))
    app.flow_control.suspend()
    app.flow_control.clear()
    assert len(inbox) == 0
    inbox.put(Record("t", 1))
    app.flow_control.resume()  # resuming clears as well
    assert len(inbox) == 0


def test_full_and_room(make_app):
    async def scenario():
        inbox = Inbox(make_app(), {"t"}, 4)
        for i in range(4):
            inbox.put(Record("t", i))
        full = inbox.full()
        waiting = asyncio.ensure_future(_room([inbox]))  # the fetch loop's wait
        await asyncio.sleep(0.01)
        blocked = not waiting.done()
        await inbox.take(1, 0.01)  # 3 left: three quarters of 4
        await asyncio.wait_for(waiting, 1.0)
        return full, blocked

    assert run(scenario()) == (True, True)


def test_stale_records_are_skipped_and_acked_as_the_stream_skips_them(make_app):
    app = make_app()
    inbox = Inbox(app, {"t"}, 100)
    current, stale = Record("t", 0), Record("t", 1, generation_id=0)
    keep, skipped = inbox.admit([current, stale])
    assert keep == [current] and skipped == [stale]
    assert current.tracked and current in app.consumer.unacked and not current.acked
    assert app.consumer.acks == [1]
    app.flow_control.suspend()  # a rebalance began: nothing is handled
    late = Record("t", 2)
    assert inbox.admit([late]) == ([], [late])
    assert app.consumer.acks == [1, 2]


def test_a_topic_has_one_inbox(make_app):
    app = make_app()
    open_inbox(app, ["a", "b"])
    with pytest.raises(ValueError, match="'b' already has an inbox"):
        open_inbox(app, ["b", "c"])


class Channel:
    topics = ("t",)


def test_batches_are_acked_when_the_next_is_asked_for(make_app):
    app = make_app()
    inbox = open_inbox(app, Channel.topics)

    async def scenario():
        batches = take_batches(app, Channel(), 2, 0.01)
        seen = []
        async for events in batches:
            seen.append(([e.message.offset for e in events], list(app.consumer.acks)))
            if len(seen) == 1:
                for i in range(2, 4):
                    inbox.put(Record("t", i))
            else:
                break
        await batches.aclose()
        return seen

    for i in range(2):
        inbox.put(Record("t", i))
    seen = run(asyncio.wait_for(scenario(), 2.0))
    # The second batch is handed over once the first is acked; the second
    # itself was left by a break, so it is held back, not acked.
    assert seen == [([0, 1], []), ([2, 3], [0, 1])]
    assert app.consumer.acks == [0, 1]
    assert not app.consumer.unacked


def test_a_batch_an_exception_left_is_held_back_not_acked(make_app):
    app = make_app()
    open_inbox(app, Channel.topics).put(Record("t", 5))

    async def scenario():
        batches = take_batches(app, Channel(), 10, 0.01)
        try:
            async for events in batches:
                assert app.consumer.unacked  # tracked while its batch runs
                raise RuntimeError("the handler failed")
        finally:
            await batches.aclose()

    with pytest.raises(RuntimeError):
        run(scenario())
    assert app.consumer.acks == []  # the commit stays below the record
    assert not app.consumer.unacked  # and a rebalance does not wait for it
