"""Records of a partition are handled in offset order from the committed offset, or held back."""
from stockflow.agents.inorder import GAP_PATIENCE_S, RESEEK_EVERY_S, InOrder, Verdict


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_records_before_the_seek_finished_are_held_and_read_again():
    # the chaos suite's case: committed 124, the first fetch (124-126) lost,
    # 127-130 handed over first
    order = InOrder(Clock())
    order.new_generation(6, {"m2": 124})
    assert order.admit("m2", 127) == (Verdict.HOLD, 124)
    assert order.admit("m2", 128) == (Verdict.HOLD, None)  # one seek per hole
    assert [order.admit("m2", o)[0] for o in range(124, 131)] == [Verdict.HANDLE] * 7
    assert order.admit("m2", 129) == (Verdict.SEEN, None)  # a re-fetch of what was handled


def test_partitions_are_independent_and_start_anywhere_without_a_commit():
    order = InOrder(Clock())
    order.new_generation(1, {"a": 10})
    assert order.admit("b", 500)[0] is Verdict.HANDLE  # never committed: first record starts it
    assert order.admit("a", 10)[0] is Verdict.HANDLE
    assert order.admit("b", 502) == (Verdict.HOLD, 501)
    assert order.admit("a", 9)[0] is Verdict.SEEN  # below the commit


def test_a_new_generation_starts_again_at_the_committed_offsets():
    order = InOrder(Clock())
    order.new_generation(1, {"a": 0})
    for o in range(5):
        order.admit("a", o)
    order.new_generation(2, {"a": 3})
    assert order.admit("a", 3)[0] is Verdict.HANDLE  # redelivered: the handlers' idempotency decides
    assert order.admit("a", 5) == (Verdict.HOLD, 4)


def test_a_hole_that_never_fills_is_asked_again_then_jumped():
    clock = Clock()
    order = InOrder(clock)
    order.new_generation(1, {"a": 0})
    assert order.admit("a", 2) == (Verdict.HOLD, 0)
    clock.t = RESEEK_EVERY_S
    assert order.admit("a", 2) == (Verdict.HOLD, 0)
    clock.t = GAP_PATIENCE_S
    assert order.admit("a", 2) == (Verdict.JUMP, None)
    assert order.admit("a", 3)[0] is Verdict.HANDLE


def test_a_hole_whose_later_records_all_came_is_asked_again_on_a_timer():
    # chaos: the seek's records were dropped by Faust, the feed had ended,
    # and no later record came to trigger another seek: the partition stayed held
    clock = Clock()
    order = InOrder(clock)
    order.new_generation(1, {"a": 747})
    assert order.admit("a", 750) == (Verdict.HOLD, 747)
    assert order.due() == []  # just asked
    clock.t = RESEEK_EVERY_S
    assert order.due() == [("a", 747)]
    assert order.due() == []
    assert order.admit("a", 747)[0] is Verdict.HANDLE  # the records came back
    clock.t = 3 * RESEEK_EVERY_S
    assert order.due() == []  # filled: nothing to ask for


def test_a_seek_runs_in_the_consumer_thread():
    """Faust's driver seeks from the calling thread while its fetcher runs in
    the consumer's: the long chaos run crashed the fetcher that way."""
    import asyncio
    from types import SimpleNamespace

    from stockflow.app import seek_in_order

    calls = []

    class Thread:
        def _ensure_consumer(self):
            return SimpleNamespace(seek=lambda tp, offset: calls.append(("seek", tp, offset)))

        async def call_thread(self, fun, *args):
            calls.append("in thread")
            return fun(*args)

    consumer = SimpleNamespace(_thread=Thread(), _read_offset={})
    asyncio.run(seek_in_order(consumer, "tp", 42))
    assert calls == ["in thread", ("seek", "tp", 42)]
    assert consumer._read_offset == {"tp": 42}


