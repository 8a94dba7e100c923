"""Screenshot every chapter page of the built book with headless Chromium.

    python book/tools/screenshots.py [--html book/_build/html] [--out book/_build/screenshots]

Serves the built HTML on 127.0.0.1 (a random free port), opens each chapter page in headless
Chromium (Debian package ``chromium``; ``apt-get install -y chromium``), waits for the
JavaScript (plotly, widgets, MathJax) to run, and writes one tall PNG per page. It then checks,
in the live DOM (``--dump-dom``), that pages which embed plotly figures have a rendered
``.main-svg`` plot and pages with widgets have rendered ``.widget-slider``/``.jupyter-widgets``
elements — i.e. the JavaScript actually ran offline. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]


def _serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    sys.exit("screenshots: Chromium is not installed (apt-get install -y chromium)")


def shoot(url: str, png: Path, height: int = 4000) -> str:
    """Screenshot ``url`` into ``png`` and return the rendered DOM."""
    exe = chromium()
    with tempfile.TemporaryDirectory() as prof:
        common = [exe, *FLAGS, f"--user-data-dir={prof}"]
        subprocess.run(
            [*common, f"--screenshot={png}", f"--window-size=1280,{height}", url],
            check=True,
            capture_output=True,
            timeout=180,
        )
    with tempfile.TemporaryDirectory() as prof:
        dom = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={prof}", "--dump-dom", url],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout
    return dom


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--html", type=Path, default=BOOK / "_build" / "html")
    ap.add_argument("--out", type=Path, default=BOOK / "_build" / "screenshots")
    ap.add_argument("--pages", nargs="*", help="pages relative to --html (default: chapters)")
    ap.add_argument(
        "--height", type=int, default=4000, help="window height in pixels (pages are cut there)"
    )
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    pages = a.pages or sorted(
        p.relative_to(a.html).as_posix() for p in (a.html / "chapters").glob("*.html")
    )
    httpd, base = _serve(a.html)
    problems = []
    try:
        for page in pages:
            png = a.out / (Path(page).stem + ".png")
            dom = shoot(f"{base}/{page}", png, a.height)
            src = (a.html / page).read_text(errors="replace")
            plots_expected = src.count("plotly-graph-div")
            plots_drawn = dom.count('class="main-svg"')
            widgets_expected = "application/vnd.jupyter.widget-view+json" in src
            widgets_drawn = "widget-" in dom and "jupyter-widgets" in dom
            ok = (plots_expected == 0 or plots_drawn > 0) and (
                not widgets_expected or widgets_drawn
            )
            print(
                f"{page:<45} plotly {plots_drawn // 2}/{plots_expected} drawn, widgets "
                f"{'drawn' if widgets_drawn else ('none' if not widgets_expected else 'MISSING')}"
                f"  -> {png}"
            )
            if not ok:
                problems.append(page)
    finally:
        httpd.shutdown()
    if problems:
        print("screenshots: JavaScript output missing on: " + ", ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
