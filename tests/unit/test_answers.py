"""The SKU owners' answers to one order travel as one record per stock batch
(streams/answers.py), and the order decides the same as from one record each."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import orjson
import pytest

from stockflow.agents import orders as agent
from stockflow.agents.inventory import StockBatch
from stockflow.domain import orders as flow
from stockflow.streams import answers
from stockflow.streams.exceptions import DecodeError

from .test_orders_flow import AT, NODES, create, reply
from .test_outbox import TOPICS, Event, runtime

ANSWERS = TOPICS.order_events


def answer(order_id: str, sku: str, attempt: int = 1) -> dict:
    return {"kind": "reserved", "order_id": order_id, "attempt": attempt, "sku": sku, "granted": {"A": 1},
            "atp": {"A": 4}, "supply": []}


def test_a_lone_answer_goes_byte_for_byte():
    text = orjson.dumps(answer("o1", "X")).decode()
    assert answers.pack("o1", [text]) == text.encode()
    assert answers.unpack(text.encode()) == ("o1", [answer("o1", "X")])


def test_several_answers_go_as_one_record_in_their_order():
    texts = [orjson.dumps(answer("o1", s)).decode() for s in ("Y", "X", "Z")]
    raw = answers.pack("o1", texts)
    assert json.loads(raw)["order_id"] == "o1"  # what the bench's hops read of it
    assert answers.unpack(raw) == ("o1", [answer("o1", s) for s in ("Y", "X", "Z")])


@pytest.mark.parametrize("raw", [
    b"", b"\xff\xfe", b"not json", b"[1,2]", b"{}", b'{"order_id": 7, "kind": "reserved"}',
    b'{"order_id": "o1", "kind": "answers", "answers": {}}',
    b'{"order_id": "o1", "kind": "answers", "answers": []}',
    b'{"order_id": "o1", "kind": "answers", "answers": [1]}',
    b'{"order_id": "o1", "kind": "answers", "answers": [{"order_id": "o2", "kind": "reserved"}]}',
    b'{"order_id": "o1", "kind": "answers", "answers": [{"order_id": "o1", "kind": "answers"}]}',
    b'{"order_id": "o1", "kind": "shipped"}',
    # what the order's side reads, missing or of another type
    b'{"order_id": "o1", "kind": "reserved", "attempt": 1, "granted": {}}',
    b'{"order_id": "o1", "kind": "reserved", "sku": "X", "attempt": "1", "granted": {}}',
    b'{"order_id": "o1", "kind": "reserved", "sku": "X", "attempt": true, "granted": {}}',
    b'{"order_id": "o1", "kind": "reserved", "sku": "X", "attempt": 1, "granted": {"A": "2"}}',
    b'{"order_id": "o1", "kind": "revoked", "sku": "X", "node_id": "A", "qty": 1.5, "revoke_id": "r"}',
    b'{"order_id": "o1", "kind": "backorder_filled", "sku": "X", "line_id": "L1", "nodes": [], "fill_id": "f"}',
])
def test_a_record_that_is_not_ours_is_refused_whole(raw):
    with pytest.raises(DecodeError) as exc:
        answers.unpack(raw)
    assert exc.value.reason == "bad_internal_event"


def test_every_answer_the_owners_write_is_taken():
    """The shapes domain/reservations.py builds pass the checks."""
    from stockflow.domain.atp import Backorder, NodeStock, SkuState
    from stockflow.domain import reservations as owner
    from stockflow.streams.events import Node

    nodes = {"A": Node(node_id="A", kind="store", lat=52.5, lon=13.4, services=("ship",))}
    state = SkuState("X", stock={"A": NodeStock(5, 0)})
    reserved = owner.reserve(state, {"order_id": "o1", "attempt": 1, "want": {"A": 2}}, nodes)
    revoked = owner.revoke_shortage(evolve_stock(reserved.state, NodeStock(0, 2)), ("A",), cause="c")
    waiting = SkuState("X", stock={"A": NodeStock(3, 0)},
                       backorders=(Backorder("2026-12-07T00:00:00Z", "o1", "L1", 1, "ship", lat=52.5, lon=13.4),))
    filled = owner.fill_backorders(waiting, nodes, "c", lambda sku, b, free: {"A": 1})
    replies = [*reserved.replies, *revoked.replies, *filled.replies]
    assert [r["kind"] for r in replies] == ["reserved", "revoked", "backorder_filled"]
    raw = answers.pack("o1", [orjson.dumps(r).decode() for r in replies])
    assert answers.unpack(raw) == ("o1", json.loads(orjson.dumps(replies)))


def evolve_stock(state, node_stock):
    from stockflow.domain.atp import evolve

    return evolve(state, stock={"A": node_stock})


def test_a_stock_batch_sends_one_record_per_order():
    rt = runtime()
    batch = StockBatch()
    for sku, order_id in (("X", "o1"), ("Y", "o2"), ("Y", "o1")):
        batch.send(sku, ANSWERS, order_id, orjson.dumps(answer(order_id, sku)))
    batch.release(rt.emit)
    sent = {k.decode(): answers.unpack(v)[1] for t, k, v in rt.emit.pending if t == ANSWERS}
    assert len(rt.emit.pending) == 2
    assert sent == {"o1": [answer("o1", "X"), answer("o1", "Y")], "o2": [answer("o2", "Y")]}
    # each SKU's outbox still holds its own answers, for a re-send after a crash
    assert [[r[1] for r in batch.outbox[s]] for s in ("X", "Y")] == [["o1"], ["o2", "o1"]]


class View:
    """The replicated ATP view as the orders agent uses it (tables/replica.py)."""

    def __init__(self) -> None:
        self.atp: dict[tuple[str, str], int] = {}

    def update(self, sku, by_node):
        for node_id, q in by_node.items():
            self.atp[(sku, node_id)] = q

    def for_skus(self, skus):
        return {k: q for k, q in self.atp.items() if k[0] in skus}


def order_runtime():
    rt = runtime()
    rt.node_view = SimpleNamespace(nodes=NODES)
    rt.atp_view = View()
    rt.capacity_view = SimpleNamespace(left=lambda nodes: {})
    rt.settings.same_day_radius_km = 50.0
    step = flow.on_create(None, create(lines=(("X", 1), ("Y", 1))), {("X", "A"): 5, ("Y", "A"): 5}, NODES, 50, AT)
    assert step.state["pending"] == ["X", "Y"]
    rt.orders.put("o1", step.state)
    return rt, step


def feed(rt, offset: int, raw: bytes) -> agent.OrderBatch:
    batch = agent.OrderBatch()
    msg = SimpleNamespace(topic=ANSWERS, partition=1, offset=offset, key=b"o1", value=raw, timestamp=0.0)
    asyncio.run(agent.handle_reply(rt, Event(msg), batch))
    agent.flush(rt, batch)
    batch.release(rt.emit)
    return batch


def decided(rt) -> list[tuple[str, dict]]:
    """What the order sent, less the clock's reading in each."""
    out = []
    for t, _, v in rt.emit.pending:
        if t != ANSWERS:
            body = json.loads(v)
            body.pop("occurred_at", None)
            out.append((t, body))
    return out


