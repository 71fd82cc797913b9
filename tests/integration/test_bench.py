"""``stockflow bench --json`` end to end with tiny sizes against the session broker.

Every phase runs for real (aiokafka baseline, naive Faust agent, Quix
Streams, a stockflow worker for ingest, orders and latency, a second one for
memory and recovery from the changelog); only the sizes are small, so the
figures themselves mean nothing here: the test checks the contract of the
output (exactly the issue's keys, positive numbers, the ratio, p50 <= p99)
and that the run leaves docs/benchmarks.md alone with ``--no-doc``.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

from stockflow import bench

from ..support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

KEYS = {
    "raw_limit_eps", "naive_faust_eps", "quix_eps", "ingest_eps", "ingest_ratio", "orders_per_s",
    "order_p50_ms", "order_p99_ms", "rss_mb", "recovery_s",
}


def test_bench_json_has_exactly_the_figures(kafka_bootstrap, tmp_path):
    doc_before = bench.DOC_PATH.read_text() if bench.DOC_PATH.exists() else None
    env = dict(os.environ)
    env["STOCKFLOW_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    env["STOCKFLOW_DATA_DIR"] = str(tmp_path)
    argv = [sys.executable, "-m", "stockflow.cli", "bench", "--json", "--no-doc",
            "--movements", "8000", "--orders", "60", "--skus", "300", "--nodes", "10",
            "--rate", "50", "--latency-seconds", "3", "--rss-keys", "5000", "--timeout-scale", "2",
            # the envelope phase too, small: 4,000 records of 5 (a worker takes ~5,000 records/s,
            # so the backlog outlasts the 0.1 s polls of the rate measurement)
            "--envelope", "5", "--envelope-movements", "20000"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]

    figures = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert isinstance(figures, dict)
    assert set(figures) == KEYS
    for k, v in figures.items():
        assert isinstance(v, (int, float)) and not isinstance(v, bool), k
        assert math.isfinite(v) and v > 0, (k, v)
    assert figures["ingest_ratio"] == pytest.approx(figures["ingest_eps"] / figures["raw_limit_eps"], abs=2e-3, rel=0.01)
    assert figures["order_p50_ms"] <= figures["order_p99_ms"]
    # raw_limit_eps is the median of the passes the progress lists
    raw = re.search(r"raw_limit_eps:\s+([0-9,]+)\s+events/s\s+\(passes\s+([0-9,\s]+)\)", proc.stderr)
    assert raw, proc.stderr[-2000:]
    passes = [int(v.replace(",", "")) for v in re.split(r",\s+", raw.group(2).strip())]
    assert len(passes) == bench.RAW_PASSES and min(passes) > 0
    assert figures["raw_limit_eps"] == pytest.approx(bench.median(passes), abs=1)
    # the extra floor figure: the worker's Faust path with nothing to do, reported in the progress
    floor = re.search(r"faust_floor_eps: ([0-9,]+) events/s", proc.stderr)
    assert floor and int(floor.group(1).replace(",", "")) > 0, proc.stderr[-2000:]
    # and the same path writing the worker's four records per movement
    out_floor = re.search(r"output_floor_eps: ([0-9,]+) events/s", proc.stderr)
    assert out_floor and 0 < int(out_floor.group(1).replace(",", "")), proc.stderr[-2000:]
    # the extra figure of the worker's CPU an order over the orders phase, and how busy it was
    cpu = re.search(r"the\s+worker's\s+CPU\s+([0-9.]+)\s+ms\s+an\s+order,\s+([0-9]+)%\s+of\s+a\s+core", proc.stderr)
    assert cpu and float(cpu.group(1)) > 0 and 0 < int(cpu.group(2)) <= 250, proc.stderr[-2000:]
    # the extra pure-path figure: the same orders through the worker's functions, no broker
    domain = re.search(r"orders_domain_us:\s+([0-9,]+)\s+us\s+an\s+order\s+\(the\s+order\s+side\s+([0-9,]+),",
                       proc.stderr)
    assert domain and int(domain.group(1).replace(",", "")) >= int(domain.group(2).replace(",", "")) > 0, \
        proc.stderr[-2000:]
    # the extra records-per-order figure: an order is at least its reserve commands' and its decision's records
    per_order = re.search(r"records\s+written\s+per\s+order:\s+([0-9.]+)\s+\(", proc.stderr)
    assert per_order and float(per_order.group(1)) >= 3, proc.stderr[-2000:]
    assert re.search(r"allocations\s+1\.00", proc.stderr), proc.stderr[-2000:]
    # the extra hop figures: every latency order's create-to-decision cut at its three hops
    # (the progress console wraps long lines: any whitespace between words)
    hops = re.search(r"order\s+hops\s+\(p50\s+/\s+p99\s+ms\):\s+create\s+to\s+reserve\s+(\d[\d,]*)\s+/\s+(\d[\d,]*),"
                     r"\s+reserve\s+to\s+answer\s+(\d[\d,]*)\s+/\s+(\d[\d,]*),\s+answer\s+to\s+decision\s+"
                     r"(\d[\d,]*)\s+/\s+(\d[\d,]*)", proc.stderr)
    assert hops, proc.stderr[-2000:]
    p50s = [int(hops.group(i).replace(",", "")) for i in (1, 3, 5)]
    # each hop is a part of the whole: no hop's median above the whole's p99
    assert all(0 <= v <= figures["order_p99_ms"] for v in p50s), (p50s, figures)
    # the extra steady figures: the latency orders after the first tenth offered
    steady = re.search(r"order\s+latency\s+after\s+the\s+first\s+tenth\s+\(p50\s+/\s+p99\s+ms,\s+(\d[\d,]*)"
                       r"\s+orders\):\s+(\d[\d,]*)\s+/\s+(\d[\d,]*)", proc.stderr)
    assert steady, proc.stderr[-2000:]
    n_steady, s50, s99 = (int(steady.group(i).replace(",", "")) for i in (1, 2, 3))
    assert n_steady == 150 - 15  # 50/s for 3 s, less the first tenth
    assert s50 <= s99 and s50 <= figures["order_p99_ms"]
    doc_after = bench.DOC_PATH.read_text() if bench.DOC_PATH.exists() else None
    assert doc_after == doc_before
    # the run's topics (stockflow's, the baselines', Quix's) are gone: left
    # behind they piled up on a user's local broker run after run
    assert "deleted this run's" in proc.stderr
    wait_until(lambda: not _bench_topics(kafka_bootstrap), 30, 0.5, what="bench topics deleted")


def _bench_topics(bootstrap: str) -> list[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-bench")
    try:
        return [t for t in admin.list_topics() if "bench2" in t]
    finally:
        admin.close()


def test_median_of_odd_and_even_counts():
    assert bench.median([5.0, 1.0, 9.0, 3.0, 7.0]) == 5.0
    assert bench.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert bench.median(iter([2.0])) == 2.0
    with pytest.raises(ValueError):
        bench.median([])


def test_percentile_is_exact_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert bench.percentile(values, 0.50) == 50.0
    assert bench.percentile(values, 0.99) == 99.0
    assert bench.percentile([7.0], 0.99) == 7.0


def test_doc_section_replaces_only_between_markers(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\n\nintro\n\n{bench.DOC_START}\nold\n{bench.DOC_END}\n\nanalysis stays\n")
    bench.write_doc(f"{bench.DOC_START}\nnew figures\n{bench.DOC_END}", doc)
    text = doc.read_text()
    assert "new figures" in text and "old" not in text
    assert text.startswith("# B\n\nintro\n\n") and text.endswith("\n\nanalysis stays\n")


def test_hop_latencies_cut_each_order_at_its_hops_and_add_up():
    created = {"a": 1000, "b": 1000, "c": 1000, "d": 1000}
    reserves = {"a": [1010, 1010, 1011], "b": [1020], "d": [1005, 1900]}  # c reserved nothing; d: a later release
    answers = {"a": [1030, 1025, 1200], "b": [1050], "d": [1040]}  # a: an answer after its decision
    decided = {"a": 1100, "b": 1060, "c": 1001, "d": 1045}
    hops = bench.hop_latencies(created, reserves, answers, decided)
    assert hops == {"create_reserve": [10.0, 20.0, 5.0], "reserve_answer": [20.0, 30.0, 35.0],
                    "answer_decision": [70.0, 10.0, 5.0]}
    for i, oid in enumerate(("a", "b", "d")):
        assert sum(hops[h][i] for h in bench.HOPS) == decided[oid] - created[oid]


def test_latencies_after_warmup_skip_the_first_offered_and_keep_the_rest():
    created = {"o0": 1000, "o1": 1010, "o2": 1020, "o3": 1030, "o4": 1040}  # offered in this order
    decided = {"o0": 1900, "o1": 1800, "o2": 1050, "o4": 1045}  # o3 not decided: left out
    assert bench.latencies_after_warmup(created, decided, 2) == [30.0, 5.0]
    assert bench.latencies_after_warmup(created, decided, 0) == [900.0, 790.0, 30.0, 5.0]
    assert bench.latencies_after_warmup(created, decided, 5) == []


def _section(**extra) -> str:
    """The generated section of a run with the base sizes plus ``extra``."""
    base = {"seconds": 10, "movements": 100, "skus": 10, "nodes": 5, "orders": 10, "latency_orders": 20, "rate": 50,
            "offered_rate": 50, "rss_keys_loaded": 50, "rss_skus": 10}
    return bench.doc_section({"figures": {k: 1.0 for k in KEYS}, "extra": {**base, **extra}}, "m", "stockflow bench",
                             "now")


def test_the_generated_section_names_the_hops_when_measured():
    hops = {"hop_orders": 20, "hop_create_reserve_p50_ms": 21.0, "hop_create_reserve_p99_ms": 80.0,
            "hop_reserve_answer_p50_ms": 19.0, "hop_reserve_answer_p99_ms": 45.0,
            "hop_answer_decision_p50_ms": 24.0, "hop_answer_decision_p99_ms": 1_250.0}
    without = _section()
    with_hops = _section(**hops)
    assert "hop" not in without
    assert "create to reserve requests (the order's worker) 21 / 80 ms" in with_hops
    assert "last answer to decision (the order's worker) 24 / 1,250 ms" in with_hops


def test_the_generated_section_names_the_steady_latency_when_measured():
    without = _section()
    with_steady = _section(steady_orders=4_500, steady_p50_ms=31.0, steady_p99_ms=1_094.0)
    assert "first tenth" not in without
    assert "4,500 orders: p50 31 ms, p99 1,094 ms" in with_steady


def test_the_generated_section_names_the_faust_floor_when_measured():
    without = _section()
    with_floor = _section(faust_floor_eps=29_431.6)
    assert "Faust's floor" not in without
    assert "took 29,432 events/s" in with_floor


def test_the_generated_section_names_the_output_floor_when_measured():
    without = _section(faust_floor_eps=29_431.6)
    with_outputs = _section(faust_floor_eps=29_431.6, output_floor_eps=14_120.2)
    assert "four records" not in without
    assert "took 14,120 events/s: the contract's records on this path" in with_outputs


def test_the_output_floor_writes_the_workers_own_shapes():
    """The floor's records are what the worker writes: a seen-events position,
    a SKU state the table reads back, a valid Availability event, an ATP figure."""
    import orjson

    from stockflow.bench_naive_faust import output_topics, sample_values
    from stockflow.domain.atp import SkuState
    from stockflow.streams.events import Availability

    seen, stock, availability, atp = sample_values()
    assert orjson.loads(seen).count(":") == 2  # topic:partition:offset
    state = SkuState.from_dict(orjson.loads(stock))
    assert len(state.stock) == 6 and state.offsets
    event = Availability.model_validate_json(availability)
    assert event.atp == int(atp) == event.on_hand - event.reserved - event.safety_stock
    assert output_topics("p") == ["p-seen", "p-stock", "p-availability", "p-atp"]


def test_records_per_order_counts_what_grew_without_the_inputs_or_the_prefix():
    before = {"p.orders.commands": 10, "p.allocations": 4, "p-seen-events-changelog": 100, "p.deadletter": 7,
              "p.notifications": 0}
    after = {"p.orders.commands": 30, "p.allocations": 24, "p-seen-events-changelog": 183, "p.deadletter": 7,
             "p.notifications": 20, "p.internal.atp": 60}
    got = bench.records_per_order(before, after, 20, {"p.orders.commands"}, "p")
    assert got == {"seen-events-changelog": 4.15, "internal.atp": 3.0, "allocations": 1.0, "notifications": 1.0}
    assert list(got) == ["seen-events-changelog", "internal.atp", "allocations", "notifications"]


def test_the_generated_section_names_the_records_per_order_when_measured():
    without = _section()
    with_records = _section(records_per_order=5.5, records_per_order_by_topic={"internal.atp": 3.0, "allocations": 2.5})
    assert "per order" not in without
    assert "5.5 (internal.atp 3.00, allocations 2.50)" in with_records


def test_the_generated_section_lists_the_raw_passes_when_measured():
    without = _section()
    with_passes = _section(raw_passes_eps=[334_085.2, 518_034.0, 402_356.9])
    assert "median of" not in without
    assert "`raw_limit_eps` is the median of 3 passes over the backlog: 334,085, 518,034, 402,357 events/s" \
        in with_passes


def test_the_generated_section_names_the_orders_cpu_when_measured():
    without = _section()
    with_cpu = _section(orders_cpu_ms=1.2944, orders_busy=0.874)
    assert "ms an order" not in without
    assert "1.29 ms an order, 87% of a core over the phase (it waited the rest" in with_cpu
    busy = _section(orders_cpu_ms=1.2944, orders_busy=0.99)
    assert "99% of a core over the phase." in busy and "waited" not in busy


def test_the_generated_section_names_the_pure_path_when_measured():
    without = _section()
    with_domain = _section(orders_domain_us=640.0,
                           orders_domain_parts_us={"order_side": 350.0, "owner_side": 100.0, "records": 180.0})
    assert "pure functions" not in without
    assert "640 us an order (the order side 350, the SKU owners 100, records and documents 180)" in with_domain
    assert "`orders_per_s` cannot pass 1,562 on one core" in with_domain


def test_cpu_seconds_of_a_process_grow_with_its_work():
    before = bench._cpu_s(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # bounded: about 0.3 s of CPU
        pass
    assert bench._cpu_s(os.getpid()) - before >= 0.2
