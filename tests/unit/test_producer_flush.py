"""Faust's send buffer must be empty before offsets are committed.

Its own flush gave up after 0.1 s without progress, so a slow send (a loaded
machine, a restarting broker) let the commit run ahead of table changelog
records, and a SIGKILL then lost them (found by tests/chaos).
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.transport.producer import ProducerBuffer

from stockflow.app import _make_buffer_flush_drain


class SlowChannel:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: list[int] = []

    async def publish_message(self, fut, wait: bool = False) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append(fut.n)


def test_flush_waits_for_every_slow_send():
    _make_buffer_flush_drain()

    async def run() -> list[int]:
        channel = SlowChannel(0.3)  # each send slower than Faust's 0.1 s patience
        buf = ProducerBuffer()
        buf.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
        await buf.start()
        try:
            for n in range(4):
                buf.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=channel)))
            await asyncio.wait_for(buf.flush(), timeout=10)
            return list(channel.sent)
        finally:
            await buf.stop()

    assert asyncio.run(run()) == [0, 1, 2, 3]


def test_flush_does_not_wait_for_records_put_after_it_began():
    _make_buffer_flush_drain()

    async def run() -> tuple[list[int], float]:
        channel = SlowChannel(0.2)
        buf = ProducerBuffer()
        buf.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
        await buf.start()
        try:
            buf.put(SimpleNamespace(n=0, message=SimpleNamespace(channel=channel)))

            async def keep_writing() -> None:  # agents go on writing during a commit
                for n in range(1, 30):
                    buf.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=channel)))
                    await asyncio.sleep(0.05)

            writer = asyncio.ensure_future(keep_writing())
            t0 = asyncio.get_running_loop().time()
            await asyncio.wait_for(buf.flush(), timeout=10)
            took = asyncio.get_running_loop().time() - t0
            sent = list(channel.sent)
            writer.cancel()
            await asyncio.wait_for(buf.flush(), timeout=20)  # the rest, before stopping
            return sent, took
        finally:
            await buf.stop()

    sent, took = asyncio.run(run())
    assert sent[0] == 0 and took < 1.5  # record 0 out; not held up by the 29 written after
