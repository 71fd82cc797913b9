"""The order side of allocation, without a broker: plan, reserve, re-plan, finalize."""
import json
from datetime import datetime, timezone

from stockflow.domain import orders as flow
from stockflow.streams.events import Node, OrderCommand

AT = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)


def node(nid, lat, lon, services=("ship", "pickup")):
    return Node(node_id=nid, kind="store", lat=lat, lon=lon, services=services, cost_per_order=5, cost_per_km=0.1)


NODES = {"A": node("A", 52.5, 13.4), "B": node("B", 48.1, 11.6)}


def create(order_id="o1", lines=(("X", 2),), allow_partial=True, allow_backorder=True, method="ship", pickup=None):
    return OrderCommand.model_validate_json(json.dumps({
        "event_id": f"e-{order_id}", "occurred_at": "2026-11-22T10:00:00Z", "type": "create", "order_id": order_id,
        "channel": "web", "customer": {"customer_id": "c1", "email": "a@b.c"},
        "lines": [{"line_id": f"L{i}", "sku": s, "qty": q, "unit_price": 10.0} for i, (s, q) in enumerate(lines)],
        "delivery": {"method": method, "pickup_node_id": pickup,
                     "address": None if pickup else {"lat": 52.5, "lon": 13.4}},
        "allow_partial": allow_partial, "allow_backorder": allow_backorder,
    }), strict=True)


def reply(step, sku, granted, atp=None):
    return {"kind": "reserved", "order_id": step.state["order_id"], "attempt": step.state["attempt"], "sku": sku,
            "granted": granted, "atp": atp or {}, "supply": []}


def outputs(step, topic):
    return [body for t, _, body in step.outputs if t == topic]


def test_create_plans_and_asks_the_owner():
    step = flow.on_create(None, create(), {("X", "A"): 5, ("X", "B"): 5}, NODES, 50, AT)
    assert step.commands == [{"cmd": "reserve", "cmd_id": "o1:r1:X", "order_id": "o1", "attempt": 1, "sku": "X", "want": {"A": 2}}]
    assert [b["status"] for b in outputs(step, "order_status")] == ["created"]


def test_full_grant_allocates_with_release_and_confirmation():
    step = flow.on_create(None, create(), {("X", "A"): 5}, NODES, 50, AT)
    done = flow.on_reserved(step.state, reply(step, "X", {"A": 2}), {}, NODES, 50, AT)
    [alloc] = outputs(done, "allocations")
    assert alloc["status"] == "allocated" and alloc["decision_id"].startswith("o1:1-")
    assert alloc["shipments"][0]["node_id"] == "A"
    assert [r["action"] for r in outputs(done, "fulfillment_requests")] == ["release"]
    assert [n["type"] for n in outputs(done, "notifications")] == ["order_confirmed"]


def test_short_grant_replans_then_backorders_the_rest():
    step = flow.on_create(None, create(lines=(("X", 3),)), {("X", "A"): 5}, NODES, 50, AT)
    # the view was stale: A had only 1 left
    step2 = flow.on_reserved(step.state, reply(step, "X", {"A": 1}), {("X", "A"): 0, ("X", "B"): 1}, NODES, 50, AT)
    assert step2.state["attempt"] == 2
    assert step2.commands[0]["want"] == {"A": 1, "B": 1}
    done = flow.on_reserved(step2.state, reply(step2, "X", {"A": 1, "B": 1}), {}, NODES, 50, AT)
    [alloc] = outputs(done, "allocations")
    assert alloc["status"] == "partial"
    assert alloc["backorders"] == [{"line_id": "L0", "sku": "X", "qty": 1, "expected_date": None}]
    assert [c["cmd"] for c in done.commands] == ["backorder"]
    assert sorted(n["type"] for n in outputs(done, "notifications")) == ["backordered", "order_confirmed"]


def test_all_or_nothing_without_stock_reserves_nothing():
    step = flow.on_create(None, create(lines=(("X", 3),), allow_partial=False, allow_backorder=False),
                          {("X", "A"): 2}, NODES, 50, AT)
    # It still asks the owner (for nothing): the answer says what an earlier
    # run of this order may hold.
    assert [(c["cmd"], c["want"]) for c in step.commands] == [("reserve", {})]
    done = flow.on_reserved(step.state, reply(step, "X", {}), {("X", "A"): 2}, NODES, 50, AT)
    [alloc] = outputs(done, "allocations")
    assert alloc["status"] == "rejected" and alloc["rejected"][0]["qty"] == 3


