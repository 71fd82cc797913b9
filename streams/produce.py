"""Handing records to the producer a partition at a time.

aiokafka's ``send`` makes a future per record and appends records one by
one; ``create_batch``/``send_batch`` appends into a record batch we fill
and returns one future for all of it. Every record an agent batch writes
(table changelogs, outputs, dead letters) goes out this way
(docs/benchmarks.md has the profiles).
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterable

Record = tuple[bytes | None, bytes | None]  # key, value


async def send_partition(producer: Any, topic: str, partition: int,
                         records: Iterable[Record]) -> list[tuple[asyncio.Future, int]]:
    """Send records to one partition, in their order, as few record batches
    as fit; each batch's future (its result's offset is the batch's first
    record) with the number of records it carries."""
    sent = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        # A batch takes its first record whatever its size (aiokafka).
        if batch.append(key=key, value=value, timestamp=None) is None:
            sent.append((await _submit(producer, batch, topic, partition), count))
            batch, count = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=None)
        count += 1
    if count:
        sent.append((await _submit(producer, batch, topic, partition), count))
    return sent


async def _submit(producer: Any, batch: Any, topic: str, partition: int) -> asyncio.Future:
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition)


async def partitioner(producer: Any, topic: str) -> Any:
    """The producer's default partition choice for a topic's keys (murmur2,
    as every client of the contract uses): ``choose(key) -> partition``."""
    await producer.client._wait_on_metadata(topic)

    def choose(key: bytes | None) -> int:
        return producer._partition(topic, None, None, None, key, None)

    return choose
