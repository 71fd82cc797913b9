"""clone: a deep copy of JSON-shaped state that the copy's changes never reach back from."""
from datetime import datetime, timezone

from stockflow.domain.clone import clone


def test_a_clone_equals_the_original_and_shares_nothing_mutable():
    state = {"lines": {"L1": {"alloc": {"A": 2}, "qty": 3}}, "shipments": {"S1": {"lines": [["L1", "X", 2]]}},
             "tags": ("a", ["b"]), "at": datetime(2026, 11, 24, tzinfo=timezone.utc), "none": None, "f": 1.5}
    copy = clone(state)
    assert copy == state
    copy["lines"]["L1"]["alloc"]["A"] = 0
    copy["shipments"]["S1"]["lines"][0][2] = 0
    copy["tags"][1].append("c")
    assert state["lines"]["L1"]["alloc"]["A"] == 2
    assert state["shipments"]["S1"]["lines"][0][2] == 2
    assert state["tags"] == ("a", ["b"])


def test_what_is_not_json_shaped_is_still_copied_deeply():
    state = {"seen": {1, 2}}
    copy = clone(state)
    copy["seen"].add(3)
    assert state["seen"] == {1, 2}
