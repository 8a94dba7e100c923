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
    """Convert a reST docstring to Markdown: roles and ````x```` become ```x```, and a paragraph
    ending in ``::`` becomes the paragraph (ending in ``:``) plus a fenced ``text`` block of the
    indented lines that follow."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: list[str] = []
    i = 0

    def inline(text: str) -> str:
        return _DOUBLE.sub(lambda m: f"`{m.group(1)}`", _ROLE.sub(_role, text))

    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            if head:
                out.append(inline(head) + ":")
            j = i + 1
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            out += [
                "",
                "```text",
                *textwrap.dedent("\n".join(block)).strip("\n").splitlines(),
                "```",
            ]
            if j < len(lines):
                out.append("")
            i = j
            continue
        out.append(inline(line))
        i += 1
    return "\n".join(out).strip() + "\n"
