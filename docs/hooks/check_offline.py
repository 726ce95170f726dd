"""Check a built docs site in headless Chromium with no network: served, and from disk.

Usage::

    .venv/bin/mkdocs build --strict -d site
    .venv/bin/python docs/hooks/check_offline.py site [--screenshot-dir DIR]

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ended by NUL on file descriptors 3 and 4), by the small client below:
no Playwright, no WebSocket library, no browser download, and no coupling to the
protocol version a driver was built for. Chromium resolves every host to nothing
(``--host-resolver-rules``), so a page that needed a CDN fails here, and every request
a page makes is recorded (``Network.requestWillBeSent``) and checked.

Served (``check_site``): the site is served on 127.0.0.1; every page holding diagrams
must ask only that server for anything, and draw every diagram as an SVG.

From disk (``check_file_site``), as a reader opening ``site/index.html`` would, in
both languages:

- a navigation link opens a page of the site (not a directory listing);
- the language switch leads to the same page in the other language;
- search finds results, on the Chinese site for a Chinese query, and only pages of
  the site searched;
- every diagram is drawn, and the labels of the large diagrams are readable (their
  rendered font size is measured in the page).

Exit status 0 when everything passes, 1 otherwise; 2 when Chromium is not installed.
Screenshots (optional) are for a person to look at.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: What the ``mermaid`` fence becomes in the built HTML (see mkdocs.yml).
DIAGRAM_SOURCE = re.compile(r'<pre class="gridflow-mermaid">')
#: Pages whose diagrams are large; their labels must stay readable.
LARGE_DIAGRAM_PAGES = ("mediation.html", "grid-case.html")
#: The smallest rendered label font size, in CSS pixels, a reader can be asked to read.
MIN_LABEL_PX = 10.0
#: (site folder, search query that must find something there) per language.
SEARCHES = (("", "revisit"), ("zh/", "回头看"))
#: URL schemes a page may use without the network.
LOCAL_SCHEMES = ("data", "blob", "about", "chrome-error")


def find_chromium() -> str | None:
    """The path of a Chromium-like browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


