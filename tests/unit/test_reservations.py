from stockflow.domain.atp import NodeStock, SkuState
from stockflow.domain import reservations as owner
from stockflow.streams.events import Node


def node(nid, safety=0, active=True):
    return Node(node_id=nid, kind="store", lat=52.0, lon=13.0, services=("ship",), safety_stock=safety, active=active)


NODES = {"A": node("A"), "B": node("B", safety=1)}


def state(a=5, b=5):
    return SkuState("X", stock={"A": NodeStock(a, 0), "B": NodeStock(b, 0)})


def reserve(st, order, want, attempt=1):
    return owner.reserve(st, {"order_id": order, "attempt": attempt, "want": want, "cmd_id": f"{order}:{attempt}"}, NODES)


def first_free(sku, b, free):
    n = sorted(free)[0]
    return {n: min(b.qty, free[n])}


def test_grants_at_most_atp_and_sets_not_adds():
    r = reserve(state(), "o1", {"A": 3, "B": 9})
    assert r.replies[0]["granted"] == {"A": 3, "B": 4}  # B: 5 on hand - 1 safety
    assert r.state.node("A").reserved == 3 and r.state.node("B").reserved == 4
    again = reserve(r.state, "o1", {"A": 3, "B": 9})
    assert again.state == r.state  # replaying a reserve changes nothing
    moved = reserve(r.state, "o1", {"A": 1}, attempt=2)
    assert moved.state.node("A").reserved == 1 and moved.state.node("B").reserved == 0
    assert moved.oversell == 0


def test_racing_orders_never_take_more_than_atp():
    st = state(a=2, b=0)
    granted = 0
    for i in range(10):
        r = reserve(st, f"o{i}", {"A": 1})
        st = r.state
        granted += sum(r.replies[0]["granted"].values())
    assert granted == 2
    assert st.node("A").reserved == 2
    assert reserve(st, "late", {"A": 1}).replies[0]["granted"] == {}


def test_stale_attempt_loses():
    st = reserve(state(), "o1", {"A": 2}, attempt=2).state
    r = reserve(st, "o1", {"A": 5}, attempt=1)
    assert r.state == st and r.replies == ()


def test_release_and_consume():
    st = reserve(state(), "o1", {"A": 3}).state
    st2 = owner.release(st, {"order_id": "o1", "nodes": {"A": 1}}, NODES).state
    assert st2.node("A").reserved == 2
    st3 = owner.consume(st2, {"order_id": "o1", "node_id": "A", "qty": 2}, NODES).state
    assert st3.node("A") == NodeStock(3, 0)
    assert "o1" not in st3.reservations
    st4 = owner.release(st, {"order_id": "o1", "nodes": None}, NODES).state
    assert st4.node("A").reserved == 0


def entry(line, qty, created):
    return {"created_at": created, "line_id": line, "qty": qty, "method": "ship"}


def test_backorders_fill_oldest_first():
    st = state(a=0, b=0)
    st = owner.add_backorders(st, {"order_id": "late", "entries": [entry("L1", 1, "2026-01-02")], "cmd_id": "c1"}, NODES, first_free).state
    st = owner.add_backorders(st, {"order_id": "early", "entries": [entry("L1", 1, "2026-01-01")], "cmd_id": "c2"}, NODES, first_free).state
    assert [b.order_id for b in st.backorders] == ["early", "late"]
    st = SkuState("X", stock={"A": NodeStock(1, 0), "B": NodeStock(0, 0)}, backorders=st.backorders)
    r = owner.fill_backorders(st, NODES, "rcpt", first_free)
    assert [rep["order_id"] for rep in r.replies] == ["early"]
    assert r.state.reservations == {"early": {"A": 1}}
    assert [b.order_id for b in r.state.backorders] == ["late"]


def test_shortage_revokes_newest_first():
    st = reserve(state(a=5), "old", {"A": 2}).state
    st = reserve(st, "new", {"A": 3}).state
    st = SkuState("X", stock={"A": NodeStock(3, 5)}, reservations=st.reservations)
    r = owner.revoke_shortage(st, ("A",), "count-1")
    assert [(x["order_id"], x["qty"]) for x in r.replies] == [("new", 2)]
    assert r.state.node("A").reserved == 3


