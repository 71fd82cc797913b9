"""Agents share one Emitter: a delivered drain waits for every record put before it, whoever sent it."""
import asyncio

from stockflow.agents.emit import Emitter


class SlowProducer:
    """Acknowledges a record only when the test says so."""

    def __init__(self):
        self.futures = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


class App:
    def __init__(self):
        self.producer = SlowProducer()


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
