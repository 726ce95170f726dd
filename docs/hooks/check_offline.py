"""Check that a built docs site renders its diagrams with no network, in headless Chromium.

Usage::

    .venv/bin/mkdocs build --strict -d site
    .venv/bin/python docs/hooks/check_offline.py site [--screenshot-dir DIR]

The site is served on 127.0.0.1 (a free port). Chromium resolves every other host
to nothing (``--host-resolver-rules``), so a page that needed a CDN would fail here,
and its network log is read back to list every URL the page asked for. For each page
holding ``mermaid`` diagrams it checks that:

- every request went to the local server (no CDN, no web fonts);
- every diagram was rendered: Material replaces each ``<pre class="mermaid">`` with a
  ``<div class="mermaid">`` holding the SVG (in a closed shadow root) only once
  mermaid has drawn it, so a diagram left as raw text has no such ``<div>``.

Exit status 0 when every page passes, 1 otherwise; 2 when Chromium is not installed.
Screenshots (optional) are for a person to look at.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_PRE = re.compile(r'<pre class="mermaid">')
_DIV = re.compile(r'<div class="mermaid">')


def find_chromium() -> str | None:
    """The path of a Chromium-like browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(browser: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-sync", "--no-default-browser-check",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--virtual-time-budget=5000", *extra, url],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _requested_urls(net_log: Path, origin: str) -> set[str]:
    """Every URL the page (initiator ``origin``) asked for, from Chromium's net log.

    The browser's own background traffic (update checks, accounts, spell-check
    dictionaries) has no page initiator and is not the site's doing, so it is left out.
    """
    # The net log is JSON; a run cut short may leave it unterminated.
    text = net_log.read_text(encoding="utf-8", errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):
        text += "]}"
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        return set()
    start_job = log.get("constants", {}).get("logEventTypes", {}).get("URL_REQUEST_START_JOB")
    urls = set()
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") == start_job and params.get("initiator") == origin:
            urls.add(str(params.get("url")))
    return urls


def check_page(browser: str, base: str, page: str, source_html: str,
               screenshot: Path | None = None) -> list[str]:
    """Problems found on one page (empty: the page passes)."""
    expected = len(_PRE.findall(source_html))
    url = base + page
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        net_log = Path(tmp) / "net.json"
        dom = _chromium(browser, url, f"--log-net-log={net_log}", "--dump-dom").stdout
        if net_log.exists():
            requested_urls = _requested_urls(net_log, base.rstrip("/"))
            if not requested_urls:
                problems.append(f"{page}: the network log shows no request from the page")
            for requested in sorted(requested_urls):
                if urlparse(requested).hostname != "127.0.0.1":
                    problems.append(f"{page}: asked the network for {requested}")
    drawn = len(_DIV.findall(dom))
    if drawn != expected:
        problems.append(f"{page}: {drawn} of {expected} diagrams rendered as SVG")
    if screenshot is not None:
        _chromium(browser, url, "--window-size=1400,2400", f"--screenshot={screenshot}")
    return problems


def check_site(site: Path, screenshot_dir: Path | None = None) -> tuple[int, list[str]]:
    """Serve ``site`` locally and check every page with diagrams.

    Returns the number of pages checked and the problems found.
    """
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH (apt-get install chromium)")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    pages = 0
    try:
        for path in sorted(site.rglob("*.html")):
            source = path.read_text(encoding="utf-8")
            if not _PRE.search(source):
                continue
            page = path.relative_to(site).as_posix().removesuffix("index.html")
            shot = None
            if screenshot_dir is not None:
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                shot = screenshot_dir / ((page.strip("/").replace("/", "-") or "index") + ".png")
            problems += check_page(browser, base, page, source, shot)
            pages += 1
    finally:
        server.shutdown()
        server.server_close()
    return pages, problems


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build -d SITE)")
    parser.add_argument("--screenshot-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        pages, problems = check_site(args.site, args.screenshot_dir)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    for problem in problems:
        print("FAIL", problem)
    print(f"{pages} pages with diagrams checked offline, {len(problems)} problem(s)")
    return 1 if problems or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
