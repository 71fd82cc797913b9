"""CSV imports: row checking, the report of rejected rows, deterministic ids (no broker)."""
from __future__ import annotations

import io
from pathlib import Path
from argparse import Namespace
from datetime import datetime, timezone

import pytest

from stockflow.connectors.csv_import import (
    ImportFileError,
    Report,
    file_digest,
    main_stock,
    node_rows,
    print_report,
    read_file,
    stock_rows,
)
from stockflow.errors import StockflowError
from stockflow.streams.codec import decode, encode
from stockflow.streams.events import MAX_BATCH_MOVEMENTS, InventoryMovementBatch

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)

STOCK = b"""sku,node_id,on_hand
SKU-1,DC-BER,120
SKU-1,ST-MITTE,4

SKU-2,DC-BER,0
SKU-3,DC-BER,-2
SKU-4,,5
SKU-5,DC-BER,five
SKU-6,DC-BER,2.5
SKU-1,DC-BER,99
SKU-7,DC-BER,1,extra
"""


def test_stock_rows_become_count_movements():
    parsed = stock_rows(STOCK, now=NOW)
    assert parsed.rows == 9  # the blank line is not a row
    assert [(line, key, ev.sku, ev.node_id, ev.type, ev.qty) for line, key, ev in parsed.good] == [
        (2, "SKU-1", "SKU-1", "DC-BER", "count", 120),
        (3, "SKU-1", "SKU-1", "ST-MITTE", "count", 4),
        (5, "SKU-2", "SKU-2", "DC-BER", "count", 0),
    ]
    assert all(ev.occurred_at == NOW for _, _, ev in parsed.good)


def test_bad_stock_rows_are_reported_by_file_line():
    reasons = dict(stock_rows(STOCK, now=NOW).rejected)
    assert sorted(reasons) == [6, 7, 8, 9, 10, 11]
    assert reasons[6] == "on_hand must be >= 0, got -2"
    assert reasons[7] == "node_id is empty"
    assert reasons[8] == "on_hand must be a whole number, got 'five'"
    assert reasons[9] == "on_hand must be a whole number, got '2.5'"
    assert reasons[10] == "SKU-1 at DC-BER already given on line 2"
    assert reasons[11] == "4 cells but the header has 3"


