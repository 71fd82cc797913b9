"""What the single owner of a SKU decides about reservations: pure, no I/O.

Orders are planned elsewhere, on a replicated view that may lag; every unit
is granted here, by the one worker that owns the SKU's partition, against
the SKU's current state. That is what makes oversell impossible without a
global lock: two orders racing for the last unit reach this owner one after
the other, and the second one is granted what is left.

Commands are idempotent by construction: ``reserve`` *sets* an order's
holding of the SKU (it does not add), so a command applied twice leaves the
same state; a command from an older planning attempt than one already seen
loses.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

# Chooses nodes for one queued line: (sku, backorder, free units by node) -> {node: qty}.
# The sourcing rules live in domain/sourcing.py; the agent passes them in.
Pick = Callable[[str, "Backorder", dict[str, int]], dict[str, int]]

from ..streams.events import Node
from .atp import Backorder, NodeStock, SkuState, atp, evolve, expected_supply


@dataclass(frozen=True, slots=True)
class OwnerResult:
    state: SkuState
    replies: tuple[dict, ...] = ()  # each to the order owner, keyed by its order_id
    changed_nodes: tuple[str, ...] = ()
    oversell: int = 0  # guard: grants beyond ATP (must stay 0)


# Per SKU, how many orders that hold nothing here keep their latest attempt
# (``_remember_attempt``). A reserve of an attempt older than the remembered
# one loses; an order forgotten here would win with a stale attempt, which
# needs a command delayed past a thousand newer orders of the SKU, while
# identical re-sends are already skipped by their cmd_id (seen-events).
# Only attempts after the first are remembered: no attempt is older than the
# first, so remembering it rejects nothing.
ATTEMPTS_KEPT = 1000
FIRST_ATTEMPT = 1


def free_for(state: SkuState, node_id: str, node: Node | None, order_id: str | None = None) -> int:
    """ATP at a node as one order sees it: its own holding there counts as free."""
    s = state.node(node_id)
    mine = state.reservations.get(order_id, {}).get(node_id, 0) if order_id else 0
    return atp(NodeStock(s.on_hand, s.reserved - mine), node)


def atp_by_node(state: SkuState, nodes: Mapping[str, Node]) -> dict[str, int]:
    # ``atp`` per node, written out as in ``network_atp``: every answer to a
    # reserve carries all of the SKU's nodes.
    out = {}
    get = nodes.get
    for node_id, (on_hand, reserved) in state.stock.items():
        node = get(node_id)
        free = on_hand - reserved - node.safety_stock if node is not None and node.active else 0
        out[node_id] = free if free > 0 else 0
    return out


def open_supply(state: SkuState) -> list[list]:
    """Expected supply not yet promised to queued backorders: [supply_id, node, qty, eta]."""
    promised = sum(b.qty for b in state.backorders)
    out = []
    for sid, node_id, qty, eta in expected_supply(state):
        take = min(qty, promised)
        promised -= take
        if qty - take > 0:
            out.append([sid, node_id, qty - take, eta])
    return out


def _set_holding(state: SkuState, order_id: str, holding: Mapping[str, int]) -> tuple[SkuState, tuple[str, ...]]:
    """Replace an order's holding of this SKU; keep per-node reserved in step."""
    old = state.reservations.get(order_id, {})
    new = {n: q for n, q in holding.items() if q > 0}
    if new == old:
        return state, ()
    stock = dict(state.stock)
    changed = []
    for node_id in sorted(set(old) | set(new)):
        delta = new.get(node_id, 0) - old.get(node_id, 0)
        if delta:
            s = stock.get(node_id) or NodeStock()
            stock[node_id] = NodeStock(s.on_hand, s.reserved + delta)
            changed.append(node_id)
    reservations = dict(state.reservations)
    if new:
        reservations[order_id] = new
    else:
        reservations.pop(order_id, None)
    return evolve(state, stock=stock, reservations=reservations), tuple(changed)


