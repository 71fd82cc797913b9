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

import struct

from aiokafka.partitioner import DefaultPartitioner

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
    default = isinstance(getattr(producer, "_partitioner", None), DefaultPartitioner)
    parts = sorted(producer.client.cluster.partitions_for_topic(topic) or ()) if default else []
    if not parts:
        def choose(key: bytes | None) -> int:
            return producer._partition(topic, None, None, None, key, None)

        return choose
    n = len(parts)
    # A key's partition, once computed: an order's id, a SKU, a SKU-node come
    # back for every record they cause (about eight per order), and murmur2
    # in Python costs a few microseconds a key. Cleared when full, so it
    # stays small (PARTITION_CACHE_KEYS per topic) whatever the key space.
    known: dict[bytes, int] = {}

    def choose_keyed(key: bytes | None) -> int:
        # DefaultPartitioner's own arithmetic, without the two partition sets
        # aiokafka's _partition builds from the metadata for every record (a
        # tenth of a worker's time when an upload touches many SKU-nodes).
        # A topic's partition count never changes under stockflow: the
        # co-partitioned inputs would break first (docs/operations.md).
        if key is None:
            return producer._partition(topic, None, None, None, key, None)
        partition = known.get(key)
        if partition is None:
            if len(known) >= PARTITION_CACHE_KEYS:
                known.clear()
            partition = known[key] = parts[(murmur2(key) & 0x7FFFFFFF) % n]  # checked against Kafka's
        return partition

    return choose_keyed


PARTITION_CACHE_KEYS = 20_000


_M = 0x5BD1E995
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's Utils.murmur2, aiokafka's
    ``murmur2``), a word at a time: aiokafka's takes a byte at a time and was
    a twentieth of a worker's time."""
    length = len(data)
    h = 0x9747B28C ^ length
    n4 = length >> 2
    if n4:
        words = _WORDS.get(n4)
        if words is None:
            words = _WORDS[n4] = struct.Struct(f"<{n4}I")
        for k in words.unpack_from(data):
            k = (k * _M) & 0xFFFFFFFF
            k ^= k >> 24
            h = ((h * _M) & 0xFFFFFFFF) ^ ((k * _M) & 0xFFFFFFFF)
    rest = length & 3
    if rest:
        tail = length & ~3
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)
