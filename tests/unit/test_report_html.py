"""report.html: self-contained, escaped, and it draws a real picture in a real browser."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest

from drtool.report import build_report, load_report, render_html, write_reports
from drtool.report.sample import T0, sample_record
from drtool.report.timeline import COLOURS, render_timeline, tick_step

NOW = T0 + 400
EVIL = '<script>alert("pwned")</script>'


def html_of(record: dict) -> str:
    return render_html(load_report(build_report(record, now=NOW)))


def test_untrusted_text_is_escaped_everywhere():
    record = sample_record("not-converged")
    obj = record["converge"]["objects"][0]
    obj["message"] = EVIL
    obj["state"] = "Failed"
    obj["ready_at"] = None
    obj["name"] = 'x"><img src=x onerror=alert(1)>'
    obj["id"] = f"Kustomization/flux-system/{obj['name']}"
    failure = record["converge"]["failures"][0]
    failure.update(message=EVIL, events=[EVIL], blocks=[EVIL], chain="")
    record["phases"][0]["message"] = EVIL
    record["error"]["message"] = EVIL
    page = html_of(record)
    assert "<script" not in page.lower()
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # inside the SVG too: tooltips and labels
    svg = render_timeline(load_report(build_report(record, now=NOW)))
    assert "<script" not in svg and "&lt;script&gt;" in svg


def test_page_is_self_contained():
    page = html_of(sample_record("complete"))
    assert "<style>" in page and "<svg" in page
    # the only URL is the SVG namespace; nothing is loaded from anywhere
    assert set(re.findall(r"https?://[^\s\"')]+", page)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert "@import" not in page and " src=" not in page


def test_timeline_draws_every_phase_and_object():
    report = load_report(build_report(sample_record("complete"), now=NOW))
    svg = render_timeline(report)
    bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="13"', svg)
    assert len(bars) == len(report.phases) + len(report.objects)
    for label in ("install_servers", "HelmRelease logging/loki", "recovery start", "converged (5m 16s)"):
        assert label in svg
    assert svg.count('stroke="#1b1f24" stroke-width="2"') == len(report.critical_path)
    assert "+5:00" in svg  # tick labels as offsets from run start


def test_timeline_of_an_interrupted_run_ends_where_it_stopped():
    report = load_report(build_report(sample_record("interrupted"), now=NOW))
    svg = render_timeline(report)
    assert "stopped in install_servers" in svg
    assert f'fill="{COLOURS["interrupted"]}"' in svg


@pytest.mark.parametrize("span, step", [(4, 1), (50, 5), (348, 60), (1200, 120), (5000, 600)])
def test_tick_steps_are_round(span, step):
    assert tick_step(span) == step


def test_failed_preflight_page_explains_itself():
    page = html_of(sample_record("preflight-failed"))
    assert "Partial report:</b> the run stopped in <code>preflight</code>" in page
    assert "PreflightFailed: node2: sudo requires a password (exit code 3)" in page
    assert ">FAIL<" in page


# --- in a real browser ------------------------------------------------------------------------

def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG into rows of raw pixel bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 2:  # Up, most of a screenshot's rows: byte-wise addition mod 256 of whole rows at once
            a_, b_ = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            line = bytearray((((a_ & low) + (b_ & low)) ^ ((a_ ^ b_) & high)).to_bytes(stride, "big"))
            rows.append(bytes(line))
            prev = line
            continue
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    paths = write_reports(tmp_path, sample_record("not-converged"), now=NOW)
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--force-color-profile=srgb",
                        f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1400,1800",
                        paths["html"].resolve().as_uri()],
                       check=True, capture_output=True, timeout=90)
    data = shot.read_bytes()
    assert len(data) > 30_000
    width, bpp, rows = _png_pixels(data)
    assert width == 1400
    colours: dict[bytes, int] = {}
    for row in rows[::2]:
        for x in range(0, len(row), bpp * 2):
            px = row[x:x + 3]
            colours[px] = colours.get(px, 0) + 1
    total = sum(colours.values())
    assert len(colours) > 50, "the screenshot is nearly a single colour"
    assert max(colours.values()) < 0.9 * total

    def share(hex_colour: str) -> int:
        want = bytes.fromhex(hex_colour.lstrip("#"))
        return sum(n for px, n in colours.items() if all(abs(p - w) <= 4 for p, w in zip(px, want)))
    # solid bars of the timeline and the badge: phases ok (green), failed (red), objects Ready (blue)
    assert share(COLOURS["ok"]) > 200
    assert share(COLOURS["failed"]) > 200
    assert share(COLOURS["ready"]) > 200


def test_a_running_phase_is_drawn_to_the_time_of_the_report():
    record = sample_record("interrupted")
    record["phases"][-1]["outcome"] = "running"
    record.update(status="running", ended_at=None, stopped_at=None, error=None)
    report = load_report(build_report(record, now=T0 + 60))
    svg = render_timeline(report)
    assert f'fill="{COLOURS["running"]}"' in svg
    assert "<code>install_servers</code>" in render_html(report)
    assert ">running<" in render_html(report)
