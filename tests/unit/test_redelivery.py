"""A record re-run on redelivery must not make later, applied records look new."""
from __future__ import annotations

import json
from dataclasses import replace

from stockflow.domain import reservations as owner
from stockflow.domain.atp import SkuState, advance, apply_movement
from stockflow.domain.idempotency import Seen, classify, position
from stockflow.streams.events import InventoryMovement, Node

NODES = {"DC2": Node(node_id="DC2", kind="dc", lat=52.4, lon=9.7, services=("ship",))}
RESERVE = {"cmd": "reserve", "cmd_id": "o1:r1", "order_id": "o1", "attempt": 1, "sku": "CH028", "want": {"DC2": 1}}
CONSUME = {"cmd": "consume", "cmd_id": "ship-1:L1", "order_id": "o1", "sku": "CH028", "node_id": "DC2", "qty": 1}


def run(state: SkuState, cmd: dict, offset: int) -> SkuState:
    """What the stock agent does with a command: apply it, advance the offsets."""
    fn = owner.reserve if cmd["cmd"] == "reserve" else owner.consume
    result = fn(state, cmd, NODES)
    return replace(result.state, offsets=advance(result.state.offsets, "cmds:3", offset))


def test_an_older_offset_written_again_keeps_a_later_consume_applied():
    # the sequence the chaos suite caught: reserve @78, consume @82, then a
    # rebalance redelivers both and the reserve was re-run, writing offset 78
    # over 82, so the consume applied twice. (The agent no longer re-runs a
    # redelivered reserve; the offsets must hold even if something does.)
    count = InventoryMovement.model_validate_json(json.dumps({
        "event_id": "c", "occurred_at": "2026-11-23T00:00:00Z", "sku": "CH028", "node_id": "DC2",
        "type": "count", "qty": 28}))
    state = apply_movement(SkuState("CH028"), count, "moves:3", 0).state
    state = run(run(state, RESERVE, 78), CONSUME, 82)
    assert (state.node("DC2").on_hand, state.node("DC2").reserved) == (27, 0)
    state = run(state, RESERVE, 78)
    here = position("cmds", 3, 82)
    assert classify(here, here, state.applied("cmds:3", 82)) is Seen.REDELIVERED
    assert state.node("DC2").on_hand == 27
