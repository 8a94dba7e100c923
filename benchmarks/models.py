"""Benchmark of facelab.models: ICT loading (raw OBJs vs cache) and the batched forward.

    FACELAB_DATA=../shared/data python benchmarks/models.py           # table
    FACELAB_DATA=../shared/data python benchmarks/models.py --json    # machine-readable

Measures (torch single-threaded unless ``--threads``; medians of ``--repeat`` runs):

- ``load``: building the full ICT model from its 154 OBJ files (``build_ict``, vertex-only
  parsing), against reading the ``.npz`` cache (``MorphableModel.load``) and the cached
  ``load("ict")`` / ``load("ict-face")`` (cache + restrict); the ratio is raw / cached.
  The built-in synthetic model's construction time is listed too.
- ``forward``: ``model.forward(identity, expression)`` (two ``addmm`` on the flattened bases)
  for batch 1, 8, 64 on ``ict``, ``ict-face`` and ``builtin``, against the readable reference
  ``mean + einsum("bk,kvc->bvc", ...)`` measured in the same run (ratio = reference / fast),
  with the memory the forward allocates (torch profiler, CPU allocations) and the size of the
  output ``(B, V, 3)``.

The ICT rows are skipped when the data is absent (set ``FACELAB_DATA``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _median_time(fn, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _allocated_bytes(fn) -> int:
    """Bytes allocated on the CPU by ``fn`` (sum of the profiler's allocation events)."""
    from torch.profiler import ProfilerActivity, profile

    # the profiler logs start/stop lines on the C-level stderr: silence fd 2 meanwhile
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    total = 0
    for ev in prof.events():
        m = getattr(ev, "cpu_memory_usage", 0)
        if m > 0:
            total += m
    return total


def _reference(model, a, e):
    return (
        model.mean
        + torch.einsum("bk,kvc->bvc", a, model.identity_basis)
        + torch.einsum("bk,kvc->bvc", e, model.expression_basis)
    )


def bench_forward(model, batches, repeat: int) -> list[dict]:
    rows = []
    g = torch.Generator().manual_seed(0)
    for B in batches:
        p = model.sample(B, generator=g)
        a, e = p.identity, p.expression
        fwd = functools.partial(model.forward, a, e)
        ref_fn = functools.partial(_reference, model, a, e)
        with torch.no_grad():
            fast = _median_time(fwd, repeat)
            ref = _median_time(ref_fn, max(3, repeat // 3))
            err = float((fwd() - ref_fn()).abs().max())
            alloc = _allocated_bytes(fwd)
            ref_alloc = _allocated_bytes(ref_fn)
        rows.append(
            {
                "model": model.name,
                "vertices": model.n_vertices,
                "batch": B,
                "forward_ms": fast * 1e3,
                "reference_ms": ref * 1e3,
                "speedup": ref / fast,
                "alloc_mb": alloc / 1e6,
                "reference_alloc_mb": ref_alloc / 1e6,
                "output_mb": B * model.n_vertices * 3 * model.mean.element_size() / 1e6,
                "max_abs_diff": err,
            }
        )
    return rows


def bench_load(repeat: int) -> dict | None:
    from facelab.errors import AssetMissing
    from facelab.models import MorphableModel, load
    from facelab.models.ict import build_ict

    try:
        t = time.perf_counter()
        c = time.process_time()
        full = build_ict()
        raw = time.perf_counter() - t
        raw_cpu = time.process_time() - c
    except AssetMissing:
        return None
    with tempfile.TemporaryDirectory() as d:
        old = os.environ.get("FACELAB_CACHE")
        os.environ["FACELAB_CACHE"] = d
        try:
            from facelab.models.ict import _source_files, cache_path

            n, i, e, _ = _source_files()
            cp = cache_path([n, *i, *e])
            t = time.perf_counter()
            full.save(cp)
            save = time.perf_counter() - t
            size = cp.stat().st_size
            npz = _median_time(lambda: MorphableModel.load(cp), repeat)
            ict = _median_time(lambda: load("ict"), repeat)
            face = _median_time(lambda: load("ict-face"), repeat)
        finally:
            if old is None:
                os.environ.pop("FACELAB_CACHE", None)
            else:
                os.environ["FACELAB_CACHE"] = old
    return {
        "raw_obj_s": raw,
        "raw_obj_cpu_s": raw_cpu,
        "cache_save_s": save,
        "cache_mb": size / 1e6,
        "cache_npz_s": npz,
        "load_ict_cached_s": ict,
        "load_ict_face_cached_s": face,
        "ratio_raw_over_cached": raw / ict,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--repeat", type=int, default=15, help="timed runs per measurement")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--skip-load", action="store_true", help="skip the ICT raw-load timing")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from facelab.errors import AssetMissing
    from facelab.models import load
    from facelab.models.builtin import build_builtin

    out: dict = {
        "threads": args.threads,
        "loadavg": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    out["builtin_build_s"] = _median_time(build_builtin, 3)
    out["load"] = None if args.skip_load else bench_load(max(3, args.repeat // 3))
    models = [load("builtin")]
    try:
        with tempfile.TemporaryDirectory() as d:
            os.environ.setdefault("FACELAB_CACHE", d)
            models = [load("ict"), load("ict-face"), models[0]]
    except AssetMissing as e:
        print(f"(ICT rows skipped: {str(e).splitlines()[0]})", file=sys.stderr)
    rows = []
    for m in models:
        rows += bench_forward(m, args.batches, args.repeat)
    out["forward"] = rows

    if args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"threads={out['threads']} loadavg={', '.join(f'{x:.1f}' for x in out['loadavg'])} "
        f"cores={out['cpu_count']} torch={out['torch']}"
    )
    print(f"builtin model build: {out['builtin_build_s'] * 1e3:.0f} ms")
    ld = out["load"]
    if ld:
        print("\nICT loading")
        print(
            f"  raw 154 OBJs (build_ict):      {ld['raw_obj_s']:7.2f} s "
            f"(process CPU {ld['raw_obj_cpu_s']:.2f} s, 2 reader threads)"
        )
        print(f"  cache write (.npz, {ld['cache_mb']:.0f} MB):    {ld['cache_save_s']:7.2f} s")
        print(f"  cache read (MorphableModel):   {ld['cache_npz_s']:7.3f} s")
        print(f"  load('ict') cached:            {ld['load_ict_cached_s']:7.3f} s")
        print(f"  load('ict-face') cached:       {ld['load_ict_face_cached_s']:7.3f} s")
        print(f"  raw / cached:                  {ld['ratio_raw_over_cached']:7.1f} x")
    print("\nforward (fast addmm vs einsum reference)")
    hdr = (
        f"{'model':<10} {'V':>6} {'B':>3} {'fwd ms':>8} {'ref ms':>8} {'x':>5} "
        f"{'alloc MB':>9} {'ref MB':>8} {'out MB':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(
            f"{r['model']:<10} {r['vertices']:>6} {r['batch']:>3} {r['forward_ms']:>8.2f} "
            f"{r['reference_ms']:>8.2f} {r['speedup']:>5.1f} {r['alloc_mb']:>9.1f} "
            f"{r['reference_alloc_mb']:>8.1f} {r['output_mb']:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
