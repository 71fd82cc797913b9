import pytest

from stockflow.streams.codec import decode, encode, payload_text
from stockflow.streams.events import InventoryMovement, Node, OrderCommand
from stockflow.streams.exceptions import DecodeError

GOOD = b'{"event_id":"e1","occurred_at":"2026-11-22T10:00:00Z","sku":"A","node_id":"N","type":"sale","qty":3}'


def reason(raw, model=InventoryMovement, limit=10_000):
    with pytest.raises(DecodeError) as exc:
        decode(raw, model, limit)
    return exc.value.reason


def test_good_movement_decodes_and_ignores_unknown_fields():
    m = decode(GOOD[:-1] + b',"new_optional":1}', InventoryMovement, 10_000)
    assert (m.sku, m.node_id, m.type, m.qty) == ("A", "N", "sale", 3)


@pytest.mark.parametrize(
    "raw,expected",
    [
        (None, "empty"),
        (b"not json", "not_json"),
        (b"\xff\xfe\x00", "not_json"),
        (b"[1,2]", "not_object"),
        (b'"text"', "not_object"),
        (b"{}", "invalid_fields"),
        (GOOD.replace(b"3", b'"3"'), "invalid_fields"),  # ill-typed qty
        (GOOD.replace(b"3", b"true"), "invalid_fields"),
        (GOOD.replace(b"3", b"-3"), "invalid_fields"),  # sale qty must be > 0
        (GOOD.replace(b'"sale"', b'"teleport"'), "invalid_fields"),
        (GOOD.replace(b'"2026-11-22T10:00:00Z"', b'"yesterday"'), "invalid_fields"),
        (b"[" * 50_000 + b"]" * 50_000, "not_json"),
    ],
)
def test_bad_records_get_a_reason(raw, expected):
    assert reason(raw, limit=1_000_000) == expected


def test_oversized_payload_is_not_parsed():
    assert reason(b"{" + b" " * 5000 + b"}", limit=1024) == "too_large"


def test_movement_type_rules():
    base = b'{"event_id":"e","occurred_at":"2026-11-22T10:00:00Z","sku":"A","node_id":"N",'
    assert reason(base + b'"type":"adjustment","qty":0}') == "invalid_fields"
    assert reason(base + b'"type":"count","qty":-1}') == "invalid_fields"
    assert reason(base + b'"type":"expected","qty":5}') == "invalid_fields"  # no supply_id/eta
    assert reason(base + b'"type":"expected_cancel"}') == "invalid_fields"
    assert decode(base + b'"type":"expected_cancel","supply_id":"P"}', InventoryMovement, 10_000).supply_id == "P"
    assert decode(base + b'"type":"adjustment","qty":-4}', InventoryMovement, 10_000).qty == -4


def test_order_create_needs_its_fields():
    raw = b'{"event_id":"e","occurred_at":"2026-11-22T10:00:00Z","type":"create","order_id":"o1"}'
    assert reason(raw, OrderCommand) == "invalid_fields"


def test_node_round_trip():
    n = Node(node_id="DC1", kind="dc", lat=50.1, lon=8.6, services=("ship", "same_day"), daily_capacity=None)
    assert decode(encode(n), Node, 10_000) == n


def test_payload_text_is_text_or_base64():
    assert payload_text(b"abc") == "abc"
    assert payload_text(b"\xff\x00").startswith("base64:")
    assert len(payload_text(b"x" * 200_000)) == 64 * 1024


def test_availability_bytes_are_the_models():
    """The stock agent writes Availability events from its rows without
    building the model; the bytes must be the ones the model encodes."""
    from datetime import datetime, timedelta, timezone

    from stockflow.streams.codec import datetime_text, encode, encode_availability
    from stockflow.streams.events import Availability

    rows = [dict(sku="SKU-1", node_id="N01", on_hand=-3, reserved=2, safety_stock=1, atp=0, network_atp=12),
            dict(sku="S\u00e9 \"q\" \\ \u2603", node_id="\u6771\u4eac", on_hand=10**9, reserved=0, safety_stock=0,
                 atp=10**9, network_atp=5 * 10**9)]
    times = [datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), datetime(2026, 11, 24, 8, 0, 1, 5, timezone.utc),
             datetime(2026, 11, 24, 8, 0, tzinfo=timezone(timedelta(hours=2)))]
    for row in rows:
        for at in times:
            assert encode_availability(row, datetime_text(at)) == encode(Availability(**row, occurred_at=at))
