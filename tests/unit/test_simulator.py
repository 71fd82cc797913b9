"""The retail-day simulator without a broker: the seeded input stream, the
fulfilment actor's respect for releases and cancels, the shares, the flags."""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict

import pytest

from stockflow.cli import build_parser
from stockflow.cli import main as cli_main
from stockflow.connectors.network import sample_network
from stockflow.connectors.simulate import build
from stockflow.connectors.simulator import (CHANNELS, METHODS, FulfilmentActor, RetailDay, SimulationError,
                                            check_rate, parse_shares)
from stockflow.streams.events import FulfillmentUpdate, InventoryMovement, OrderCommand

AT = "2026-11-27T10:00:00+00:00"


def stream(seed: int, steps: int = 3000, **kw) -> list[str]:
    day = RetailDay(sample_network(), n_skus=300, seed=seed, **kw)
    out = [json.dumps(r, default=bytes.hex, sort_keys=True) for r in day.network()]
    out += [json.dumps(r, default=bytes.hex, sort_keys=True) for r in day.initial_stock()]
    for _ in range(steps):
        out += [json.dumps(r, default=bytes.hex, sort_keys=True) for r in day.next_events()]
    return out


def day_records(steps: int, seed: int = 3, **kw) -> list[tuple]:
    day = RetailDay(sample_network(), n_skus=300, seed=seed, **kw)
    return [r for _ in range(steps) for r in day.next_events()]


# ------------------------------------------------------------------ the stream
def test_same_seed_gives_the_same_stream_record_for_record():
    a, b = stream(11), stream(11)
    assert len(a) > 3000
    assert a == b


def test_another_seed_gives_another_stream():
    a, b = stream(11, steps=500), stream(12, steps=500)
    assert a != b
    # not merely shifted: most of the day differs
    assert len(set(a) & set(b)) < len(a) // 2


def test_generated_records_are_valid_contract_events_apart_from_the_hostile_ones():
    bad = Counter()
    for logical, key, value in day_records(4000):
        if isinstance(value, bytes):
            bad["bytes"] += 1
            continue
        model = {"movements": InventoryMovement, "order_commands": OrderCommand}[logical]
        try:
            ev = model.model_validate_json(json.dumps(value), strict=True)
        except ValueError:
            bad["invalid"] += 1
            continue
        assert key == (ev.sku if logical == "movements" else ev.order_id)
    # hostile records are ~0.5% of steps (some are valid JSON for an unknown node)
    assert 0 < bad["bytes"] + bad["invalid"] < 40, bad


def test_customers_cancel_shortly_after_their_order_never_before_it():
    created_at: dict[str, int] = {}
    for i, (logical, key, value) in enumerate(day_records(6000, cancel_rate=0.3)):
        if logical != "order_commands":
            continue
        if value["type"] == "create":
            created_at[key] = i
        elif value["type"] in ("cancel", "cancel_line", "change_address"):
            assert key in created_at, value
            assert i - created_at[key] < 1000, (value, i - created_at[key])


# ---------------------------------------------------------------- the shares
def test_channel_and_method_mix_and_cancel_share_are_honoured():
    recs = day_records(20000, channels={"web": 3, "app": 1}, methods={"ship": 1, "pickup": 1}, cancel_rate=0.2,
                       change_address_rate=0.0)
    creates = [v for lg, _, v in recs if lg == "order_commands" and v["type"] == "create"]
    cancels = [v for lg, _, v in recs if lg == "order_commands" and v["type"] in ("cancel", "cancel_line")]
    assert len(creates) > 2000
    channels = Counter(v["channel"] for v in creates)
    methods = Counter(v["delivery"]["method"] for v in creates)
    assert set(channels) == {"web", "app"} and abs(channels["web"] / len(creates) - 0.75) < 0.04, channels
    assert set(methods) == {"ship", "pickup"} and abs(methods["ship"] / len(creates) - 0.5) < 0.04, methods
    assert abs(len(cancels) / len(creates) - 0.2) < 0.03, (len(cancels), len(creates))
    assert not [v for lg, _, v in recs if lg == "order_commands" and v["type"] == "change_address"]


