"""An order's decisions are written with the records they send, and a record
of that batch seen again sends the same records instead of deciding anew."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import orjson

from stockflow.agents import orders as agent
from stockflow.agents.emit import Emitter
from stockflow.domain import orders as flow
from stockflow.agents.batches import _mark_sent
from stockflow.streams.topics import Topics
from stockflow.tables.stock import SeenTable

TOPICS = Topics("t")
UPDATES = TOPICS.fulfillment_updates


class Table(dict):
    def get(self, key):  # noqa: D401 - the OrderTable interface
        return json.loads(json.dumps(super().get(key))) if key in self else None

    def put(self, key, state):
        self[key] = json.loads(json.dumps(state))  # what a JSON changelog keeps


def runtime():
    # Nothing here drains: records stay in emit.pending, where the tests read them.
    emit = Emitter(SimpleNamespace(producer=None))
    emit.deadletter_topic = TOPICS.deadletter
    return SimpleNamespace(
        emit=emit, orders=Table(), topics=TOPICS, settings=SimpleNamespace(max_payload_bytes=1 << 20),
        seen=SeenTable({}), node_view=SimpleNamespace(nodes={}),
    )


def event(topic: str, partition: int, offset: int, key: str = "o1", value: dict | None = None):
    msg = SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key.encode(),
                          value=orjson.dumps(value or {}), timestamp=0.0)
    return Event(msg)


def shipped(event_id: str) -> dict:
    return {"event_id": event_id, "occurred_at": "2026-11-23T00:00:00Z", "order_id": "o1",
            "shipment_id": "o1-S1", "node_id": "DC1", "type": "shipped",
            "lines": [{"line_id": "L1", "sku": "A", "qty": 1}]}


class Event:
    """A consumed record as agents see it (weak-referenceable, like Faust's)."""

    def __init__(self, message):
        self.message = message


flush = agent.flush


def first_batch(rt):
    """Order o1 decides on an update: a consume command to its SKU's owner."""
    batch = agent.OrderBatch()
    state = {"order_id": "o1", "offsets": {}}
    ev = event(UPDATES, 2, 7)
    cmd = {"cmd": "consume", "cmd_id": "ship-1:L1", "order_id": "o1", "sku": "A", "node_id": "DC1", "qty": 1}
    agent.write(rt, flow.Step(dict(state), commands=[cmd]), ev, batch, f"{UPDATES}:2", state)
    return batch


def test_records_wait_for_the_state_that_carries_them():
    rt = runtime()
    batch = first_batch(rt)
    assert rt.emit.pending == []  # nothing may leave before the state is written
    flush(rt, batch)
    stored = rt.orders.get("o1")
    assert stored["outbox"]["inputs"] == [[f"{UPDATES}:2", 7]]
    assert stored["offsets"] == {f"{UPDATES}:2": 7}
    batch.release(rt.emit)
    assert [(t, k, json.loads(v)["cmd_id"]) for t, k, v in rt.emit.pending] == \
        [(TOPICS.sku_commands, b"A", "ship-1:L1")]


def test_a_record_of_the_stored_batch_sends_the_same_bytes_again_without_deciding():
    rt = runtime()
    first = first_batch(rt)
    flush(rt, first)
    first.release(rt.emit)
    sent_first = list(rt.emit.pending)
    rt.emit.pending.clear()  # the process dies here: written, never sent

    again = agent.OrderBatch()
    # the redelivered update would now be refused (say a revocation got in
    # first); it must not be decided again
    asyncio.run(agent.handle_update(rt, event(UPDATES, 2, 7, value=shipped("ship-1")), again))
    assert again.resent == {"o1"}
    flush(rt, again)
    again.release(rt.emit)
    assert rt.emit.pending == sent_first
    # and the stored outbox still holds them, should this batch die too
    assert rt.orders.get("o1")["outbox"]["records"] == [[t, k.decode(), v.decode()] for t, k, v in sent_first]


def test_records_known_to_be_acknowledged_are_not_sent_again():
    rt = runtime()
    first = first_batch(rt)
    flush(rt, first)
    first.release(rt.emit)
    rt.emit.pending.clear()
    _mark_sent(rt, [event(UPDATES, 2, 7)])  # the drain came back: all acknowledged
    assert rt.seen.sent_through(2) == {f"{UPDATES}:2": 7}

    again = agent.OrderBatch()
    asyncio.run(agent.handle_update(rt, event(UPDATES, 2, 7, value=shipped("ship-1")), again))
    assert again.resent == set() and again.outbox == {}  # decided before, and out: nothing to do
    assert rt.emit.pending == []


def test_a_batch_reads_a_partitions_sent_mark_once_and_the_next_batch_reads_it_again():
    rt = runtime()
    for order_id in ("o1", "o2"):  # two orders of partition 2, each with stored records
        batch = agent.OrderBatch()
        cmd = {"cmd": "consume", "cmd_id": f"{order_id}:L1", "order_id": order_id, "sku": "A", "node_id": "DC1",
               "qty": 1}
        agent.write(rt, flow.Step({"order_id": order_id, "offsets": {}}, commands=[cmd]),
                    event(UPDATES, 2, 7 if order_id == "o1" else 8, key=order_id), batch, f"{UPDATES}:2",
                    {"order_id": order_id, "offsets": {}})
        flush(rt, batch)
    reads = []
    sent_through = rt.seen.sent_through
    rt.seen.sent_through = lambda partition: reads.append(partition) or sent_through(partition)

    one = agent.OrderBatch()
    one.state(rt, "o1"), one.state(rt, "o2")
    assert reads == [2] and one.resent == {"o1", "o2"}  # neither known to be sent

    _mark_sent(rt, [event(UPDATES, 2, 8)])  # written at the end of the batch that sent them
    reads.clear()
    two = agent.OrderBatch()
    two.state(rt, "o1"), two.state(rt, "o2")
    assert reads == [2] and two.resent == set()  # the new mark, read by the next batch


def test_a_record_of_the_other_topic_first_still_sends_the_stored_records():
    # after a crash an answer of the order's other topic came before the
    # redelivered update; its decision replaced the stored records, which
    # were never sent (the short chaos run lost a dead letter this way)
    rt = runtime()
    first = first_batch(rt)
    flush(rt, first)
    first.release(rt.emit)
    sent_first = [[t, k.decode(), v.decode()] for t, k, v in rt.emit.pending]
    rt.emit.pending.clear()  # the process dies: written, never sent

    later = agent.OrderBatch()
    state = later.state(rt, "o1")  # an answer of the order-events topic, read first
    answer = {"cmd": "release", "cmd_id": "r-2", "order_id": "o1", "sku": "A", "nodes": {"DC1": 1}}
    ev = event(TOPICS.order_events, 2, 40)
    agent.write(rt, flow.Step(dict(state), commands=[answer]), ev, later, f"{TOPICS.order_events}:2", state)
    flush(rt, later)
    later.release(rt.emit)
    out = [[t, k.decode(), v.decode()] for t, k, v in rt.emit.pending]
    assert out[:1] == sent_first and json.loads(out[1][2])["cmd_id"] == "r-2"
    stored = rt.orders.get("o1")["outbox"]
    assert stored["records"] == out  # kept until known to be sent
    assert [f"{UPDATES}:2", 7] in stored["inputs"]
    # the update redelivered afterwards is not decided again
    again = agent.OrderBatch()
    again.state(rt, "o1")
    assert again.replayed(rt, "o1", f"{UPDATES}:2", 7, event(UPDATES, 2, 7))


def test_a_record_outside_the_stored_batch_is_decided_as_usual():
    rt = runtime()
    batch = first_batch(rt)
    flush(rt, batch)
    later = agent.OrderBatch()
    later.state(rt, "o1")
    assert not later.replayed(rt, "o1", f"{UPDATES}:2", 8, event(UPDATES, 2, 8))
    assert not later.replayed(rt, "o1", f"{TOPICS.order_events}:2", 7, event(TOPICS.order_events, 2, 7))


def test_a_refusal_of_a_known_order_is_kept_with_it():
    rt = runtime()
    state = {"order_id": "o1", "offsets": {}}
    batch = agent.OrderBatch()
    step = flow.Step(None, dead_letter=("invalid_transition", "shipped of 1 x L1 exceeds what shipment o1-S1 holds"))
    agent.write(rt, step, event(UPDATES, 2, 9), batch, f"{UPDATES}:2", state)
    assert rt.emit.pending == []
    flush(rt, batch)
    stored = rt.orders.get("o1")
    assert stored["offsets"] == {f"{UPDATES}:2": 9}  # decided: a redelivery does not decide again
    [(topic, key, value)] = stored["outbox"]["records"]
    assert topic == TOPICS.deadletter and json.loads(value)["error"] == "invalid_transition"


def test_a_refusal_without_an_order_goes_out_at_once():
    rt = runtime()
    batch = agent.OrderBatch()
    step = flow.Step(None, dead_letter=("unknown_node", "pickup node 'X' is unknown"))
    agent.write(rt, step, event(TOPICS.order_commands, 0, 1), batch, f"{TOPICS.order_commands}:0", None)
    assert batch.outbox == {} and len(rt.emit.pending) == 1


def test_a_batch_is_full_once_one_keys_records_reach_the_budget(monkeypatch):
    """agents/batches.py ends a batch early when ``full``: one key's records
    live in its state's changelog record, which Kafka limits to 1 MB."""
    from stockflow.agents import outbox

    monkeypatch.setattr(outbox, "OUTBOX_BUDGET", 1000)
    box = outbox.Outbox()
    for i in range(9):  # 900 bytes spread over keys: no key is near it
        box.send(f"k{i % 3}", "t", "r", b"x" * 100)
    assert not box.full()
    box.send("k0", "t", "r", b"y" * 600)  # k0 now holds 900
    assert not box.full()
    box.send("k0", "t", "r", b"z" * 100)
    assert box.full() and box.box_bytes["k0"] == 1000
    # a stored outbox sent again counts toward its key too
    again = outbox.Outbox()
    rt = SimpleNamespace(seen=SimpleNamespace(sent_through=lambda partition: {}))
    again.remember_stored(rt, "k9", {"inputs": [["t:0", 5]], "records": [["t", "r", "w" * 1000]]})
    assert again.full()