def test_open_supply_nets_out_backorders():
    from stockflow.domain.atp import Backorder, Supply
    st = SkuState("X", supply={"P1": Supply("A", 5, "2026-12-01T00:00:00+00:00"), "P2": Supply("A", 5, "2026-12-05T00:00:00+00:00")},
                  backorders=(Backorder("2026-01-01", "o", "L1", 7, "ship"),))
    assert owner.open_supply(st) == [["P2", "A", 3, "2026-12-05T00:00:00+00:00"]]


def test_a_reserve_seen_again_is_answered_with_the_holding_as_it_is_now():
    cmd = {"order_id": "o1", "attempt": 1, "want": {"A": 3}, "cmd_id": "o1:r1:X"}
    st = owner.reserve(state(a=5), cmd, NODES).state
    st = SkuState("X", stock={"A": NodeStock(4, 3)}, reservations=st.reservations, attempts=st.attempts)
    st = owner.revoke_shortage(SkuState("X", stock={"A": NodeStock(2, 3)}, reservations=st.reservations,
                                        attempts=st.attempts), ("A",), "count-1").state
    again = owner.answer_again(st, {**cmd, "want": {"B": 3}}, NODES)
    assert again.state == st  # nothing changes
    [r] = again.replies
    # what it holds after the revocation, not the first answer, nor the new want
    assert (r["kind"], r["attempt"], r["granted"]) == ("reserved", 1, {"A": 2})
    assert owner.answer_again(st, {**cmd, "order_id": "o2"}, NODES).replies[0]["granted"] == {}


def test_shipping_more_than_held_revokes_what_no_longer_fits():
    st = reserve(state(a=5), "old", {"A": 2}).state
    st = reserve(st, "new", {"A": 3}).state
    # a sale of 1: "new" (the newest) gives a unit back...
    sold = SkuState("X", stock={"A": NodeStock(4, 5)}, reservations=st.reservations, attempts=st.attempts)
    st = owner.revoke_shortage(sold, ("A",), "sale-1").state
    assert st.reservations == {"old": {"A": 2}, "new": {"A": 2}}
    # ...but the node was already shipping all 3 of "new"
    r = owner.consume(st, {"order_id": "new", "node_id": "A", "qty": 3, "cmd_id": "ship-1"}, NODES)
    a = r.state.node("A")
    assert (a.on_hand, a.reserved) == (1, 1)  # never more reserved than on hand
    assert [(x["kind"], x["order_id"], x["qty"]) for x in r.replies] == [("revoked", "old", 1)]
    assert r.state.reservations == {"old": {"A": 1}}


def _pickup_crossing_a_sale(fill_between: bool):
    """The node hands over an order's unit while a sale makes us revoke that
    very unit; the pickup's consume reaches us after the revocation."""
    st = reserve(state(a=1), "o1", {"A": 1}).state
    # the sale took the reserved unit: we revoke it from the order
    st = SkuState("X", stock={"A": NodeStock(0, 1), "B": NodeStock(5, 0)}, reservations=st.reservations)
    rev = owner.revoke_shortage(st, ("A",), "sale-1")
    assert [(r["order_id"], r["qty"]) for r in rev.replies] == [("o1", 1)]
    st = replace_stock(rev.state, "A", 2)  # a receipt of 2 at A
    if fill_between:  # the order's backordered second unit is filled at A
        st = reserve(st, "o1", {"A": 1}, attempt=2).state
    st = owner.consume(st, {"order_id": "o1", "node_id": "A", "qty": 1, "cmd_id": "pickup-1"}, NODES).state
    return owner.unrevoke(st, {"order_id": "o1", "node_id": "A", "qty": 1, "cmd_id": "o1:A:sale-1:un"}, NODES)


def test_an_unrevoke_revokes_the_same_order_once_but_never_twice():
    # the owner holds a unit for o1 at A that o1 does not count, and A is
    # empty: revoking it from o1 again made o1 answer unrevoke again, forever
    # (the long chaos run: ids grew to 1 MB and the worker died)
    st = SkuState("X", stock={"A": NodeStock(0, 0)})
    first = owner.unrevoke(st, {"order_id": "o1", "node_id": "A", "qty": 1, "cmd_id": "o1:A:sale-1:un"}, NODES)
    # once: a fill o1 had not seen yet may be what it holds there by now
    [r] = first.replies
    assert (r["order_id"], r["qty"], r["revoke_id"]) == ("o1", 1, "o1:A:o1:A:sale-1:un")
    # o1 had nothing there after all: its second unrevoke ends it
    again = owner.unrevoke(first.state, {"order_id": "o1", "node_id": "A", "qty": 1,
                                         "cmd_id": f"{r['revoke_id']}:un"}, NODES)
    assert again.replies == ()
    assert again.state.reservations == {} and again.state.node("A") == NodeStock(0, 0)


