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