_FD_SHIM = (
    "import os, sys\n"
    "r, w = int(sys.argv[1]), int(sys.argv[2])\n"
    "a, b = os.dup(r), os.dup(w)\n"
    "[os.close(fd) for fd in (r, w)]\n"
    "os.dup2(a, 3); os.dup2(b, 4)\n"
    "[os.close(fd) for fd in (a, b) if fd not in (3, 4)]\n"
    "os.set_inheritable(3, True); os.set_inheritable(4, True)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


class BrowserError(RuntimeError):
    """Chromium did not answer as expected (crashed, timed out, reported an error)."""


# -- a DevTools-protocol client on a pipe -------------------------------------------------


class Chromium:
    """One headless Chromium; ``tab()`` opens pages. Use as a context manager."""

    def __init__(self, executable: str | None = None, *, timeout: float = 30.0,
                 window: tuple[int, int] = (1400, 1000)) -> None:
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError("no Chromium on PATH (apt-get install chromium)")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="gridflow-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            executable, "--headless", "--no-sandbox", "--disable-gpu",
            "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--mute-audio", "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--window-size={window[0]},{window[1]}", "about:blank",
        ]
        # Chromium reads commands on fd 3 and writes answers on fd 4. subprocess passes
        # descriptors but cannot renumber them, so a one-line Python shim does (through
        # fresh copies: a pipe end may itself be 3 or 4) and then becomes Chromium.
        self._log = Path(self._profile.name) / "chromium.log"
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _FD_SHIM, str(to_browser_r), str(from_browser_w),
                 *args],
                pass_fds=(to_browser_r, from_browser_w),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self._lock = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}

    # transport

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._messages.put(None)
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for raw in complete:
                if raw:
                    self._messages.put(json.loads(raw))

    def _pump(self, timeout: float) -> bool:
        """Take one message off the pipe; False when none came within ``timeout``."""
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            return False
        if message is None:
            raise BrowserError("Chromium closed the DevTools pipe (it exited or crashed): "
                               + self._log_tail())
        if "id" in message:
            self._answers[message["id"]] = message
        else:
            self._events.setdefault(message.get("sessionId", ""), []).append(message)
        return True

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        except OSError:
            return "(no log)"

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer (``result``)."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"{method}: Chromium is gone ({exc}): {self._log_tail()}") \
                from None
        wait = self.timeout if timeout is None else timeout
        while ident not in self._answers:
            if not self._pump(wait):
                raise BrowserError(f"Chromium did not answer {method} within {wait:.0f} s")
        answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return dict(answer.get("result", {}))

    def events(self, session: str) -> list[dict[str, Any]]:
        """Every event received for ``session`` so far (the list is live)."""
        return self._events.setdefault(session, [])

    def wait_event(self, session: str, method: str, start: int, timeout: float) -> int:
        """Wait for an event ``method`` at or after index ``start``; returns its index."""
        events = self.events(session)
        index = start
        while True:
            while index < len(events):
                if events[index].get("method") == method:
                    return index
                index += 1
            if not self._pump(timeout):
                raise BrowserError(f"no {method} within {timeout:.0f} s")

    # pages

    def tab(self) -> Tab:
        """A new page (tab) with the Page, Runtime and Network domains enabled."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable", session=session)
        return Tab(self, session, target)

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                with suppress(BrowserError, OSError):
                    self.send("Browser.close", timeout=5)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        finally:
            for fd in (self._to_browser, self._from_browser):
                with suppress(OSError):
                    os.close(fd)
            self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tab:
    """One page of a ``Chromium``."""

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser, self.session, self.target = browser, session, target

    def goto(self, url: str, timeout: float | None = None) -> None:
        """Open ``url`` and wait for its load event."""
        start = len(self.browser.events(self.session))
        answer = self.browser.send("Page.navigate", {"url": url}, session=self.session)
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")
        self.browser.wait_event(self.session, "Page.loadEventFired", start,
                                timeout or self.browser.timeout)

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        answer = self.browser.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, session=self.session, timeout=(timeout or self.browser.timeout) + 5)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript failed: {text}")
        return answer.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float | None = None) -> Any:
        """Poll ``condition`` (a JavaScript expression) in the page until it is truthy;
        its value, or ``None`` when ``timeout`` seconds passed first. The page polls on
        its own timers, so nothing waits here but the browser."""
        limit = timeout or self.browser.timeout
        return self.evaluate(
            f"new Promise(resolve => {{ const end = Date.now() + {int(limit * 1000)};"
            f" (function poll() {{ let v; try {{ v = ({condition}); }} catch (e) {{ v = null; }}"
            " if (v || Date.now() > end) resolve(v || null); else setTimeout(poll, 50);"
            " })(); })", timeout=limit)

    def requested_urls(self) -> list[str]:
        """Every URL this tab asked for so far."""
        return [e["params"]["request"]["url"] for e in self.browser.events(self.session)
                if e.get("method") == "Network.requestWillBeSent"]

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions so far."""
        out = []
        for event in self.browser.events(self.session):
            if event.get("method") == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                out.append(str(details.get("exception", {}).get("description")
                               or details.get("text")))
        return out

    def screenshot(self, path: Path) -> None:
        data = self.browser.send("Page.captureScreenshot", {"format": "png"},
                                 session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


@contextmanager
def open_tab(browser: Chromium) -> Iterator[Tab]:
    tab = browser.tab()
    try:
        yield tab
    finally:
        tab.close()


# -- what is checked in a page ------------------------------------------------------------

#: Resolves when every diagram of the page is drawn (or there is none).
_DIAGRAMS_DONE = ("!document.querySelector('pre.gridflow-mermaid') && "
                  "(!document.querySelector('.gridflow-diagram') || "
                  "document.documentElement.dataset.gridflowDiagrams === 'done')")

#: Every drawn diagram of the page: whether it is visible (not in a hidden tab), the
#: text of its labels, and the smallest rendered font size among them.
_DIAGRAM_REPORT = r"""
[...document.querySelectorAll('.gridflow-diagram')].map(box => {
  const svg = box.querySelector('svg');
  if (!svg) return {rendered: box.dataset.rendered || 'no', visible: false, labels: []};
  const rect = svg.getBoundingClientRect();
  const vb = svg.viewBox && svg.viewBox.baseVal;
  const scale = vb && vb.width ? rect.width / vb.width : 1;
  const nodes = [...svg.querySelectorAll('.nodeLabel, .edgeLabel, text')]
    .filter(el => el.textContent.trim() && !el.querySelector('.nodeLabel, .edgeLabel, text'));
  const labels = nodes.map(el => ({
    text: el.textContent.trim(),
    font_px: parseFloat(getComputedStyle(el).fontSize) * scale,
    height_px: el.getBoundingClientRect().height,
  }));
  const visible = labels.filter(l => l.height_px > 0);
  return {
    rendered: box.dataset.rendered, visible: rect.width > 0,
    width_px: rect.width, natural_width: parseFloat(svg.dataset.naturalWidth || '0'),
    labels: labels.map(l => l.text),
    min_font_px: visible.length ? Math.min(...visible.map(l => l.font_px)) : null,
  };
})
"""


def diagrams(tab: Tab, url: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Open ``url`` and report its diagrams once they are drawn (see ``_DIAGRAM_REPORT``)."""
    tab.goto(url)
    if tab.wait_for(_DIAGRAMS_DONE, timeout) is None:
        raise BrowserError(f"{url}: the diagrams were not drawn within {timeout:.0f} s")
    return list(tab.evaluate(_DIAGRAM_REPORT) or [])


def search(tab: Tab, page_url: str, query: str, timeout: float = 30.0) -> list[str]:
    """The result links Material's search shows on ``page_url`` for ``query`` (through
    its deep link ``?q=``, as if typed), resolved to full URLs; empty if none."""
    tab.goto(f"{page_url}?q={quote(query)}")
    found = tab.wait_for(
        "document.querySelectorAll('.md-search-result__item').length > 0 || "
        "(document.querySelector('.md-search-result__meta') || {}).textContent"
        "?.match(/^(No matching|没有找到)/)", timeout)
    if found is None:
        raise BrowserError(f"{page_url}: search for {query!r} gave no answer within "
                           f"{timeout:.0f} s (the index did not load?)")
    return list(tab.evaluate(
        "[...document.querySelectorAll('.md-search-result__item a.md-search-result__link')]"
        ".map(a => a.href)") or [])


def _local(url: str, allowed_host: str | None) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in LOCAL_SCHEMES:
        return True
    if allowed_host is None:
        return parsed.scheme == "file"
    return parsed.scheme in ("http", "https") and parsed.hostname == allowed_host


def _network_problems(tab: Tab, page: str, allowed_host: str | None) -> list[str]:
    return [f"{page}: asked the network for {url}"
            for url in sorted(set(tab.requested_urls())) if not _local(url, allowed_host)]


def _check_diagrams(page: str, report: list[dict[str, Any]], expected: int) -> list[str]:
    problems = []
    drawn = sum(1 for d in report if d["rendered"] == "true")
    if drawn != expected:
        problems.append(f"{page}: {drawn} of {expected} diagrams rendered as SVG")
    if page.removeprefix("zh/") in LARGE_DIAGRAM_PAGES:
        for d in report:
            if d["visible"] and d["min_font_px"] is not None and d["min_font_px"] < MIN_LABEL_PX:
                problems.append(f"{page}: diagram labels are {d['min_font_px']:.1f} px, "
                                f"below {MIN_LABEL_PX:.0f} px")
    return problems


# -- the checks ---------------------------------------------------------------------------


def _pages_with_diagrams(site: Path) -> list[tuple[str, int]]:
    pages = []
    for path in sorted(site.rglob("*.html")):
        count = len(DIAGRAM_SOURCE.findall(path.read_text(encoding="utf-8")))
        if count:
            pages.append((path.relative_to(site).as_posix(), count))
    return pages


def check_site(site: Path, screenshot_dir: Path | None = None,
               browser: Chromium | None = None) -> tuple[int, list[str]]:
    """Serve ``site`` on 127.0.0.1 and check every page with diagrams: drawn, and no
    request beyond that server. Returns the number of pages checked and the problems."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    pages = _pages_with_diagrams(site)
    try:
        with _browser(browser) as chromium:
            for page, expected in pages:
                with open_tab(chromium) as tab:
                    report = diagrams(tab, base + page)
                    problems += _check_diagrams(page, report, expected)
                    problems += _network_problems(tab, page, "127.0.0.1")
                    problems += [f"{page}: JavaScript error: {e}" for e in tab.exceptions()]
                    if screenshot_dir is not None:
                        screenshot_dir.mkdir(parents=True, exist_ok=True)
                        tab.screenshot(screenshot_dir / (page.replace("/", "-") + ".png"))
    finally:
        server.shutdown()
        server.server_close()
    return len(pages), problems


def check_file_site(site: Path, browser: Chromium | None = None) -> list[str]:
    """Check ``site`` opened from disk (``file://``), in every language; the problems."""
    problems: list[str] = []
    root = site.resolve().as_uri() + "/"
    with _browser(browser) as chromium, open_tab(chromium) as tab:
        for folder, query in SEARCHES:
            home = f"{folder}index.html"
            if not (site / home).is_file():
                problems.append(f"{home}: missing")
                continue
            # A navigation link opens a page of the site, not a directory listing.
            tab.goto(root + home)
            start = len(tab.browser.events(tab.session))
            link = tab.evaluate(
                "(() => { const a = [...document.querySelectorAll("
                "'.md-sidebar--primary a.md-nav__link[href]')].find(a => "
                "!a.getAttribute('href').startsWith('#') && "
                "!['index.html', './', '.'].includes(a.getAttribute('href'))); "
                "if (!a) return null; const href = a.href; a.click(); return href; })()")
            if link is None:
                problems.append(f"{home}: no navigation link to follow")
            else:
                tab.browser.wait_event(tab.session, "Page.loadEventFired", start,
                                       tab.browser.timeout)
                landed = tab.evaluate("location.href")
                article = tab.evaluate(
                    "!!document.querySelector('article.md-content__inner h1')")
                if not str(landed).endswith(".html") or not article:
                    problems.append(f"{home}: the navigation link {link} opened {landed}, "
                                    "not a page of the site")
                tab.goto(root + home)
            # The language switch leads to the same page in the other language(s).
            switch = tab.evaluate(
                "[...document.querySelectorAll('a.md-select__link[hreflang]')]"
                ".map(a => [a.getAttribute('hreflang'), a.href])") or []
            langs = {lang for lang, _ in switch}
            if not {"en", "zh"} <= langs:
                problems.append(f"{home}: the language switch offers {sorted(langs)}")
            for lang, href in switch:
                target = urlparse(href).path
                if not Path(target).is_file():
                    problems.append(f"{home}: the language switch to {lang} leads to "
                                    f"{href}, which does not exist")
            # Search works from disk and stays inside this language's site.
            try:
                results = search(tab, root + home, query)
            except BrowserError as exc:
                problems.append(str(exc))
                continue
            if not results:
                problems.append(f"{home}: search for {query!r} found nothing")
            others = [r for r in results if _site_folder(r, root) != folder]
            if others:
                problems.append(f"{home}: search for {query!r} returned pages of another "
                                f"language: {others[:3]}")
            problems += _network_problems(tab, home, None)
        # Every page with diagrams draws them from disk too (large ones readable).
        for page, expected in _pages_with_diagrams(site):
            report = diagrams(tab, root + page)
            problems += _check_diagrams(page, report, expected)
        problems += _network_problems(tab, "file://", None)
        problems += [f"file://: JavaScript error: {e}" for e in tab.exceptions()]
    return problems


def _site_folder(url: str, root: str) -> str:
    relative = url.removeprefix(root)
    first = relative.split("/", 1)[0]
    return f"{first}/" if "/" in relative and first in {f.strip("/") for f, _ in SEARCHES} \
        else ""


@contextmanager
def _browser(browser: Chromium | None) -> Iterator[Chromium]:
    if browser is not None:
        yield browser
        return
    with Chromium() as own:
        yield own


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build -d SITE)")
    parser.add_argument("--screenshot-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        with Chromium() as browser:
            pages, problems = check_site(args.site, args.screenshot_dir, browser)
            problems += check_file_site(args.site, browser)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    for problem in problems:
        print("FAIL", problem)
    print(f"{pages} pages with diagrams checked served and from disk; search, navigation "
          f"and the language switch checked from disk; {len(problems)} problem(s)")
    return 1 if problems or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