def test_a_second_unrevoke_revokes_others_newest_first_to_make_room():
    st = reserve(state(a=2), "other", {"A": 2}).state
    st = SkuState("X", stock={"A": NodeStock(2, 2)}, reservations=st.reservations)
    r = owner.unrevoke(st, {"order_id": "o1", "node_id": "A", "qty": 1, "cmd_id": "o1:A:o1:A:sale-1:un:un"}, NODES)
    assert [(x["order_id"], x["qty"]) for x in r.replies] == [("other", 1)]
    assert r.state.reservations == {"other": {"A": 1}, "o1": {"A": 1}}


def replace_stock(st, node_id, on_hand_delta):
    s = st.node(node_id)
    return SkuState(st.sku, stock={**st.stock, node_id: NodeStock(s.on_hand + on_hand_delta, s.reserved)},
                    reservations=st.reservations, attempts=st.attempts, owed=st.owed)


def test_an_unrevoke_settles_what_a_late_consume_could_not_take():
    r = _pickup_crossing_a_sale(fill_between=False)
    assert r.state.reservations == {} and r.state.owed == {}
    assert r.state.node("A") == NodeStock(1, 0)


def test_an_unrevoke_gives_back_a_grant_that_a_late_consume_ate():
    r = _pickup_crossing_a_sale(fill_between=True)
    # the order holds its filled unit, as it believes
    assert r.state.reservations == {"o1": {"A": 1}} and r.state.owed == {}
    assert r.state.node("A") == NodeStock(1, 1)


def test_attempts_stay_bounded_but_holders_and_recent_orders_are_kept():
    """A best-seller's document must not grow with every order it ever saw."""
    kept = owner.ATTEMPTS_KEPT
    st = reserve(state(), "holder", {"A": 1}, attempt=3).state  # holds a unit for good
    for i in range(kept + 200):
        st = reserve(st, f"o{i}", {}, attempt=2).state  # holds nothing here
    assert len(st.attempts) == kept + 1  # the holder, and the latest `kept` others
    assert st.attempts["holder"] == 3 and "o0" not in st.attempts and f"o{kept + 199}" in st.attempts
    # the holder's stale attempt still loses, as does a recent order's
    assert reserve(st, "holder", {"A": 5}, attempt=2).replies == ()
    st = reserve(st, f"o{kept + 150}", {}, attempt=3).state
    assert reserve(st, f"o{kept + 150}", {"A": 1}, attempt=2).replies == ()
    # and the bound survives the document's round trip (insertion order is recency)
    assert list(SkuState.from_dict(st.to_dict()).attempts) == list(st.attempts)


def test_holders_do_not_count_against_the_others_kept(monkeypatch):
    """More attempts than kept, but mostly of holders: no other order is dropped."""
    monkeypatch.setattr(owner, "ATTEMPTS_KEPT", 5)
    st = state()
    for i in range(4):
        st = reserve(st, f"h{i}", {"A": 1}, attempt=2).state  # holders
    for i in range(3):
        st = reserve(st, f"o{i}", {}, attempt=2).state
    assert set(st.attempts) == {"h0", "h1", "h2", "h3", "o0", "o1", "o2"}
    for i in range(3, 6):
        st = reserve(st, f"o{i}", {}, attempt=2).state
    assert set(st.attempts) == {"h0", "h1", "h2", "h3", "o1", "o2", "o3", "o4", "o5"}


def test_a_first_attempt_is_not_remembered_and_no_stale_one_wins():
    """A best-seller's orders nearly all reserve once: remembering each first
    attempt grew its document and every reserve's copy of it (session 22)."""
    st = state()
    for i in range(300):
        st = reserve(st, f"o{i}", {"A": 1} if i < 2 else {}, attempt=1).state
    assert st.attempts == {}
    # a second attempt is remembered, and then the first one loses
    st = reserve(st, "o5", {"A": 1}, attempt=2).state
    assert st.attempts == {"o5": 2}
    assert reserve(st, "o5", {"A": 3}, attempt=1).replies == ()
    assert st.reservations["o5"] == {"A": 1}
    # an attempt 1 remembered by an older document still decides nothing new
    old = SkuState("X", stock=st.stock, reservations=st.reservations, attempts={"o7": 1})
    assert reserve(old, "o7", {"A": 1}, attempt=1).replies[0]["granted"] == {"A": 1}
