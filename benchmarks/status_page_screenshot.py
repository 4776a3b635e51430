"""Look at the status page as a person would: start `ggroute serve`, send a few requests, take a screenshot of
GET / with headless Chromium (Debian package `chromium`), and check the picture is a real, non-blank page.

    python benchmarks/status_page_screenshot.py [--out status-page.png] [--config config.json]

Without Chromium it prints why it skips and exits 0 (CI machines may lack it); exit 1 when the check fails.
tests/server/test_status_page_screenshot.py runs the same check.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def screenshot(chromium: str, url: str, out: Path, size: tuple[int, int] = (1100, 760)) -> None:
    with tempfile.TemporaryDirectory(prefix="ggroute-chromium-") as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", url],
            check=True, capture_output=True, timeout=120,
        )


def png_stats(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct colours in the first rows of pixels) of an 8-bit RGB(A) PNG, without Pillow."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            channels = {2: 3, 6: 4}.get(colour, 0)
            if depth != 8 or not channels:
                raise ValueError(f"unexpected PNG format (bit depth {depth}, colour type {colour})")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    rows = min(height, 400)
    colours: set[bytes] = set()
    previous = bytearray(stride - 1)
    for y in range(rows):  # undo the PNG row filters, count colours
        line = raw[y * stride:(y + 1) * stride]
        kind, row = line[0], bytearray(line[1:])
        for x in range(len(row)):
            left = row[x - channels] if x >= channels else 0
            up = previous[x]
            up_left = previous[x - channels] if x >= channels else 0
            if kind == 1:
                row[x] = (row[x] + left) & 0xFF
            elif kind == 2:
                row[x] = (row[x] + up) & 0xFF
            elif kind == 3:
                row[x] = (row[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                row[x] = (row[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        colours.update(bytes(row[i:i + 3]) for i in range(0, len(row), channels * 7))
        previous = row
    return width, height, len(colours)


def check_page(url: str, out: Path, chromium: str) -> list[str]:
    """Problems with the page at `url` (empty when it looks right); the screenshot is written to `out`."""
    html = httpx.get(url + "/", timeout=30).text
    problems = [f"the page does not show model {name!r}" for name in ("coder",) if f"<td>{name}</td>" not in html]
    if "No requests yet" in html:
        problems.append("the page shows no recent requests")
    screenshot(chromium, url + "/", out)
    width, height, colours = png_stats(out)
    if (width, height) != (1100, 760) or colours < 8:
        problems.append(f"the screenshot looks blank: {width}x{height}, {colours} colours")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("status-page.png"))
    parser.add_argument("--config", type=Path, default=ROOT / "config.json")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print(f"skipped: no Chromium found ({', '.join(CHROMIUM_NAMES)}); apt-get install chromium")
        return
    proc = subprocess.Popen([sys.executable, "-m", "ggroute.cli", "serve", "--config", str(args.config), "--port",
                             "0", "--log-level", "warning"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = ""
        for line in proc.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        if not url:
            raise SystemExit("ggroute serve did not start")
        threading.Thread(target=lambda: [None for _ in proc.stderr or []], daemon=True).start()
        for model, task in (("auto", "Write a Python function that reverses a string."), ("coder", "Say hi."),
                            ("auto", "Longest increasing subsequence in O(n log n).")):
            body = {"model": model, "messages": [{"role": "user", "content": task}], "max_tokens": 16}
            response = httpx.post(url + "/v1/chat/completions", json=body, timeout=300)
            print(json.dumps({k: response.json()["ggroute"][k] for k in ("route", "model", "finish_reason")}))
        problems = check_page(url, args.out, chromium)
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"screenshot: {args.out}")
    if problems:
        raise SystemExit("status page check failed: " + "; ".join(problems))
    print("status page check passed")


if __name__ == "__main__":
    main()