def release(order_id: str, n: int, method: str = "ship", node: str = "ST-BERLIN", lines=None) -> dict:
    lines = lines or [{"line_id": "L1", "sku": "SKU-1", "qty": 2}, {"line_id": "L2", "sku": "SKU-2", "qty": 1}]
    return {"request_id": f"{order_id}-S{n}:release", "node_id": node, "order_id": order_id,
            "shipment_id": f"{order_id}-S{n}", "method": method, "lines": lines, "action": "release"}


def cancel(req: dict, lines: list[dict], tag: str = "c") -> dict:
    return dict(req, request_id=f"{req['shipment_id']}:cancel:{tag}", lines=lines, action="cancel")


def test_fulfilment_shares_are_honoured_over_many_shipments():
    actor = FulfilmentActor(seed=5, short_rate=0.1, reject_rate=0.05, return_rate=0.3)
    n = 4000
    for i in range(n):
        actor.on_request(release(f"O{i}", 1, method="pickup" if i % 4 == 0 else "ship"), now=i * 0.001)
    out = actor.due(1e9, AT)
    kinds = Counter((lg, v["type"]) for lg, _, v in out)
    shorts, rejected = kinds[("fulfillment_updates", "short")], kinds[("fulfillment_updates", "rejected")]
    delivered = kinds[("fulfillment_updates", "delivered")] + kinds[("fulfillment_updates", "picked_up")]
    returns = kinds[("order_commands", "return_request")]
    assert abs(rejected / n - 0.05) < 0.015, kinds
    assert abs(shorts / (n - rejected) - 0.1) < 0.02, kinds
    assert abs(returns / delivered - 0.3) < 0.04, kinds
    assert kinds[("fulfillment_updates", "return_received")] == returns
    assert kinds[("fulfillment_updates", "ready_for_pickup")] > 0 and kinds[("fulfillment_updates", "packed")] > 0
    assert actor.pending() == 0


# ----------------------------------------------------- the actor's invariants
class Ledger:
    """What a node may still report for each shipment, from the requests it got."""

    def __init__(self) -> None:
        self.open: dict[str, Counter] = defaultdict(Counter)
        self.shipped: dict[str, Counter] = defaultdict(Counter)
        self.returned: dict[str, Counter] = defaultdict(Counter)
        self.state: dict[str, str] = {}
        self.cancelled_whole: set[str] = set()
        self.seen: set[str] = set()

    def request(self, req: dict) -> None:
        if req["request_id"] in self.seen:
            return
        self.seen.add(req["request_id"])
        sid = req["shipment_id"]
        for ln in req["lines"]:
            if req["action"] == "release":
                self.open[sid][ln["line_id"]] += ln["qty"]
            else:
                self.open[sid][ln["line_id"]] = max(0, self.open[sid][ln["line_id"]] - ln["qty"])
        if req["action"] == "cancel" and self.state.get(sid) is None and not +self.open[sid]:
            self.cancelled_whole.add(sid)

    def check(self, rec: tuple) -> None:
        logical, key, v = rec
        if logical == "order_commands":
            OrderCommand.model_validate_json(json.dumps(v), strict=True)
            assert v["type"] == "return_request"
            return
        upd = FulfillmentUpdate.model_validate_json(json.dumps(v), strict=True)
        sid, t = upd.shipment_id, upd.type
        assert key == upd.order_id
        assert sid in self.open, f"update for a shipment never released: {v}"
        assert sid not in self.cancelled_whole, f"update after the whole shipment was cancelled: {v}"
        assert self.state.get(sid) != "rejected", f"update after the node rejected the shipment: {v}"
        if t in ("short", "rejected", "shipped", "picked_up"):
            for ln in upd.lines:
                assert ln.qty <= self.open[sid][ln.line_id], f"{t} beyond what is released and not cancelled: {v}"
                self.open[sid][ln.line_id] -= ln.qty
                if t in ("shipped", "picked_up"):
                    self.shipped[sid][ln.line_id] += ln.qty
            if t in ("shipped", "picked_up", "rejected"):
                self.state[sid] = t
        elif t == "delivered":
            assert self.state.get(sid) == "shipped", f"delivered before shipped: {v}"
            self.state[sid] = "delivered"
        elif t == "return_received":
            assert self.state.get(sid) in ("delivered", "picked_up")
            for ln in upd.lines:
                self.returned[sid][ln.line_id] += ln.qty
                assert self.returned[sid][ln.line_id] <= self.shipped[sid][ln.line_id]
        else:
            assert self.state.get(sid) is None, f"{t} after the shipment left: {v}"
            assert upd.lines and all(0 < ln.qty <= self.open[sid][ln.line_id] for ln in upd.lines), v