def _give_back(state: SkuState, order_id: str, node_id: str, qty: int) -> tuple[SkuState, tuple[str, ...]]:
    """Lower an order's holding at a node by what it shipped, released or
    shorted. What it no longer holds here (we revoked it while the order was
    already giving it back) is remembered as owed, for the order's unrevoke."""
    held = dict(state.reservations.get(order_id, {}))
    have = held.get(node_id, 0)
    take = min(qty, have)
    held[node_id] = have - take
    state, changed = _set_holding(state, order_id, held)
    if qty > take:
        state = _owe(state, order_id, node_id, qty - take)
    return state, changed


def _owe(state: SkuState, order_id: str, node_id: str, delta: int) -> SkuState:
    owed = {o: dict(n) for o, n in state.owed.items()}
    mine = owed.setdefault(order_id, {})
    mine[node_id] = mine.get(node_id, 0) + delta
    if mine[node_id] <= 0:
        del mine[node_id]
    if not mine:
        del owed[order_id]
    return replace(state, owed=owed)


def reserve(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node]) -> OwnerResult:
    """Grant what it can of ``want`` ({node: qty}) and set the order's holding to it."""
    order_id, attempt = cmd["order_id"], int(cmd["attempt"])
    if state.attempts.get(order_id, 0) > attempt:
        return OwnerResult(state)  # a newer attempt already won; nobody waits for this one
    granted: dict[str, int] = {}
    oversell = 0
    for node_id, want in sorted(cmd["want"].items()):
        free = free_for(state, node_id, nodes.get(node_id), order_id)
        got = max(0, min(int(want), free))
        if got > free:  # the guard: arithmetic above makes this unreachable
            oversell += 1
        granted[node_id] = got
    state, changed = _set_holding(state, order_id, granted)
    if attempt > FIRST_ATTEMPT:
        # A best-seller's first attempts, nearly all its orders, were each
        # copied into its document and then copied by every reserve: 69 us
        # a reserve at 1,000 of them against 35 at 10 (session 22).
        state = evolve(state, attempts=_remember_attempt(state, order_id, attempt))
    return OwnerResult(state, (_reserved(state, order_id, attempt, granted, nodes),), changed, oversell)


def _remember_attempt(state: SkuState, order_id: str, attempt: int) -> dict[str, int]:
    """The attempts with this one as the newest, bounded: every order still
    holding units here, and the latest ATTEMPTS_KEPT of the others. Kept for
    good, every order that ever reserved a SKU stayed in its document, which
    a best-seller would grow past Kafka's 1 MB record limit (its changelog
    write then fails) while each reserve copied all of it."""
    attempts = dict(state.attempts)
    attempts.pop(order_id, None)  # insertion order is recency: re-inserted last
    attempts[order_id] = attempt
    if len(attempts) > ATTEMPTS_KEPT:
        others = [o for o in attempts if o not in state.reservations]  # oldest first
        for old in others[:max(0, len(others) - ATTEMPTS_KEPT)]:
            del attempts[old]
    return attempts


def _reserved(state: SkuState, order_id: str, attempt: int, granted: Mapping[str, int],
              nodes: Mapping[str, Node]) -> dict:
    """The answer to a ``reserve``: what the order holds here, and our figures."""
    return {
        "kind": "reserved",
        "order_id": order_id,
        "attempt": attempt,
        "sku": state.sku,
        "granted": {n: q for n, q in granted.items() if q > 0},
        "atp": atp_by_node(state, nodes),
        "supply": open_supply(state),
    }


def answer_again(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node]) -> OwnerResult:
    """Answer a ``reserve`` seen before with what the order holds now, changing
    nothing. An order whose state died with a worker after its commands went
    out runs again and sends the same command ids; its first answers may have
    reached it before the re-run and been dropped (found by tests/chaos: an
    order stuck reserving). Answering with the holding as it is now, after
    any revocation already sent, keeps the order's view and ours equal; an
    order not waiting for this answer ignores it."""
    order_id = cmd["order_id"]
    held = state.reservations.get(order_id, {})
    return OwnerResult(state, (_reserved(state, order_id, int(cmd["attempt"]), held, nodes),))