def test_event_ids_come_from_file_content_and_line():
    first = stock_rows(STOCK, now=NOW)
    again = stock_rows(STOCK, now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    digest = file_digest(STOCK)
    ids = [ev.event_id for _, _, ev in first.good]
    # the same file imported later: the same ids, so the worker counts it once
    assert ids == [ev.event_id for _, _, ev in again.good]
    assert ids == [f"import-{digest}-2", f"import-{digest}-3", f"import-{digest}-5"]
    changed = stock_rows(STOCK.replace(b"120", b"121"), now=NOW)
    assert {ev.event_id for _, _, ev in changed.good}.isdisjoint(ids)


def test_a_skus_rows_go_out_as_envelopes_named_after_their_first_row():
    digest = file_digest(STOCK)
    records = stock_rows(STOCK, now=NOW).records()
    assert [(lines, key, ev.event_id) for lines, key, ev in records] == [
        ((2, 3), "SKU-1", f"import-{digest}-2"),
        ((5,), "SKU-2", f"import-{digest}-5"),
    ]
    lines, _, env = records[0]
    # what the worker reads: the envelope form, each row a count with the import's reason
    back = decode(encode(env), InventoryMovementBatch, 1 << 20)
    assert back.sku == "SKU-1" and back.occurred_at == NOW
    assert [(m.node_id, m.type, m.qty, m.reason) for m in back.movements] == [
        ("DC-BER", "count", 120, f"snapshot import {digest}"), ("ST-MITTE", "count", 4, f"snapshot import {digest}")]
    # the same file later: the same envelopes and ids
    assert [ev.event_id for _, _, ev in stock_rows(STOCK, now=datetime(2026, 12, 1, tzinfo=timezone.utc)).records()] \
        == [ev.event_id for _, _, ev in records]


def test_a_sku_spread_over_the_file_and_over_the_envelope_limit():
    rows = [f"BIG,N{i:04d},{i % 7}" for i in range(MAX_BATCH_MOVEMENTS + 5)]
    rows.insert(3, "SMALL,N0001,2")
    data = ("sku,node_id,on_hand\n" + "\n".join(rows) + "\n").encode()
    records = stock_rows(data, now=NOW).records()
    assert [(key, len(lines), len(ev.movements)) for lines, key, ev in records] == [
        ("BIG", MAX_BATCH_MOVEMENTS, MAX_BATCH_MOVEMENTS), ("BIG", 5, 5), ("SMALL", 1, 1)]
    assert sorted(line for lines, _, _ in records for line in lines) == list(range(2, len(rows) + 2))
    assert len({ev.event_id for _, _, ev in records}) == 3
    # each envelope's lines are its rows, in file order
    first = records[0]
    assert [m.node_id for m in first[2].movements][:4] == ["N0000", "N0001", "N0002", "N0003"]


def test_node_files_still_send_a_record_per_row():
    parsed = node_rows(b"node_id,kind,lat,lon\nN1,dc,52.5,13.4\nN2,store,52.4,13.3\n")
    assert [(lines, key) for lines, key, _ in parsed.records()] == [((2,), "N1"), ((3,), "N2")]


def test_header_is_found_case_insensitively_with_a_bom_and_columns_in_any_order():
    data = "\ufeffOn_Hand, SKU ,node_id,comment\r\n7,A,N1,first count\r\n".encode()
    parsed = stock_rows(data, now=NOW)
    assert [(ev.sku, ev.node_id, ev.qty) for _, _, ev in parsed.good] == [("A", "N1", 7)]
    assert parsed.rejected == []


@pytest.mark.parametrize("data, says", [
    (b"", "empty file"),
    (b"\n\n", "empty file"),
    (b"sku,node,qty\nA,N1,1\n", "missing node_id,on_hand"),
    (b"\xff\xfesku", "not UTF-8"),
])
def test_a_file_without_a_usable_header_is_an_error(data, says):
    with pytest.raises(ImportFileError) as exc:
        stock_rows(data, name="snap.csv")
    assert says in str(exc.value) and str(exc.value).startswith("snap.csv: ")
    assert isinstance(exc.value, StockflowError)  # cli.py prints it and exits 2


def test_missing_file_is_an_error_with_exit_code_2(tmp_path):
    with pytest.raises(ImportFileError, match="no such file"):
        read_file(tmp_path / "nope.csv")
    from stockflow.cli import main

    assert main(["import-stock", str(tmp_path / "nope.csv")]) == 2
    with pytest.raises(ImportFileError, match="empty file"):
        (tmp_path / "empty.csv").write_bytes(b"")
        main_stock(Namespace(file=str(tmp_path / "empty.csv")))


NODES = b"""node_id,kind,lat,lon,services,daily_capacity,safety_stock,cost_per_order,cost_per_km,active
DC-BER,dc,52.40,13.50,ship|same_day,5000,0,4.5,0.08,true
ST-MITTE,STORE,52.52,13.41,ship pickup curbside,,2,6,0.12,
ST-OLD,store,52.50,13.30,pickup,100,1,6,0.12,no
ST-BAD,shop,52.5,13.3,ship,,,,,
ST-FAR,store,95,13.3,ship,,,,,
ST-SVC,store,52.5,13.3,ship|teleport,,,,,
ST-CAP,store,52.5,13.3,ship,-1,,,,
ST-ACT,store,52.5,13.3,ship,,,,,maybe
,store,52.5,13.3,ship,,,,,
DC-BER,dc,52.40,13.50,ship,,,,,
"""


def test_node_rows_map_every_column_with_defaults_for_empty_cells():
    parsed = node_rows(NODES)
    nodes = {ev.node_id: ev for _, key, ev in parsed.good}
    assert [key for _, key, _ in parsed.good] == ["DC-BER", "ST-MITTE", "ST-OLD"]
    dc = nodes["DC-BER"]
    assert (dc.kind, dc.lat, dc.lon, dc.services, dc.daily_capacity, dc.safety_stock, dc.cost_per_order,
            dc.cost_per_km, dc.active) == ("dc", 52.40, 13.50, ("ship", "same_day"), 5000, 0, 4.5, 0.08, True)
    mitte = nodes["ST-MITTE"]
    assert (mitte.kind, mitte.services, mitte.daily_capacity, mitte.safety_stock, mitte.active) == (
        "store", ("ship", "pickup", "curbside"), None, 2, True)
    assert nodes["ST-OLD"].active is False


def test_bad_node_rows_are_reported_by_line():
    reasons = dict(node_rows(NODES).rejected)
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
    assert "kind" in reasons[5]
    assert "lat" in reasons[6]
    assert "services" in reasons[7]
    assert reasons[8] == "daily_capacity must be >= 0, got -1"
    assert reasons[9] == "active must be true or false, got 'maybe'"
    assert reasons[10] == "node_id is empty"
    assert reasons[11] == "node DC-BER already given on line 2"


def test_report_lists_the_first_20_rejections_and_sets_the_exit_code():
    out = io.StringIO()
    rejected = [(n, f"reason {n}") for n in range(2, 27)]
    report = Report(rows=30, sent=5, rejected=rejected)
    print_report(report, "snap.csv", out)
    text = out.getvalue()
    assert text.splitlines()[0].startswith("snap.csv: 30 rows read, 5 sent, 25 rejected")
    assert "line 21: reason 21" in text and "line 22: reason 22" not in text
    assert "... and 5 more" in text
    assert report.exit_code == 1
    assert Report(rows=3, sent=3, rejected=[]).exit_code == 0
    # nothing refused, but Kafka did not confirm everything: not a success
    assert Report(rows=3, sent=2, rejected=[], unconfirmed=1).exit_code == 1


def test_the_documented_example_files_import_cleanly():
    # docs/integration.md points users at these: they must stay valid.
    examples = Path(__file__).resolve().parents[2] / "docs" / "examples"
    nodes = node_rows((examples / "nodes.csv").read_bytes())
    stock = stock_rows((examples / "stock.csv").read_bytes(), now=NOW)
    assert nodes.rejected == [] and stock.rejected == []
    node_ids = {key for _, key, _ in nodes.good}
    assert len(node_ids) == nodes.rows >= 3
    assert stock.good and {ev.node_id for _, _, ev in stock.good} <= node_ids