@pytest.mark.parametrize("seed", range(12))
def test_the_actor_only_reports_on_released_units_and_honours_cancels(seed):
    rng = random.Random(seed)
    actor = FulfilmentActor(seed=seed, short_rate=0.2, reject_rate=0.1, return_rate=0.3, pace=1.0)
    ledger = Ledger()
    releases: list[dict] = []
    now = 0.0
    sent = Counter()
    for step in range(400):
        now += rng.uniform(0.0, 0.3)
        roll = rng.random()
        if roll < 0.35:
            method = rng.choice(METHODS)
            lines = [{"line_id": f"L{j}", "sku": f"SKU-{j}", "qty": rng.randint(1, 3)} for j in range(rng.randint(1, 3))]
            req = release(f"O{seed}-{step}", 1, method=method, lines=lines)
            releases.append(req)
        elif roll < 0.5 and releases:
            base = rng.choice(releases)
            ln = rng.choice(base["lines"])
            whole = rng.random() < 0.5
            lines = base["lines"] if whole else [dict(ln, qty=rng.randint(1, ln["qty"]))]
            req = cancel(base, lines, tag=str(step))
        elif roll < 0.55 and releases:
            req = rng.choice(releases)  # stockflow repeating an output after a crash
        else:
            req = None
        if req is not None:
            # a cancel the node got after it shipped is the race stockflow dead-letters; the
            # ledger only holds the actor to cancels that arrived in time
            if not (req["action"] == "cancel" and ledger.state.get(req["shipment_id"])):
                ledger.request(req)
            actor.on_request(req, now)
        for rec in actor.due(now, AT):
            ledger.check(rec)
            sent[rec[2]["type"]] += 1
    for rec in actor.due(now + 1000, AT):
        ledger.check(rec)
        sent[rec[2]["type"]] += 1
    # the scenario did exercise every path
    assert sent["shipped"] + sent["picked_up"] > 10 and sent["short"] and sent["rejected"], sent
    assert actor.stats["cancelled_shipments"] > 0 and actor.stats["duplicate_requests"] > 0, actor.stats


def test_a_shipment_cancelled_before_it_ships_is_never_shipped():
    actor = FulfilmentActor(seed=1, short_rate=0, reject_rate=0, return_rate=0)
    req = release("O1", 1)
    actor.on_request(req, now=0.0)
    actor.on_request(cancel(req, req["lines"]), now=0.1)
    assert actor.due(1e6, AT) == []
    assert actor.pending() == 0


def test_a_partly_cancelled_shipment_ships_only_the_rest():
    actor = FulfilmentActor(seed=1, short_rate=0, reject_rate=0, return_rate=0)
    req = release("O1", 1)
    actor.on_request(req, now=0.0)
    actor.on_request(cancel(req, [{"line_id": "L1", "sku": "SKU-1", "qty": 1}]), now=0.1)
    out = {v["type"]: v for _, _, v in actor.due(1e6, AT)}
    assert list(out) == ["picked", "packed", "shipped", "delivered"]
    assert sorted((ln["line_id"], ln["qty"]) for ln in out["shipped"]["lines"]) == [("L1", 1), ("L2", 1)]


def test_a_cancel_after_shipping_changes_nothing_and_is_counted():
    actor = FulfilmentActor(seed=1, short_rate=0, reject_rate=0, return_rate=0)
    req = release("O1", 1)
    actor.on_request(req, now=0.0)
    first = actor.due(5.0 * 3, AT)  # picked, packed and shipped are due within 4.5 s
    assert [v["type"] for _, _, v in first][:3] == ["picked", "packed", "shipped"]
    actor.on_request(cancel(req, req["lines"]), now=20.0)
    assert actor.stats["cancel_too_late"] == 1
    assert [v["type"] for _, _, v in first + actor.due(1e6, AT)] == ["picked", "packed", "shipped", "delivered"]


