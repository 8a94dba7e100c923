"""reStructuredText docstrings of the CLI commands as Markdown (for the book's CLI appendix).

The command modules' docstrings are reST (Sphinx roles, ````literals````, ``::`` literal
blocks). The appendix "The command line" shows them through ``IPython.display.Markdown``, where
reST would appear literally; :func:`docstring_markdown` converts the constructs they use.
"""

from __future__ import annotations

import inspect
import re
import textwrap

__all__ = ["docstring_markdown"]

_ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|attr|exc|data|obj|ref|doc|term):`(~?)([^`]+)`")
_DOUBLE = re.compile(r"``(.+?)``", re.DOTALL)


def _role(m: re.Match) -> str:
    target = m.group(2)
    if "<" in target and target.endswith(">"):  # :ref:`text <target>`
        return target.split("<", 1)[0].strip()
    if m.group(1):  # ~a.b.c shows as c
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def docstring_markdown(doc: str) -> str:
    """Convert a reST docstring to Markdown: roles and ````x```` become ```x``` (also across a
    line break), and a paragraph ending in ``::`` becomes the paragraph (ending in ``:``) plus a
    fenced ``text`` block of the indented lines that follow."""

    def inline(text: str) -> str:
        return _DOUBLE.sub(lambda m: f"`{m.group(1)}`", _ROLE.sub(_role, text))

    lines = inspect.cleandoc(doc or "").splitlines()
    parts: list[str] = []  # prose (converted) and fenced blocks (verbatim), in order
    prose: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            prose.append(line)
            i += 1
            continue
        head = line.rstrip()[:-2].rstrip()
        if head:
            prose.append(head + ":")
        parts.append(inline("\n".join(prose)))
        prose = []
        j = i + 1
        block: list[str] = []
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
            block.append(lines[j])
            j += 1
        body = textwrap.dedent("\n".join(block)).strip("\n")
        parts.append(f"```text\n{body}\n```")
        i = j
    parts.append(inline("\n".join(prose)))
    return "\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n"
