"""The movement envelope (many movements of one SKU in one record): how it is
told from a single movement, validated, and unpacked. Pure."""
from __future__ import annotations

import orjson
import pytest

from stockflow.domain.atp import SkuState, apply_movement
from stockflow.streams.codec import decode
from stockflow.streams.events import MAX_BATCH_MOVEMENTS, InventoryMovement, InventoryMovementBatch
from stockflow.streams.exceptions import DecodeError

AT = "2026-11-24T08:00:00Z"


def envelope(lines, **kw) -> bytes:
    return orjson.dumps({"event_id": "up-7", "occurred_at": AT, "sku": "SKU-1", "movements": lines, **kw})


def single(**kw) -> bytes:
    return orjson.dumps({"event_id": "m1", "occurred_at": AT, "sku": "SKU-1", "node_id": "S1", "type": "receipt",
                         "qty": 4, **kw})


def test_single_movements_are_not_envelopes_even_when_a_value_says_movements():
    assert not InventoryMovementBatch.looks_like(single())
    # the word as a value (or escaped inside one) is not the key
    assert not InventoryMovementBatch.looks_like(single(reason="movements"))
    assert not InventoryMovementBatch.looks_like(single(reason='see "movements" file'))
    assert not InventoryMovementBatch.looks_like(b'{"movements" broken json')
    assert InventoryMovementBatch.looks_like(envelope([{"node_id": "S1", "type": "count", "qty": 1}]))
    # an envelope whose list is broken is still an envelope: it gets the envelope's errors
    assert InventoryMovementBatch.looks_like(envelope(5))


def test_envelope_unpacks_to_single_movements_named_after_it():
    raw = envelope([{"node_id": "S1", "type": "receipt", "qty": 10},
                    {"node_id": "S2", "type": "expected", "qty": 5, "supply_id": "PO-1", "eta": AT},
                    {"node_id": "S1", "type": "sale", "qty": 3, "event_id": "ignored", "sku": "ignored"}])
    b = decode(raw, InventoryMovementBatch, 1 << 20)
    moves = [b.movement(i) for i in range(len(b.movements))]
    assert [m.event_id for m in moves] == ["up-7/0", "up-7/1", "up-7/2"]
    assert {m.sku for m in moves} == {"SKU-1"}
    assert all(m.occurred_at == b.occurred_at for m in moves)
    assert moves[1].supply_id == "PO-1" and moves[1].eta == b.occurred_at
    state = SkuState("SKU-1")
    for m in moves:
        state = apply_movement(state, m, "t:0", 12).state
    assert state.node("S1").on_hand == 7 and state.supply["PO-1"].qty == 5
    # a line unpacked and sent on its own is a valid single movement
    again = decode(moves[2].model_dump_json().encode(), InventoryMovement, 1 << 20)
    assert again.event_id == "up-7/2" and again.qty == 3


@pytest.mark.parametrize("lines, where", [
    ([], "movements"),
    ([{"node_id": "S1", "type": "receipt", "qty": "5"}], "movements.0.qty"),
    ([{"node_id": "S1", "type": "receipt", "qty": 2}, {"node_id": "S1", "type": "sale", "qty": -1}], "movements.1"),
    ([{"node_id": "S1", "type": "teleport", "qty": 1}], "movements.0.type"),
    ([{"type": "count", "qty": 1}], "movements.0.node_id"),
    ([{"node_id": "S1", "type": "count", "qty": 1}] * (MAX_BATCH_MOVEMENTS + 1), "movements"),
    ("S1 receipt 5", "movements"),
])
def test_a_bad_line_fails_the_whole_envelope_with_its_place(lines, where):
    with pytest.raises(DecodeError) as err:
        decode(envelope(lines), InventoryMovementBatch, 1 << 20)
    assert err.value.reason == "invalid_fields"
    assert err.value.detail.startswith(where), err.value.detail


def test_envelope_needs_its_own_event_id_and_sku():
    raw = orjson.dumps({"occurred_at": AT, "movements": [{"node_id": "S1", "type": "count", "qty": 1}]})
    with pytest.raises(DecodeError) as err:
        decode(raw, InventoryMovementBatch, 1 << 20)
    assert "event_id" in err.value.detail and "sku" in err.value.detail