def test_pickup_orders_are_made_ready_then_picked_up_never_delivered_by_a_carrier():
    actor = FulfilmentActor(seed=2, short_rate=0, reject_rate=0, return_rate=0)
    actor.on_request(release("O1", 1, method="curbside"), now=0.0)
    assert [v["type"] for _, _, v in actor.due(1e6, AT)] == ["picked", "ready_for_pickup", "picked_up"]


def test_a_shipments_fate_does_not_depend_on_the_order_requests_arrive_in():
    reqs = [release(f"O{i}", 1, method=METHODS[i % 4]) for i in range(300)]

    def run(order: list[dict]) -> dict:
        actor = FulfilmentActor(seed=9, short_rate=0.2, reject_rate=0.1, return_rate=0.3)
        for r in order:
            actor.on_request(r, now=0.0)
        by_shipment = defaultdict(list)
        for _, _, v in actor.due(1e6, AT):
            by_shipment[v.get("shipment_id") or v["event_id"]].append(v)
        return dict(by_shipment)

    shuffled = reqs[:]
    random.Random(4).shuffle(shuffled)
    assert run(reqs) == run(shuffled)
    other = FulfilmentActor(seed=10, short_rate=0.2, reject_rate=0.1, return_rate=0.3)
    for r in reqs:
        other.on_request(r, now=0.0)
    assert run(reqs) != {v.get("shipment_id") or v["event_id"]: [v] for _, _, v in other.due(1e6, AT)}


# ----------------------------------------------------------------- the flags
def test_shares_parse():
    assert parse_shares("web=5, app=3,store=1", CHANNELS, "channels") == {"web": 5.0, "app": 3.0, "store": 1.0}
    assert parse_shares("ship=6,pickup=2,same_day=2", METHODS, "methods") == {"ship": 6.0, "pickup": 2.0,
                                                                             "same_day": 2.0}
    assert parse_shares(None, CHANNELS, "channels") is None


@pytest.mark.parametrize("spec, reason", [
    ("web=5,fax=1", "unknown 'fax'"),
    ("web", "not name=weight"),
    ("web=-1", ">= 0"),
    ("web=lots", "not a number"),
    ("web=inf", "finite"),
    ("web=0,app=0", "add up to 0"),
    ("web=1,web=2", "given twice"),
    ("web=1,,app=2", "empty entry"),
])
def test_bad_channel_strings_are_refused_with_the_reason(spec, reason):
    with pytest.raises(SimulationError, match=reason):
        parse_shares(spec, CHANNELS, "channels")


def test_bad_rates_are_refused():
    assert check_rate("short-rate", None, 0.03) == 0.03
    with pytest.raises(SimulationError, match="between 0 and 1"):
        check_rate("short-rate", 1.5, 0.03)
    with pytest.raises(SimulationError, match="between 0 and 1"):
        FulfilmentActor(return_rate=-0.1)


def test_the_simulate_flags_build_the_day_and_bad_ones_fail_before_any_kafka(capsys):
    args = build_parser().parse_args(["simulate", "--channels", "web=1", "--methods", "pickup=1", "--skus", "50",
                                      "--seed", "3", "--short-rate", "0.5", "--cancel-rate", "0.25"])
    day, actor = build(args, seed=args.seed, n_skus=args.skus)
    creates = [v for _ in range(3000) for lg, _, v in day.next_events()
               if lg == "order_commands" and v["type"] == "create"]
    assert creates and {(v["channel"], v["delivery"]["method"]) for v in creates} == {("web", "pickup")}
    assert day.cancel_rate == 0.25 and actor.short_rate == 0.5 and len(day.skus) == 50
    # a bad flag is a clean exit 2 with the reason, without touching a broker
    assert cli_main(["simulate", "--channels", "web=5,fax=1"]) == 2
    assert "unknown 'fax'" in capsys.readouterr().err
    assert cli_main(["simulate", "--return-rate", "2"]) == 2
    assert "--return-rate" in capsys.readouterr().err
