"""The one loop every keyed agent runs: micro-batches from two co-partitioned topics."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .. import metrics
from ..tables.context import bind_event

if TYPE_CHECKING:
    from ..app import Runtime

Handler = Callable[["Runtime", Any, Any], Awaitable[None]]


def raw_topics(rt: "Runtime", *names: str) -> Any:
    """One Faust channel over several topics, bytes in and out (we decode)."""
    return rt.app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


async def run_batches(rt: "Runtime", stream: Any, new_batch: Callable[[], Any],
                      handlers: dict[str, Handler], flush: Callable[["Runtime", Any], None]) -> None:
    """Handle each event by its topic, write the batch once, then hand every
    output to the producer before the batch's events are acked."""
    async for events in stream.take_events(rt.settings.batch_size, rt.settings.batch_within_s):
        batch = new_batch()
        for event in events:
            # Faust reads and writes a table in the partition of the current event.
            bind_event(event)
            metrics.EVENTS_PROCESSED.labels(event.message.topic).inc()
            await handlers[event.message.topic](rt, event, batch)
        flush(rt, batch)
        await rt.emit.drain()
