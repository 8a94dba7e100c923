"""Execute every chapter that has widgets N times under CPU load and count execution stalls.

Usage (from the repository root)::

    .venv/bin/python book/tools/stress.py                      # FAST mode, 10 rounds, 1 load process
    .venv/bin/python book/tools/stress.py --rounds 3 book/chapters/01_faces_as_data.md
    .venv/bin/python book/tools/stress.py --no-load --rounds 1  # a quick check without load

Why: ``widgets.interact`` and ``with out:`` Output capture race with nbclient (nbclient issue
312): now and then the kernel sits idle while nbclient waits for a message it missed, until the
per-cell timeout. The race needs an unlucky interleaving, so one clean run proves little; this
script runs each widget chapter (``ipywidgets``, ``viz.interactive`` or ``model_explorer`` in
its source) ``--rounds`` times, as ``book/tools/run_chapter.py`` runs it (FAST mode unless
``--full``, one torch thread, the book's IPYTHONDIR), while ``--load`` busy-looping processes
compete for the CPU.

A *stall* is the race's signature: a code cell that runs longer than ``--slack`` seconds (or
hits the per-cell ``--timeout``) while the kernel process sits idle -- it used less than
``--idle`` (5 %) of one core over the cell's wall time (read from ``/proc``). A cell that is
merely slow on a loaded machine keeps its kernel busy; it is reported as ``slow`` (more than
``--factor`` times its median over the rounds plus ``--slack`` seconds, or a timeout), not as
a stall. Each round also checks the saved widget state: an ``Output`` widget with no outputs
(the initial picture missing from the static page) is counted as ``empty``. Prints one line
per round, a per-chapter table and ``stalls: N``; exit status 1 if N > 0, any cell failed or
any Output widget was empty.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
WIDGET_RE = re.compile(r"ipywidgets|viz\.interactive|model_explorer")


def widget_chapters() -> list[Path]:
    """Chapters (``book/chapters/*.md``) whose source builds a widget."""
    return [p for p in sorted((BOOK / "chapters").glob("*.md")) if WIDGET_RE.search(p.read_text())]


def _empty_outputs(nb) -> int:
    """Output widgets in the saved widget state that hold no outputs."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    n = 0
    for model in state.get("state", {}).values():
        if model.get("model_name") == "OutputModel" and not model.get("state", {}).get("outputs"):
            n += 1
    return n


def run_once(path: Path, fast: bool, timeout: int) -> dict:
    """Execute one chapter: per code cell wall and kernel-CPU seconds, timeout, error, empties."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = jupytext.read(path)
    env = {
        **os.environ,
        "IPYTHONDIR": str(BOOK / ".ipython"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    if fast:
        env["FACELAB_FAST"] = "1"
    else:
        env.pop("FACELAB_FAST", None)
    times: dict[int, float] = {}  # code cell index -> wall seconds
    cpu: dict[int, float] = {}  # code cell index -> kernel CPU seconds
    starts: dict[int, tuple[float, float]] = {}
    client = None

    def kernel_cpu() -> float:
        """utime + stime of the kernel process in seconds (nan if unknown)."""
        try:
            pid = client.km.provisioner.pid  # type: ignore[union-attr]
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except Exception:  # noqa: BLE001 (no /proc, kernel gone)
            return float("nan")

    def on_execute(cell, cell_index):  # noqa: ANN001 (nbclient hook; code cells only)
        starts[cell_index] = (time.perf_counter(), kernel_cpu())

    def on_executed(cell, cell_index, execute_reply=None):  # noqa: ANN001
        t, c = starts[cell_index]
        times[cell_index] = time.perf_counter() - t
        cpu[cell_index] = kernel_cpu() - c

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=on_execute,
        on_cell_executed=on_executed,
    )
    res = {"times": times, "cpu": cpu, "timeout_cell": None, "error": None, "empty": 0}
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    except CellTimeoutError:
        running = [i for i in starts if i not in times]
        i = running[-1] if running else -1
        res["timeout_cell"] = i
        res["timeout_source"] = ""
        if i >= 0:
            times[i] = time.perf_counter() - starts[i][0]
            cpu[i] = kernel_cpu() - starts[i][1]
            lines = nb.cells[i].source.strip().splitlines()
            res["timeout_source"] = lines[0][:80] if lines else ""
    except CellExecutionError as e:
        res["error"] = str(e).strip().splitlines()[-1][:300]
    res["seconds"] = time.perf_counter() - t0
    if res["error"] is None and res["timeout_cell"] is None:
        res["empty"] = _empty_outputs(nb)
    return res


def _load(n: int) -> list[subprocess.Popen]:
    code = "while True:\n    sum(i * i for i in range(10000))\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def _idle_cells(res: dict, slack: float, idle: float) -> list[int]:
    """Cells that ran > slack seconds with the kernel using < idle of a core (the race)."""
    return [
        i
        for i, t in res["times"].items()
        if t > slack and not res["cpu"].get(i, float("nan")) >= idle * t
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("chapters", nargs="*", type=Path, help="default: every chapter with widgets")
    ap.add_argument("--rounds", type=int, default=10, help="executions per chapter (10)")
    ap.add_argument("--full", action="store_true", help="default mode instead of FAST")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    ap.add_argument("--load", type=int, default=1, help="CPU-heavy processes beside (1)")
    ap.add_argument("--no-load", action="store_true", help="same as --load 0")
    ap.add_argument("--idle", type=float, default=0.05, help="stall: kernel CPU share < this")
    ap.add_argument("--factor", type=float, default=3.0, help="slow: > factor x median ...")
    ap.add_argument("--slack", type=float, default=20.0, help="... + slack seconds (20)")
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new round after this many minutes (the summary covers the rounds run)",
    )
    a = ap.parse_args(argv)
    chapters = a.chapters or widget_chapters()
    n_load = 0 if a.no_load else a.load
    print(
        f"stress: {len(chapters)} chapters x {a.rounds} rounds, "
        f"{'default' if a.full else 'FAST'} mode, {n_load} load process(es), "
        f"cell timeout {a.timeout} s",
        flush=True,
    )
    load = _load(n_load)
    results: dict[str, list[dict]] = {}
    t_start = time.perf_counter()
    try:
        for r in range(a.rounds):
            if a.max_minutes is not None and time.perf_counter() - t_start > 60 * a.max_minutes:
                print(f"stress: --max-minutes {a.max_minutes} reached after {r} round(s)")
                break
            for p in chapters:
                res = run_once(p, fast=not a.full, timeout=a.timeout)
                results.setdefault(p.name, []).append(res)
                if res["timeout_cell"] is not None:
                    flag = f"TIMEOUT in cell {res['timeout_cell']} ({res['timeout_source']})"
                else:
                    flag = f"ERROR {res['error']}" if res["error"] else "ok"
                idle = _idle_cells(res, a.slack, a.idle)
                if idle:
                    flag += f", kernel idle in cell(s) {idle}"
                if res["empty"]:
                    flag += f", {res['empty']} empty Output widget(s)"
                print(f"round {r + 1:>2}  {p.name:<36} {res['seconds']:7.1f} s  {flag}", flush=True)
    except KeyboardInterrupt:
        print("stress: interrupted; summary of the runs so far")
    finally:
        for proc in load:
            proc.kill()
            proc.wait()

    stalls = errors = empty = slow_total = 0
    hdr = f"{'chapter':<36} {'runs':>4} {'median s':>9} {'max s':>7} {'stalls':>6} {'slow':>5}"
    print("\n" + hdr)
    for name, runs in results.items():
        per_cell: dict[int, list[float]] = {}
        for res in runs:
            for i, t in res["times"].items():
                per_cell.setdefault(i, []).append(t)
        med = {i: statistics.median(ts) for i, ts in per_cell.items()}
        n = n_slow = 0
        for res in runs:
            idle = _idle_cells(res, a.slack, a.idle)
            slow = [
                i
                for i, t in res["times"].items()
                if (t > a.factor * med[i] + a.slack or i == res["timeout_cell"]) and i not in idle
            ]
            walls = {i: round(res["times"][i], 1) for i in idle + slow}
            cpus = {i: round(res["cpu"].get(i, float("nan")), 1) for i in idle + slow}
            if idle:
                n += 1
                print(f"  stall: {name} cells {idle}: wall {walls} s, kernel CPU {cpus} s")
            elif slow:
                n_slow += 1
                print(f"  slow (kernel busy): {name} cells {slow}: wall {walls} s, CPU {cpus} s")
            errors += res["error"] is not None
            empty += res["empty"]
        secs = [res["seconds"] for res in runs]
        print(
            f"{name:<36} {len(runs):>4} {statistics.median(secs):9.1f} {max(secs):7.1f} "
            f"{n:>6} {n_slow:>5}"
        )
        stalls += n
        slow_total += n_slow
    print(
        f"\nstalls: {stalls}  (slow runs with a busy kernel: {slow_total}, errors: {errors}, "
        f"empty Output widgets: {empty})"
    )
    return 1 if stalls or errors or empty else 0


if __name__ == "__main__":
    sys.exit(main())