def test_a_rerun_order_learns_what_its_first_run_holds():
    """The state died after the first run's commands went out; the re-run
    plans on a view that already lacks the first run's grant, and the
    owner's second answer (the first was dropped) tells it."""
    first = flow.on_create(None, create(lines=(("X", 2),)), {("X", "A"): 2}, NODES, 50, AT)
    rerun = flow.on_create(None, create(lines=(("X", 2),)), {}, NODES, 50, AT)
    assert [c["cmd_id"] for c in rerun.commands] == [c["cmd_id"] for c in first.commands]
    again = flow.on_reserved(rerun.state, reply(rerun, "X", {"A": 2}), {}, NODES, 50, AT)
    held = again.state
    if again.commands:  # granted more than planned: a new attempt keeps what it holds
        assert [c["want"] for c in again.commands if c["cmd"] == "reserve"] == [{"A": 2}]
        held = flow.on_reserved(held, reply(again, "X", {"A": 2}), {}, NODES, 50, AT).state
    assert sum(ln["alloc"].get("A", 0) for ln in held["lines"].values()) == 2


def test_duplicate_and_conflicting_creates():
    step = flow.on_create(None, create(), {("X", "A"): 5}, NODES, 50, AT)
    same = create()
    assert flow.on_create(step.state, same, {}, NODES, 50, AT).duplicate
    other = create(lines=(("X", 9),))
    assert flow.on_create(step.state, other, {}, NODES, 50, AT).dead_letter[0] == "duplicate_order_conflict"


def test_stale_reply_is_ignored():
    step = flow.on_create(None, create(), {("X", "A"): 5}, NODES, 50, AT)
    old = reply(step, "X", {"A": 2})
    old["attempt"] = 0
    assert flow.on_reserved(step.state, old, {}, NODES, 50, AT).duplicate


def no_stock_anywhere(cmd):
    """Create, and the owner's answer: nothing granted."""
    step = flow.on_create(None, cmd, {}, NODES, 50, AT)
    return flow.on_reserved(step.state, reply(step, "X", {}), {}, NODES, 50, AT)


def test_backorder_fill_and_revoke():
    step = no_stock_anywhere(create())
    assert outputs(step, "allocations")[0]["status"] == "backordered"
    filled = flow.on_backorder_filled(step.state, {"fill_id": "f1", "line_id": "L0", "sku": "X", "nodes": {"A": 2}}, NODES, AT)
    assert outputs(filled, "allocations")[0]["status"] == "allocated"
    assert flow.on_backorder_filled(filled.state, {"fill_id": "f1", "line_id": "L0", "sku": "X", "nodes": {"A": 2}}, NODES, AT).duplicate
    revoked = flow.on_revoked(filled.state, {"revoke_id": "r1", "sku": "X", "node_id": "A", "qty": 1}, NODES, AT)
    assert outputs(revoked, "allocations")[0]["status"] == "partial"
    assert [n["type"] for n in outputs(revoked, "notifications")] == ["delayed"]
    [bo] = revoked.commands
    assert bo["cmd"] == "backorder" and bo["entries"][0]["exclude"] == ["A"]
    assert [r["action"] for r in outputs(revoked, "fulfillment_requests")] == ["cancel"]


def test_preorder_promises_the_expected_supply_date():
    step = flow.on_create(None, create(lines=(("X", 4),)), {("X", "A"): 1}, NODES, 50, AT)
    r = reply(step, "X", {"A": 1})
    r["supply"] = [["PO-1", "B", 2, "2026-12-01T00:00:00+00:00"], ["PO-2", "B", 5, "2026-12-09T00:00:00+00:00"]]
    done = flow.on_reserved(step.state, r, {}, NODES, 50, AT)
    [alloc] = outputs(done, "allocations")
    # 3 units wait: PO-1 brings 2, PO-2 covers the third
    assert alloc["backorders"] == [{"line_id": "L0", "sku": "X", "qty": 3, "expected_date": "2026-12-09T00:00:00+00:00"}]


