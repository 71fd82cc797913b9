"""clone: a deep copy of JSON-shaped state that the copy's changes never reach back from."""
from datetime import datetime, timezone

from stockflow.domain.clone import clone, walk


def test_a_clone_equals_the_original_and_shares_nothing_mutable():
    state = {"lines": {"L1": {"alloc": {"A": 2}, "qty": 3}}, "shipments": {"S1": {"lines": [["L1", "X", 2]]}},
             "tags": ("a", ["b"]), "at": datetime(2026, 11, 24, tzinfo=timezone.utc), "none": None, "f": 1.5}
    for copy in (clone(state), walk(state)):
        assert copy == state
        copy["lines"]["L1"]["alloc"]["A"] = 0
        copy["shipments"]["S1"]["lines"][0][2] = 0
        copy["tags"][1].append("c")
        assert state["lines"]["L1"]["alloc"]["A"] == 2
        assert state["shipments"]["S1"]["lines"][0][2] == 2
        assert state["tags"] == ("a", ["b"])


def test_a_json_document_is_copied_through_json_and_a_tuple_comes_back_a_list_as_from_the_table():
    state = {"lines": {"L1": {"alloc": {"A": 2}, "qty": 3, "price": 0.1 + 0.2, "reason": None, "ok": True}},
             "exclude": ["N1"], "tags": ("a", ["b"]), "big": 2**63 - 1, "neg": -0.0, "text": "\u00e9t\u00e9 \U0001f4a9"}
    copy = clone(state)
    assert copy == {**state, "tags": ["a", ["b"]]} and copy["lines"]["L1"]["price"] == 0.1 + 0.2
    copy["lines"]["L1"]["alloc"]["A"] = 0
    copy["exclude"].append("N2")
    assert state["lines"]["L1"]["alloc"] == {"A": 2} and state["exclude"] == ["N1"]


def test_what_json_would_change_or_refuse_takes_the_walk():
    class Label(str):
        pass

    for odd in ({"at": datetime(2026, 11, 24, tzinfo=timezone.utc)}, {1: "non-string key"}, {"n": 2**64},
                {"s": "\ud800"}, {"label": Label("x")}):
        copy = clone(odd)
        assert copy == odd and type(next(iter(copy.values()))) is type(next(iter(odd.values())))


def test_what_is_not_json_shaped_is_still_copied_deeply():
    state = {"seen": {1, 2}}
    copy = clone(state)
    copy["seen"].add(3)
    assert state["seen"] == {1, 2}
