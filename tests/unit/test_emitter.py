"""Agents share one Emitter: a delivered drain waits for every record put before it, whoever sent it."""
import asyncio

from stockflow.agents.emit import Emitter


class Batch:
    def __init__(self):
        self.records = []

    def append(self, *, key, value, timestamp):
        self.records.append((key, value))
        return object()

    def close(self):
        pass


class Client:
    async def _wait_on_metadata(self, topic):
        return None


class SlowProducer:
    """aiokafka's batch API; acknowledges a batch only when the test says so."""

    def __init__(self):
        self.futures = []
        self.sent = []
        self.client = Client()

    def _ensure_producer(self):
        return self

    def _partition(self, topic, partition, key, value, serialized_key, serialized_value):
        return len(serialized_key or b"") % 2

    def create_batch(self):
        return Batch()

    async def send_batch(self, batch, topic, *, partition):
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        self.sent.append((topic, partition, batch.records))
        return fut


class App:
    def __init__(self):
        self.producer = SlowProducer()


def test_records_go_out_one_batch_per_partition_in_their_order():
    async def scenario():
        emit = Emitter(App())
        for key, value in [("a", b"1"), ("bb", b"2"), ("c", b"3"), ("dd", b"4")]:
            emit.send_raw("t", key, value)
        await emit.drain()
        return emit.app.producer.sent

    assert asyncio.run(scenario()) == [("t", 1, [(b"a", b"1"), (b"c", b"3")]),
                                       ("t", 0, [(b"bb", b"2"), (b"dd", b"4")])]


def test_a_delivered_drain_waits_for_records_another_agent_sent():
    async def scenario():
        emit = Emitter(App())
        emit.send_raw("sku-commands", "X", b"consume")  # the orders agent's output
        await emit.drain()  # the stock agent's drain sends it
        orders_drain = asyncio.ensure_future(emit.drain(delivered=True))
        await asyncio.sleep(0.01)
        assert not orders_drain.done()  # not acknowledged yet: the state must wait
        emit.app.producer.futures[0].set_result("ok")
        await asyncio.wait_for(orders_drain, 1)
        assert emit.unacked == []

    asyncio.run(scenario())


def test_a_failed_send_is_raised_by_the_next_delivered_drain():
    async def scenario():
        emit = Emitter(App())
        emit.send_raw("t", "k", b"v")
        await emit.drain()
        emit.app.producer.futures[0].set_exception(RuntimeError("broker said no"))
        await emit.drain()  # not delivered: keeps the failure
        try:
            await emit.drain(delivered=True)
        except RuntimeError as exc:
            return str(exc)
        return None

    assert asyncio.run(scenario()) == "broker said no"


def test_default_partitioning_is_aiokafkas_own(monkeypatch):
    """The emitter hashes keys itself (streams/produce.py); it must pick the
    partition aiokafka's DefaultPartitioner picks, or a SKU's availability
    and the compacted ATP view would be split over partitions. Asked twice,
    through a key cache small enough here to be cleared many times."""
    from aiokafka.partitioner import DefaultPartitioner

    from stockflow.streams import produce
    from stockflow.streams.produce import partitioner

    monkeypatch.setattr(produce, "PARTITION_CACHE_KEYS", 150)

    class Cluster:
        def partitions_for_topic(self, topic):
            return {5, 0, 3, 1, 2, 4, 7, 6}

    class Keyed(SlowProducer):
        def __init__(self):
            super().__init__()
            self._partitioner = DefaultPartitioner()
            self.client.cluster = Cluster()

        def _partition(self, topic, partition, key, value, serialized_key, serialized_value):
            return self._partitioner(serialized_key, list(range(8)), list(range(8)))

    async def scenario():
        producer = Keyed()
        choose = await partitioner(producer, "t")
        assert choose.__name__ == "choose_keyed"  # the emitter's own hashing, not aiokafka's per-record path
        keys = [f"SKU-{i}|N{i % 50:02d}".encode() for i in range(2000)] + [b"", "é".encode()]
        keys = keys + keys[::-1]
        return [choose(k) for k in keys], [producer._partition("t", None, None, None, k, None) for k in keys]

    ours, theirs = asyncio.run(scenario())
    assert ours == theirs and len(set(ours)) == 8


def test_murmur2_is_kafkas():
    """Kafka's own murmur2 (aiokafka's byte-at-a-time copy of the Java
    client's) and the word-at-a-time one the emitter uses agree on every
    length and byte value."""
    import random

    from aiokafka.partitioner import murmur2 as kafkas

    from stockflow.streams.produce import murmur2

    rng = random.Random(3)
    samples = [bytes(rng.randrange(256) for _ in range(n % 70)) for n in range(700)]
    samples += [b"", b"\xff" * 9, "SKU-\u00e9|N01".encode()]
    assert [murmur2(d) for d in samples] == [kafkas(d) for d in samples]