def test_a_fill_larger_than_what_waits_keeps_only_the_need_and_gives_back_the_rest():
    # found by the chaos suite: the owner's queue entry was set by a backorder
    # command that crossed a fill in flight, so it granted 2 for 1 waiting
    step = no_stock_anywhere(create(lines=(("X", 2),)))
    half = flow.on_backorder_filled(step.state, {"fill_id": "f1", "line_id": "L0", "sku": "X", "nodes": {"A": 1}}, NODES, AT)
    over = flow.on_backorder_filled(half.state, {"fill_id": "f2", "line_id": "L0", "sku": "X", "nodes": {"A": 1, "B": 2}},
                                    NODES, AT)
    line = over.state["lines"]["L0"]
    assert line["alloc"] == {"A": 2} and line["backordered"] == 0
    [back] = over.commands
    assert back["cmd"] == "release" and back["nodes"] == {"B": 2}
    placed = sum(ln["qty"] for sh in outputs(over, "allocations")[0]["shipments"] for ln in sh["lines"])
    assert placed == 2
    # nothing waits at all: everything goes back, no decision
    none_left = flow.on_backorder_filled(over.state, {"fill_id": "f3", "line_id": "L0", "sku": "X", "nodes": {"B": 1}},
                                         NODES, AT)
    assert [c["nodes"] for c in none_left.commands] == [{"B": 1}] and not outputs(none_left, "allocations")


def test_a_revocation_while_other_owners_still_answer_shrinks_the_grant():
    # found by the chaos suite: the order decided with a grant its owner had
    # already taken back, so it "held" a unit nobody reserved
    step = flow.on_create(None, create(lines=(("X", 1), ("Y", 1))), {("X", "A"): 5, ("Y", "A"): 5}, NODES, 50, AT)
    x = flow.on_reserved(step.state, reply(step, "X", {"A": 1}), {}, NODES, 50, AT)
    assert x.state["phase"] == "reserving" and x.state["pending"] == ["Y"]
    revoked = flow.on_revoked(x.state, {"revoke_id": "r1", "sku": "X", "node_id": "A", "qty": 1}, NODES, AT)
    assert revoked.state["grants"]["X"] == {} and not revoked.outputs
    done = flow.on_reserved(revoked.state, reply(revoked, "Y", {"A": 1}), {("X", "B"): 3}, NODES, 50, AT)
    # X is asked for again (a re-plan), never placed from the lost grant
    assert done.state["attempt"] == 2
    assert {c["sku"] for c in done.commands if c["cmd"] == "reserve"} >= {"X"}
    assert all(sum(ln["alloc"].values()) == 0 for ln in done.state["lines"].values())


def test_an_answer_never_changes_the_state_it_was_given():
    """on_reserved copies only what an answer changes and shares the rest, so
    each way on (wait for more, finalize, plan again) must copy before it
    changes anything deeper."""
    step = flow.on_create(None, create(lines=(("X", 2), ("Y", 1))), {("X", "A"): 5, ("Y", "A"): 5}, NODES, 50, AT)
    first = step.state
    kept = json.loads(json.dumps(first))
    waiting = flow.on_reserved(first, reply(step, "X", {"A": 2}), {}, NODES, 50, AT)
    assert waiting.state["pending"] == ["Y"] and not waiting.outputs
    assert first == kept
    second = waiting.state
    kept = json.loads(json.dumps(second))
    done = flow.on_reserved(second, reply(step, "Y", {"A": 1}), {}, NODES, 50, AT)
    assert done.state["status"] == "allocated" and done.state["lines"]["L0"]["alloc"] == {"A": 2}
    assert second == kept and first == json.loads(json.dumps(first))
    # short: plan again on the fresher view
    replan = flow.on_reserved(second, reply(step, "Y", {}), {("Y", "B"): 3}, NODES, 50, AT)
    assert replan.state["attempt"] == 2 and replan.commands
    assert second == kept
    # the last attempt short: decided as it is, the rest backordered, or
    # rejected, or (all or nothing) every grant given back
    last = {**second, "attempt": flow.MAX_ATTEMPTS}
    for policy in ({}, {"allow_backorder": False}, {"allow_partial": False}):
        before = {**last, **policy}
        kept = json.loads(json.dumps(before))
        decided = flow.on_reserved(before, {**reply(step, "Y", {}), "attempt": flow.MAX_ATTEMPTS}, {}, NODES, 50, AT)
        assert decided.state["phase"] == "open" and decided.outputs, policy
        assert before == kept, policy