def release(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node], pick: Pick | None = None) -> OwnerResult:
    """Lower an order's holding: ``nodes`` {node: qty} or everything when absent.

    Also drops the order's queued backorders for this SKU when ``drop_backorders``."""
    order_id = cmd["order_id"]
    which = cmd.get("nodes")
    if which is None:
        state, changed = _set_holding(state, order_id, {})
    else:
        touched: set[str] = set()
        for node_id, qty in sorted(which.items()):
            state, ch = _give_back(state, order_id, node_id, int(qty))
            touched.update(ch)
        changed = tuple(sorted(touched))
    if cmd.get("drop_backorders"):
        lines = cmd.get("lines")
        state = replace(
            state,
            backorders=tuple(
                b for b in state.backorders
                if not (b.order_id == order_id and (lines is None or b.line_id in lines))
            ),
        )
    result = fill_backorders(state, nodes, cmd.get("cmd_id", ""), pick)
    return OwnerResult(result.state, result.replies, tuple(sorted(set(changed) | set(result.changed_nodes))))


def _leave_node(state: SkuState, cmd: Mapping) -> OwnerResult:
    """Units left the node (shipped, picked up, or never there): on_hand falls
    by ``qty``, the order gives back its holding there (``_give_back``), and
    holdings that no longer fit are revoked, newest first."""
    order_id, node_id, qty = cmd["order_id"], cmd["node_id"], int(cmd["qty"])
    state, changed = _give_back(state, order_id, node_id, qty)
    s = state.node(node_id)
    stock = dict(state.stock)
    stock[node_id] = NodeStock(s.on_hand - qty, s.reserved)
    revoked = revoke_shortage(replace(state, stock=stock), (node_id,), cmd.get("cmd_id", ""))
    return OwnerResult(revoked.state, revoked.replies, tuple(sorted(set(changed) | {node_id} | set(revoked.changed_nodes))))


def consume(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node]) -> OwnerResult:
    """Shipped or picked up: on_hand and the order's holding fall together.

    A node can ship more than we hold for the order: a sale took a unit and
    we revoked it from this order while the node was already shipping it
    (found by tests/chaos, which then saw reserved 5 with 4 on hand). The
    units beyond the holding come out of stock like a sale, so holdings that
    no longer fit are revoked, newest first."""
    return _leave_node(state, cmd)


def add_backorders(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node], pick: Pick) -> OwnerResult:
    """Queue lines waiting for this SKU, then fill what stock allows now."""
    entries = {(b.order_id, b.line_id): b for b in state.backorders}
    for e in cmd["entries"]:
        b = Backorder(
            created_at=e["created_at"], order_id=cmd["order_id"], line_id=e["line_id"], qty=int(e["qty"]),
            method=e["method"], pickup_node_id=e.get("pickup_node_id"), lat=e.get("lat"), lon=e.get("lon"),
            exclude=tuple(e.get("exclude", ())),
        )
        if b.qty > 0:
            entries[(b.order_id, b.line_id)] = b
        else:
            entries.pop((b.order_id, b.line_id), None)
    queue = tuple(sorted(entries.values(), key=lambda b: (b.created_at, b.order_id, b.line_id)))
    return fill_backorders(replace(state, backorders=queue), nodes, cmd.get("cmd_id", ""), pick)


def fill_backorders(state: SkuState, nodes: Mapping[str, Node], cause: str, pick: Pick | None) -> OwnerResult:
    """Allocate queued backorders oldest first from what is free now."""
    if not state.backorders or pick is None:
        return OwnerResult(state)
    replies = []
    changed: set[str] = set()
    remaining = []
    for b in state.backorders:
        free = {n: free_for(state, n, nodes.get(n)) for n in state.stock}
        free = {n: q for n, q in free.items() if q > 0}
        chosen = pick(state.sku, b, free) if free else {}
        chosen = {n: min(q, free.get(n, 0)) for n, q in chosen.items() if q > 0 and free.get(n, 0) > 0}
        got = sum(chosen.values())
        if got:
            held = dict(state.reservations.get(b.order_id, {}))
            for n, q in chosen.items():
                held[n] = held.get(n, 0) + q
            state, ch = _set_holding(state, b.order_id, held)
            changed.update(ch)
            replies.append({
                "kind": "backorder_filled",
                "order_id": b.order_id,
                "sku": state.sku,
                "line_id": b.line_id,
                "nodes": chosen,
                "fill_id": f"{b.order_id}:{b.line_id}:{cause}",
            })
        if b.qty - got > 0:
            remaining.append(replace(b, qty=b.qty - got))
    state = replace(state, backorders=tuple(remaining))
    return OwnerResult(state, tuple(replies), tuple(sorted(changed)))


