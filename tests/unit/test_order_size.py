"""An order's document, with the records its batch decided, is one changelog
record: it must stay under Kafka's 1 MB record limit, whose breach stops the
worker on every restart. The create's size bound (streams/events.py) keeps
it there; these tests build the largest creates it allows and measure the
records as the orders agent writes them."""
from datetime import datetime, timezone

import orjson
import pytest

from stockflow.agents.orders import OUTPUT_MODELS
from stockflow.agents.outbox import Outbox
from stockflow.domain import orders as flow
from stockflow.streams import events as ev
from stockflow.streams.codec import DecodeError, decode, encode_output
from stockflow.tables.writes import encode_value

AT = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
KAFKA_RECORD_LIMIT = 1_048_576
# Room left for what the order gathers after its decision (shipments'
# shipped units, up to 200 remembered update ids of up to 200 characters,
# a refusal): the decision's record must stay under this.
DECISION_BUDGET = 768 * 1024


def _create(n_lines: int, id_len: int) -> bytes:
    pad = "x" * max(0, id_len - 4)
    lines = [{"line_id": f"L{i:03d}{pad}"[:id_len], "sku": f"S{i:03d}{pad}"[:id_len], "qty": 1}
             for i in range(n_lines)]
    return orjson.dumps({
        "event_id": "e" * 200, "occurred_at": AT.isoformat(), "type": "create", "order_id": "O" * 200,
        "channel": "web", "customer": {"customer_id": "c" * 200, "email": "a" * 320, "phone": "1" * 40},
        "lines": lines,
        "delivery": {"method": "ship", "address": {"lat": 50.0, "lon": 10.0, "postal_code": "p" * 40,
                                                    "country": "c" * 60}}})


def _largest(id_len: int) -> int:
    """The most lines of ids this long that the bound lets through."""
    return min(500, (ev.MAX_CREATE_SIZE - 200) // (2 * id_len + ev.LINE_SHARE))


def _record(state: dict, steps: list[flow.Step]) -> int:
    """Bytes of the state written with the records of ``steps`` in its
    outbox, as agents/orders.py writes them."""
    box = Outbox()
    order_id = state["order_id"]
    for step in steps:
        for cmd in step.commands:
            box.send(order_id, "internal.sku-commands", cmd["sku"], orjson.dumps(cmd))
        for logical, key, body in step.outputs:
            box.send(order_id, logical, key, encode_output(OUTPUT_MODELS[logical], body))
    box.decided(order_id, "orders.commands:0", 1)
    return len(encode_value({**state, "outbox": box.box_to_store(order_id)}))


@pytest.mark.parametrize("id_len", [200, 80, 20, 4])
def test_the_largest_create_allowed_decides_within_the_record_limit(id_len):
    n = _largest(id_len)
    cmd = decode(_create(n, id_len), ev.OrderCommand, 1 << 20)
    # every line at its own node: the most shipments, requests and distances
    nodes = {f"N{i:03d}": ev.Node(node_id=f"N{i:03d}", kind="store", lat=50 + i / 100, lon=10, services=("ship",))
             for i in range(n)}
    view = {(ln.sku, f"N{i:03d}"): 1 for i, ln in enumerate(cmd.lines)}
    created = flow.on_create(None, cmd, view, nodes, 50, AT)
    state = created.state
    assert len(created.commands) == n
    steps = []
    for command in created.commands:
        step = flow.on_reserved(state, {"kind": "reserved", "order_id": state["order_id"], "attempt": 1,
                                        "sku": command["sku"], "granted": command["want"], "atp": {},
                                        "supply": []}, {}, nodes, 50, AT)
        state = step.state
        steps.append(step)
    assert state["status"] == "allocated" and len(state["shipments"]) == n
    at_create = _record(created.state, [created])
    # the decision's batch, and, worst, a crash before the create's records
    # were known sent: the stored ones go again in the same outbox
    at_decision = _record(state, [created, *steps])
    assert at_create < DECISION_BUDGET, at_create
    assert at_decision < DECISION_BUDGET, (n, at_decision)


def test_a_create_past_the_bound_is_refused_with_its_reason():
    n = _largest(200) + 1
    with pytest.raises(DecodeError) as refused:
        decode(_create(n, 200), ev.OrderCommand, 1 << 20)
    assert refused.value.reason == "invalid_fields"
    assert "create too large to keep" in refused.value.detail
    # and the refusal is about size alone: the same lines in a smaller order pass
    assert decode(_create(n - 1, 200), ev.OrderCommand, 1 << 20).lines


def test_the_bound_leaves_room_for_large_orders():
    # 200 lines of 20-character ids and SKUs, 240 of 6-character ones
    assert len(decode(_create(200, 20), ev.OrderCommand, 1 << 20).lines) == 200
    assert len(decode(_create(240, 6), ev.OrderCommand, 1 << 20).lines) == 240
    assert KAFKA_RECORD_LIMIT - DECISION_BUDGET >= 256 * 1024