def test_an_order_decides_the_same_from_one_record_as_from_one_each():
    one_each, step = order_runtime()
    texts = [orjson.dumps(reply(step, s, {"A": 1})).decode() for s in ("X", "Y")]
    for offset, text in enumerate(texts):
        feed(one_each, offset, text.encode())
    together, _ = order_runtime()
    batch = feed(together, 0, answers.pack("o1", texts))

    state = together.orders.get("o1")
    assert state["status"] == "allocated" and state["pending"] == []
    assert [t for t, _ in decided(together)].count(TOPICS.allocations) == 1
    assert decided(together) == decided(one_each)
    assert batch.inputs == {"o1": [[f"{ANSWERS}:1", 0]]}  # the record's decisions, listed once
    apart = one_each.orders.get("o1")
    assert {k: v for k, v in state.items() if k not in ("offsets", "outbox")} == \
        {k: v for k, v in apart.items() if k not in ("offsets", "outbox")}


def test_a_bad_answers_record_is_dead_lettered_and_changes_nothing():
    rt, step = order_runtime()
    good = orjson.dumps(reply(step, "X", {"A": 1})).decode()
    bad = answers.pack("o1", [good, '{"order_id": "o1", "kind": "nonsense"}'])
    feed(rt, 0, bad)
    assert rt.orders.get("o1")["pending"] == ["X", "Y"]  # the good answer was not applied either
    [(topic, letter)] = decided(rt)
    assert topic == TOPICS.deadletter and letter["error"] == "bad_internal_event"


def test_the_view_is_built_only_for_a_replan_and_then_once():
    built = []
    later = agent.Later(lambda: built.append(1) or {("X", "A"): 3})
    assert built == []
    assert later.get(("X", "A")) == 3 and dict(later) == {("X", "A"): 3} and len(later) == 1
    assert built == [1]


def test_a_short_answer_replans_on_the_owners_fresher_figures():
    rt, step = order_runtime()
    rt.atp_view.update("Y", {"A": 5})
    # X's owner had nothing left at A, but says B holds 2
    short = dict(reply(step, "X", {}), atp={"A": 0, "B": 2})
    feed(rt, 0, answers.pack("o1", [orjson.dumps(short).decode(),
                                    orjson.dumps(reply(step, "Y", {"A": 1})).decode()]))
    state = rt.orders.get("o1")
    assert state["attempt"] == 2 and state["phase"] == "reserving"
    asked = [json.loads(v) for t, _, v in rt.emit.pending if t == TOPICS.sku_commands]
    # X from B, the only node its owner says has any; Y keeps what it holds at A
    assert {c["sku"]: c["want"] for c in asked} == {"X": {"B": 1}, "Y": {"A": 1}}
    assert {c["attempt"] for c in asked} == {2}