def test_a_partition_the_seek_found_no_offset_for_is_asked_about_first():
    # the long chaos run: a seek right after a broker restart found no
    # committed offset (movements:9 committed at 1762); records 1768-1772,
    # fetched before it, were handled, and 1767 then looked applied
    order = InOrder(Clock())
    order.new_generation(13, {"m9": None, "m5": 1429})
    assert order.admit("m9", 1768) == (Verdict.ASK, None)
    assert order.admit("m9", 1768) == (Verdict.ASK, None)  # nothing handled until asked
    order.start("m9", 1762)  # what asking found
    assert order.admit("m9", 1768) == (Verdict.HOLD, 1762)
    assert [order.admit("m9", o)[0] for o in range(1762, 1770)] == [Verdict.HANDLE] * 8
    order.start("m9", 1700)  # a late answer changes nothing once records are handled
    assert order.admit("m9", 1770)[0] is Verdict.HANDLE
    assert order.admit("m5", 1429)[0] is Verdict.HANDLE
    # a fresh group: asking finds the partition's first offset, and it starts there
    order.new_generation(14, {"m9": None})
    order.start("m9", 0)
    assert order.admit("m9", 0)[0] is Verdict.HANDLE


def test_unknown_lists_the_partitions_still_to_ask_about():
    order = InOrder(Clock())
    order.new_generation(3, {"a": None, "b": None, "c": 7})
    assert sorted(order.unknown()) == ["a", "b"]
    order.start("a", 0)
    assert order.unknown() == ["b"]
    assert order.admit("a", 0)[0] is Verdict.HANDLE
    assert order.admit("b", 4) == (Verdict.ASK, None)


def test_an_agent_asks_only_about_its_own_topics():
    from collections import namedtuple

    T = namedtuple("T", "topic partition")
    order = InOrder(Clock(), topics=frozenset({"movements"}))
    order.new_generation(1, {T("movements", 0): None, T("orders", 0): None, T("movements", 1): 5})
    assert order.unknown() == [T("movements", 0)]


def test_offset_zero_needs_no_asking():
    order = InOrder(Clock())
    order.new_generation(1, {"fresh": None, "old": None})
    assert order.admit("fresh", 0)[0] is Verdict.HANDLE  # nothing can come before it
    assert order.admit("fresh", 2) == (Verdict.HOLD, 1)
    assert order.admit("old", 3) == (Verdict.ASK, None)


def test_a_seek_that_finishes_after_a_newer_generations_is_not_recorded():
    """Faust's fetcher seeks on its own when a rebalance stops the flow in
    the middle of a fetch, still in the old generation; when that seek came
    back after the new generation's, its record hid the new one and every
    record of the new generation waited SEEK_WAIT_S (app.py)."""
    import asyncio
    from types import SimpleNamespace

    from faust.transport.consumer import Consumer
    from faust.types import TP

    from stockflow import app as app_mod

    app_mod._remember_each_generations_seek()  # idempotent: the worker installs it too
    tp = TP("m", 0)

    class FakeConsumer:
        """What Faust's ``perform_seek`` touches, with seeks we finish by hand."""

        def __init__(self) -> None:
            self.app = SimpleNamespace(consumer_generation_id=1)
            self._read_offset: dict = {}
            self._committed_offset: dict = {}
            self.gates = {1: asyncio.Event(), 2: asyncio.Event()}
            self.found = {1: 3, 2: 7}

        async def seek_to_committed(self):
            generation = self.app.consumer_generation_id
            await self.gates[generation].wait()
            got = {tp: self.found[generation]}
            app_mod._SEEK_FOUND.get().update(got)  # what the driver's wrapper records
            return got

    async def run() -> list:
        consumer = FakeConsumer()
        old = asyncio.ensure_future(Consumer.perform_seek(consumer))  # generation 1, slow
        await asyncio.sleep(0)
        consumer.app.consumer_generation_id = 2
        new = asyncio.ensure_future(Consumer.perform_seek(consumer))
        await asyncio.sleep(0)
        consumer.gates[2].set()
        await new
        seen = [app_mod.seeked_generation(consumer)]
        consumer.gates[1].set()
        await old
        seen.append(app_mod.seeked_generation(consumer))
        return seen

    after_new, after_old = asyncio.run(run())
    assert after_new == (2, {tp: 7}, 1)
    assert after_old == after_new  # the late generation-1 seek changed nothing
