"""Records of an agent's topics, handed from the fetch loop to the agent in batches.

Why not Faust's stream: a record on Faust's path goes through the
conductor (an event, a channel queue put), then the stream (a loop turn of
its own, ``await sleep(0)``, sensors, a context switch per record), then
``take_events``' buffer (a processor call and a list append per record).
Doing nothing else, that path took 44,019 records/s on this machine
(``faust_floor_eps``, docs/benchmarks.md) against 450,005 for a plain
aiokafka consumer: a quarter of the worker's time per movement.

Here the fetch loop (streams/delivery.py) appends each record of the
agent's topics to its inbox, and the agent takes them a batch at a time.
The rules Faust's path keeps are kept here, each where Faust keeps it:

- the agent's topics are still its channel's, so Faust subscribes them
  when the worker starts and acks them (``acking_topics``); the inbox is
  opened with the channel, before any fetch, since a record the conductor
  takes sits in a channel queue nobody reads (a first version opened it
  when the agent began: the records fetched before were never handled);
- a record waits for flow control as the conductor's delivery waits, so
  none is put before a recovery ends and then cleared by its resume;
- a record from an older generation, or taken while flow control is
  suspended (a rebalance), is skipped and acked, as the stream does;
- a taken record is tracked as unacked until its batch is done, so a
  rebalance waits for it (``stream_wait_empty``), and acked then, as
  ``take_events`` acks its events when the next batch is asked for;
- the inbox is cleared with the channel queues (flow control's clear, on
  a rebalance), so no stale record outlives it;
- it holds at most ``maxsize`` records (Faust's ``stream_buffer_maxsize``):
  the fetch loop waits for room, as it waits on a full channel queue.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Iterable


class Inbox:
    def __init__(self, app: Any, topics: Iterable[str], maxsize: int) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.maxsize = maxsize
        self._records: deque = deque()
        self._wanted = 1  # the agent's batch size while it waits
        self._enough = asyncio.Event()
        app.flow_control.manage_queue(self)

    def __len__(self) -> int:
        return len(self._records)

    qsize = __len__  # as a queue's, for streams/delivery.py's wait for room

    def full(self) -> bool:
        return len(self._records) >= self.maxsize

    def put(self, message: Any) -> None:
        records = self._records
        records.append(message)
        if len(records) >= self._wanted:
            self._enough.set()

    def clear(self) -> None:
        """Called by flow control with the channel queues (a rebalance):
        the records were never tracked, so nothing waits for their ack,
        and the group's seek fetches them again."""
        self._records.clear()

    async def take(self, max_: int, within: float) -> list:
        """Up to ``max_`` records, as ``take_events`` hands them: at once when
        ``max_`` are there, else those there ``within`` seconds after the
        call. With none there then, the first to come, without Faust's
        wake-up every ``within`` seconds while nothing comes."""
        records = self._records
        enough = self._enough
        try:
            if len(records) < max_:
                self._wanted = max_
                enough.clear()
                try:
                    await asyncio.wait_for(enough.wait(), within)
                except asyncio.TimeoutError:
                    pass
            while not records:
                self._wanted = 1
                enough.clear()
                await enough.wait()
        finally:
            self._wanted = 1
        n = min(max_, len(records))
        return [records.popleft() for _ in range(n)]

    def admit(self, messages: list) -> tuple[list, list]:
        """The taken records split into those to handle (now tracked as
        unacked) and those the stream would skip (acked at once)."""
        app = self.app
        consumer = app.consumer
        generation = app.consumer_generation_id
        acking = app.topics.acking_topics
        unacked = consumer.unacked
        active = app.flow_control.is_active()
        keep, skipped = [], []
        for message in messages:
            if not active or message.generation_id != generation:
                skipped.append(message)
                continue
            if message.topic in acking and not message.tracked:
                message.tracked = True
                unacked.add(message)
            keep.append(message)
        for message in skipped:
            consumer.ack(message)
        return keep, skipped


def inboxes(app: Any) -> dict[str, Inbox]:
    """topic -> the inbox its records go to (streams/delivery.py reads it)."""
    held = app.__dict__.get("_stockflow_inboxes")
    if held is None:
        held = app.__dict__["_stockflow_inboxes"] = {}
    return held


def open_inbox(app: Any, topics: Iterable[str]) -> Inbox:
    """The inbox of one agent's topics; each topic has at most one."""
    inbox = Inbox(app, topics, app.conf.stream_buffer_maxsize)
    held = inboxes(app)
    for topic in inbox.topics:
        if topic in held:
            raise ValueError(f"topic {topic!r} already has an inbox")
    for topic in inbox.topics:
        held[topic] = inbox
    return inbox


async def take_batches(app: Any, channel: Any, max_: int, within: float) -> Any:
    """What ``stream.take_events(max_, within)`` yields for an agent of
    ``channel``'s topics (their inbox opened with the channel): lists of
    Faust events, each list acked once the agent asks for the next. A batch
    left by an exception is held back instead (app.py's ``hold_back``:
    never acked, never waited for), where Faust's take_events acks it: the
    commit must not pass records a crashed agent did not finish."""
    inbox = inboxes(app)[channel.topics[0]]
    event_class = app.conf.Event
    consumer = app.consumer
    while True:
        keep, _ = inbox.admit(await inbox.take(max_, within))
        if not keep:
            continue
        try:
            yield [event_class(app, m.key, m.value, m.headers, m) for m in keep]
        except BaseException:
            from ..app import hold_back

            for message in keep:
                hold_back(consumer, message)
            raise
        for message in keep:
            consumer.ack(message)
