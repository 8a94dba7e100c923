"""Check -- and fetch if possible -- the face models the book needs, before anything executes.

Usage (from the repository root; ``make lab`` runs it, ``build.py`` calls :func:`check_assets`
first)::

    python book/tools/preflight.py

Every asset in :data:`BOOK_ASSETS` that is not in a data directory (``$FACELAB_DATA``, the
cache) is downloaded into the cache with a progress bar (``facelab.data.fetch``: pinned URLs,
sha256 checked). When that is not possible -- ``FACELAB_OFFLINE=1``, no network, a failed
download -- it prints ONE line (what is missing and the one command or variable that fixes
it) and exits 1, instead of a traceback inside a chapter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The registry assets the chapters load (``tests/test_fetch_server.py`` checks this list
#: against the chapters' code): the ICT model (every chapter) and the dlib detector/landmarks
#: and recognition network (chapter 1; usually from the installed face_recognition_models).
BOOK_ASSETS: tuple[str, ...] = ("ict-facekit", "dlib-models")


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def check_assets(names: Sequence[str] = BOOK_ASSETS, *, progress: bool = True) -> str | None:
    """Fetch what is missing of ``names``; ``None`` when all are present, else the one-line
    reason (what is missing + what fixes it)."""
    from facelab import data
    from facelab.errors import FacelabError

    todo = data.plan(names)
    if not todo:
        return None
    what = ", ".join(f"{p['name']} ({_mb(p['bytes'])})" for p in todo)
    folders = " and ".join(f"{p['name']}/" for p in todo)
    if data.offline():
        return (
            f"book: missing face model {what} and FACELAB_OFFLINE=1 forbids downloading it; "
            f"fix: set FACELAB_DATA to a folder that holds {folders} (or unset FACELAB_OFFLINE)"
        )
    for p in todo:
        try:
            data.fetch(p["name"], progress=progress)
        except FacelabError as e:
            reason = str(e).strip().splitlines()[0].rstrip(".")
            names_ = " ".join(q["name"] for q in todo)
            return (
                f"book: missing face model {what}; downloading it failed: {reason}; "
                f"fix: run `.venv/bin/facelab data fetch {names_}` where the network is open "
                f"(or set FACELAB_DATA to a folder that holds {folders})"
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    problem = check_assets()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
