"""Sub-commands of the ``facelab`` CLI (one module each, discovered by :mod:`facelab.cli`).

A module here defines ``register(subparsers)``, which adds its parser and sets
``func=handler`` with ``handler(args) -> int``. Shared helpers are in ``_util``.
"""
