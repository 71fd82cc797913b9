"""tables/replica.py against the real broker: how long a view's fetch is
parked costs an idle view its requests, never a new record its freshness."""
from __future__ import annotations

import asyncio
import time

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stockflow.tables.replica import AtpView, NodeView

from ..support import unique


def _topic(bootstrap: str) -> str:
    name = unique("replica")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-replica")
    try:
        admin.create_topics([NewTopic(name, 8, 1)])
    finally:
        admin.close()
    return name


def _follow(view, idle_s: float, produce=None) -> tuple[int, float | None]:
    """Run the view until ready, count its fetch requests over ``idle_s``,
    then (with ``produce``) the seconds until it holds the produced record."""

    async def main():
        task = asyncio.ensure_future(view.run())
        try:
            await asyncio.wait_for(view.ready.wait(), 60)
            fetcher = view._consumer._fetcher
            calls = [0]
            proc = fetcher._proc_fetch_request

            async def counted(*args, **kwargs):
                calls[0] += 1
                return await proc(*args, **kwargs)

            fetcher._proc_fetch_request = counted
            await asyncio.sleep(idle_s)
            fetches = calls[0]
            took = None
            if produce is not None:
                t0 = time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, produce)
                for _ in range(200):  # bounded: 10 s
                    if view.by_sku.get("S1", {}).get("N1") == 7:
                        took = time.monotonic() - t0
                        break
                    await asyncio.sleep(0.05)
            return fetches, took
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(main())


def test_an_idle_atp_view_asks_the_broker_a_few_times_a_second(kafka_bootstrap):
    topic = _topic(kafka_bootstrap)
    fetches, _ = _follow(AtpView(topic, {"bootstrap_servers": kafka_bootstrap}), 3.0)
    # 500 ms parked: about 6 in 3 s. At the 20 ms the node view keeps, about 150.
    assert 1 <= fetches <= 15, fetches
    assert NodeView.fetch_max_wait_ms <= 50  # its catch_up's requests queue behind a parked fetch


def test_a_new_record_answers_a_parked_fetch_at_once(kafka_bootstrap):
    topic = _topic(kafka_bootstrap)

    class Patient(AtpView):
        fetch_max_wait_ms = 8_000  # far past the bound below: only new data can answer the fetch in time

    def produce():
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        try:
            producer.send(topic, key=b"S1|N1", value=b"7")
            producer.flush(10)
        finally:
            producer.close(5)

    fetches, took = _follow(Patient(topic, {"bootstrap_servers": kafka_bootstrap}), 1.0, produce)
    assert fetches <= 2, fetches  # parked the whole second
    assert took is not None and took < 4.0, took
