"""The dashboard of a real worker, rendered by a real headless Chromium.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it). Without
it the test skips on a developer machine and fails under CI (``CI`` set), so
the browser check cannot silently vanish from the pipeline.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
import urllib.request
import zlib
from collections import Counter
from pathlib import Path

import pytest

from ..support import http_get, movement, node_record, order_create, wait_until

pytestmark = pytest.mark.e2e

NODES = {  # real coordinates, so the scatter looks like the map of Germany it is
    "DC-KASSEL": ("dc", 51.31, 9.48),
    "ST-BERLIN": ("store", 52.52, 13.40),
    "ST-MUNICH": ("store", 48.14, 11.58),
    "ST-HAMBURG": ("store", 53.55, 9.99),
}
STOCK = [("SKU-RED-TEE", "DC-KASSEL", 40), ("SKU-RED-TEE", "ST-BERLIN", 6), ("SKU-BLUE-CAP", "ST-MUNICH", 9),
         ("SKU-GREEN-MUG", "ST-HAMBURG", 3)]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("CI is set but no chromium binary is on PATH (.ci/run installs Debian's chromium)")
    pytest.skip("no chromium or chromium-browser binary on PATH (apt-get install chromium)")


def run_chromium(binary: str, url: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{time.monotonic_ns()}"
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=5000",
        *args, url,
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, cwd=tmp)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
    return proc


def dump_dom(binary: str, url: str, tmp: Path) -> str:
    return run_chromium(binary, url, tmp, "--dump-dom").stdout.decode("utf-8", "replace")


def body_attrs(dom: str) -> dict[str, str]:
    """The <body> attributes, where the page reports its state and any JS error."""
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag, f"no <body> in {dom[:500]}"
    return dict(re.findall(r'([a-z-]+)="([^"]*)"', tag.group(1)))


# ------------------------------------------------------------------ PNG, without Pillow


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) for 8-bit truecolour PNGs, which
    is what Chromium writes; anything else fails loudly."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert header, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        else:
            assert ftype == 0, f"bad PNG filter {ftype}"
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r if bpp == 3 else b"".join(r[i:i + 3] for i in range(0, stride, 4))) for r in rows]


def colours(rows: list[bytes]) -> Counter:
    out: Counter = Counter()
    for r in rows:
        for i in range(0, len(r), 3):
            out[r[i:i + 3]] += 1
    return out


def test_png_decoder_reads_every_filter_type():
    """The screenshot check is only as good as the decoder: check it on a known image."""
    width, height = 3, 5
    pixels = [bytes((x * 40 + y, y * 50, 200 - x * 30)) for y in range(height) for x in range(width)]
    rows = [b"".join(pixels[y * width:(y + 1) * width]) for y in range(height)]

    def encode(ftype: int, line: bytes, prev: bytes) -> bytes:
        out = bytearray()
        for i, v in enumerate(line):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], (prev[i - 3] if i >= 3 else 0)
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((v - pred) & 0xFF)
        return bytes([ftype]) + bytes(out)

    prev, raw = bytes(width * 3), b""
    for y, line in enumerate(rows):
        raw += encode(y % 5, line, prev)
        prev = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    w, h, decoded = decode_png(png)
    assert (w, h) == (width, height)
    assert decoded == rows


# ------------------------------------------------------------------ the page on a worker


def test_dashboard_renders_live_data_in_headless_chromium(cluster, tmp_path):
    binary = chromium_binary()
    started = time.monotonic()
    w = cluster.add_worker()
    page_url = f"{w.url}/dashboard"

    # A fresh worker: the page must render its empty states without a JS error.
    with urllib.request.urlopen(page_url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        html = r.read().decode()
    assert "<script src" not in html and not re.search(r"https?:", html)
    empty = dump_dom(binary, page_url, tmp_path)
    attrs = body_attrs(empty)
    assert "data-js-error" not in attrs, attrs["data-js-error"]
    assert attrs.get("data-state") == "ok", f"page did not load its data: {attrs}"
    assert "no nodes yet" in empty and "no stock in the network yet" in empty

    for node_id, (kind, lat, lon) in NODES.items():
        cluster.send("nodes", node_id, node_record(node_id, kind=kind, lat=lat, lon=lon))
    cluster.flush()
    wait_until(lambda: len(http_get(f"{w.url}/dashboard/data")[1]["nodes"]) == len(NODES), 60, what="nodes on the dashboard")
    for sku, node_id, qty in STOCK:
        cluster.send("movements", sku, movement(sku, node_id, "receipt", qty))
    cluster.send("movements", "junk", b"{not json")  # one dead letter for the panel
    cluster.flush()
    wait_until(lambda: http_get(f"{w.url}/dashboard/data")[1]["network"]["network_atp"] == 58, 60, what="stock in the ATP view")
    # two units of the red tee to Berlin: a shipment released from one node
    cluster.send("order_commands", "dash-1", order_create("dash-1", [("SKU-RED-TEE", 2)], lat=52.52, lon=13.40))
    cluster.flush()

    def settled():
        d = http_get(f"{w.url}/dashboard/data")[1]
        # the allocation counter (metrics) can run a batch ahead of the
        # order table the status panel scans: wait for both
        done = d["released_today"] >= 1 and d["allocations"]["allocated"] >= 1 and d["dead_letters"] \
            and d["orders"]["by_status"].get("allocated")
        return d if done else None

    # the page caches its document for a second; polls go past that
    d = wait_until(settled, 60, 0.5, what="the order allocated and released on the dashboard")
    by_node = {n["node_id"]: n for n in d["nodes"]}
    assert set(by_node) == set(NODES)
    assert (by_node["ST-MUNICH"]["lat"], by_node["ST-MUNICH"]["lon"]) == (48.14, 11.58)
    assert sum(n["released_today"] for n in by_node.values()) == 1
    assert by_node["ST-BERLIN"]["released_today"] == 1  # nearest node that holds the tee
    tops = {t["sku"]: t["network_atp"] for t in d["network"]["top_skus"]}
    assert d["network"]["network_atp"] == 56  # 58 received, 2 reserved
    assert tops == {"SKU-RED-TEE": 44, "SKU-BLUE-CAP": 9, "SKU-GREEN-MUG": 3}
    assert [t["sku"] for t in d["network"]["top_skus"]] == ["SKU-RED-TEE", "SKU-BLUE-CAP", "SKU-GREEN-MUG"]
    assert d["allocations"]["allocated"] == 1
    assert d["orders"]["by_status"] == {"allocated": 1}
    assert d["dead_letters"] == {"not_json": 1}
    assert d["events"].get("inventory.movements", 0) >= len(STOCK)
    assert d["latency"]["count"] >= 1 and d["latency"]["p99"] is not None
    assert d["counters"]["oversell_violations"] == 0
    assert http_get(f"{w.url}/dashboard/data?top=1")[1]["network"]["top_skus"][0]["sku"] == "SKU-RED-TEE"
    assert len(http_get(f"{w.url}/dashboard/data?top=1")[1]["network"]["top_skus"]) == 1

    # After the JS ran: the names and figures are in the DOM.
    dom = dump_dom(binary, page_url, tmp_path)
    attrs = body_attrs(dom)
    assert "data-js-error" not in attrs, attrs["data-js-error"]
    assert attrs.get("data-state") == "ok", attrs
    assert int(attrs["data-polls"]) >= 2, "the page should keep polling"
    for node_id in NODES:
        assert node_id in dom, f"{node_id} not rendered"
    for sku, _, _ in STOCK:
        assert sku in dom, f"{sku} not rendered"
    assert "<circle" in dom, "no node scatter"
    assert "not_json" in dom and "inventory.movements" in dom
    assert re.search(r'<div class="v">56</div><div class="l">Network ATP</div>', dom), "network ATP (58 - 2 reserved) not shown"

    shot = tmp_path / "dashboard.png"
    run_chromium(binary, page_url, tmp_path, f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot written"
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (1280, 900)
    hist = colours(rows)
    total = width * height
    background, bg_count = hist.most_common(1)[0]
    assert len(hist) > 200, f"only {len(hist)} colours: blank or unstyled"
    assert 1 - bg_count / total > 0.10, f"{bg_count / total:.0%} of the screenshot is one colour"
    # the dark header band and the data: the CSS applied and the bars/circles drew
    assert rows[10][:3] == bytes((0x1D, 0x27, 0x33)), rows[10][:3]
    blue = sum(c for rgb, c in hist.items() if rgb[2] > 180 and rgb[0] < 90 and rgb[1] < 140)
    assert blue > 500, f"{blue} blue pixels: no bars drawn"
    if os.environ.get("STOCKFLOW_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["STOCKFLOW_KEEP_SCREENSHOT"])
    print(f"dashboard e2e took {time.monotonic() - started:.1f}s; screenshot {len(hist)} colours, "
          f"{1 - bg_count / total:.0%} non-background")