def revoke_shortage(state: SkuState, node_ids: tuple[str, ...], cause: str,
                    spare: str | None = None) -> OwnerResult:
    """Where on_hand fell below reserved, take back the newest holdings first
    (never ``spare``'s)."""
    replies = []
    changed: set[str] = set()
    for node_id in node_ids:
        s = state.node(node_id)
        excess = s.reserved - max(0, s.on_hand)
        for order_id in reversed(list(state.reservations)):
            if excess <= 0:
                break
            if order_id == spare:
                continue
            held = dict(state.reservations[order_id])
            have = held.get(node_id, 0)
            if not have:
                continue
            take = min(have, excess)
            held[node_id] = have - take
            excess -= take
            state, ch = _set_holding(state, order_id, held)
            changed.update(ch)
            replies.append({
                "kind": "revoked",
                "order_id": order_id,
                "sku": state.sku,
                "node_id": node_id,
                "qty": take,
                "revoke_id": f"{order_id}:{node_id}:{cause}",
            })
    return OwnerResult(state, tuple(replies), tuple(sorted(changed)))


def short(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node]) -> OwnerResult:
    """A node could not pick: the units were not there. on_hand falls and the
    order's holding is released; other holdings that no longer fit are revoked."""
    return _leave_node(state, cmd)


def unrevoke(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node]) -> OwnerResult:
    """The order could not give back units we revoked: it had already
    shipped, released or shorted them, and that command reached us after the
    revocation (found by tests/chaos: a pickup crossing a sale's revocation;
    the consume then ate the order's next grant and the order held one unit
    more than we did). The part we had seen as owed is settled; the rest
    was taken out of a later grant, which the order still counts, so it is
    held again (revoking others newest first if it no longer fits)."""
    order_id, node_id, qty = cmd["order_id"], cmd["node_id"], int(cmd["qty"])
    settle = min(qty, state.owed.get(order_id, {}).get(node_id, 0))
    if settle:
        state = _owe(state, order_id, node_id, -settle)
    back = qty - settle
    if back <= 0:
        return OwnerResult(state)
    held = dict(state.reservations.get(order_id, {}))
    held[node_id] = held.get(node_id, 0) + back
    state, changed = _set_holding(state, order_id, held)
    # Revoking from this same order again is right once: a fill it had not
    # seen yet when it answered has reached it by then (the fill went out
    # before this revocation), so it can give the unit back. A second time
    # it is a loop: the order has nothing there, answers unrevoke again, and
    # so on, the ids growing until a state passed Kafka's 1 MB record limit
    # and the worker died (the long chaos run). Then what does not fit is
    # not held again.
    cmd_id = cmd.get("cmd_id", "")
    spare = order_id if cmd_id.count(":un") > 1 else None
    revoked = revoke_shortage(state, (node_id,), cmd_id, spare=spare)
    state = revoked.state
    s = state.node(node_id)
    excess = s.reserved - max(0, s.on_hand)
    if spare and excess > 0:
        held = dict(state.reservations.get(order_id, {}))
        held[node_id] = held.get(node_id, 0) - min(back, excess)
        state, more = _set_holding(state, order_id, held)
        changed = tuple(set(changed) | set(more))
    return OwnerResult(state, revoked.replies, tuple(sorted(set(changed) | set(revoked.changed_nodes))))


def restock(state: SkuState, cmd: Mapping, nodes: Mapping[str, Node], pick: Pick | None) -> OwnerResult:
    """A resellable return: on_hand rises at the node and feeds backorders."""
    node_id, qty = cmd["node_id"], int(cmd["qty"])
    s = state.node(node_id)
    stock = dict(state.stock)
    stock[node_id] = NodeStock(s.on_hand + qty, s.reserved)
    filled = fill_backorders(replace(state, stock=stock), nodes, cmd.get("cmd_id", ""), pick)
    return OwnerResult(filled.state, filled.replies, tuple(sorted({node_id} | set(filled.changed_nodes))))
