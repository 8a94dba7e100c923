"""Sphinx extension of the facelab book (loaded from _config.yml ``local_extensions``).

* Writes ``_facelab_exec_stats.json`` into the HTML output: per document, myst-nb's execution
  data (runtime, method, success), which ``book/tools/build.py`` prints as a table.
"""

from __future__ import annotations

import json
from pathlib import Path


def _write_stats(app, exception) -> None:  # noqa: ANN001 (Sphinx signature)
    if exception is not None:
        return
    meta = getattr(app.env, "nb_metadata", {}) or {}
    rows = []
    for docname, data in sorted(meta.items()):
        ex = data.get("exec_data")
        if not ex:
            continue
        rows.append(
            {
                "docname": docname,
                "runtime": ex.get("runtime"),
                "method": ex.get("method"),
                "status": "ok" if ex.get("succeeded") else f"FAILED ({ex.get('error')})",
            }
        )
    out = Path(app.outdir) / "_facelab_exec_stats.json"
    out.write_text(json.dumps(rows, indent=1))


def setup(app):  # noqa: ANN001, ANN201
    app.connect("build-finished", _write_stats)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
