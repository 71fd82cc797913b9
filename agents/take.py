"""Batches taken straight from an agent's channel queue.

Faust's ``Stream.take_events`` moves every record through the stream's
per-record loop (a loop turn, processors, sensors and a context variable
each) into a buffer, and a batch is cut when the buffer is full or a timer
fires. Here a batch is whatever the conductor has queued for the agent, up
to ``max_events``, taken at once when the previous batch is done: under load
batches fill themselves while the previous one is written, and a lone record
goes out without waiting for a timer.

What the stream did per record and this keeps: a record of an acking topic
is tracked as unacked before it is handled (Faust's commit and its
wait-for-streams at a rebalance rely on it), and every record of a batch is
acked once the batch is done. What it did and this does not: a record
queued under an older generation, or while flow control is suspended, was
acked unhandled (skipped); here it is held back, unacked, so the commit
stays below it and it is read again after the rebalance's seek.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

from ..app import hold_back


async def take(app: Any, stream: Any, max_events: int) -> AsyncIterator[list]:
    """Yield lists of events; ack each list's events when the caller asks
    for the next one (or stops)."""
    queue = stream.channel.queue
    consumer = app.consumer
    unacked = consumer.unacked
    acking_topics = app.topics.acking_topics
    while True:
        try:
            events = [await queue.get() if queue.empty() else queue.get_nowait()]
        except StopAsyncIteration:  # Faust closes the channel this way when the agent stops
            return
        while len(events) < max_events and not queue.empty():
            events.append(queue.get_nowait())
        fresh = []
        current, flowing = app.consumer_generation_id, app.flow_control.is_active()
        for event in events:
            message = event.message
            if not flowing or message.generation_id not in (current, None):
                hold_back(consumer, message)
                continue
            if message.topic in acking_topics and not message.tracked:
                message.tracked = True
                unacked.add(message)
            fresh.append(event)
        if not fresh:
            continue
        try:
            yield fresh
        finally:
            for event in fresh:
                event.ack()
