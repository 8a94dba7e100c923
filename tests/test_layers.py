"""The layers of shared/notes/design.md, read from the source: a lower layer never imports a higher one.

``geometry <- models <- render <- fit``: every ``import`` / ``from ... import`` in a layer's
source files (at any depth, including imports inside functions) is resolved to a ``facelab``
sub-package with :mod:`ast`, and none may name a layer above. The base modules (``errors``,
``_checks``, ``color``) import no layer at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "facelab"
LAYERS = ("geometry", "models", "render", "fit")
BASE = ("errors", "_checks", "color")


def _imported_facelab_packages(path: Path, root: Path = PKG) -> set[tuple[str, int]]:
    """``{(sub-package, line)}``: the facelab sub-packages the file at ``path`` imports."""
    # facelab/models/albedo/x.py and facelab/models/albedo/__init__.py are both in the
    # package facelab.models.albedo: the parts without the last one
    package = list(path.relative_to(root.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]  # from facelab import render
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "facelab" and len(parts) > 1:
                out.add((parts[1], node.lineno))
    return out


def _files(sub: str) -> list[Path]:
    p = PKG / sub
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def test_the_resolver_sees_relative_absolute_and_nested_imports(tmp_path):
    fake = tmp_path / "facelab" / "models" / "albedo"
    fake.mkdir(parents=True)
    f = fake / "x.py"
    f.write_text(
        "from ...render.texture import sample_points\n"
        "def g():\n    import facelab.fit.api\n    from facelab import viz\n"
        "from .. import morphable\nfrom ...color import linear_to_srgb\n"
    )
    (fake / "__init__.py").write_text("from ..bfm import load_bfm\nfrom ... import render\n")
    found = {name for name, _ in _imported_facelab_packages(f, tmp_path / "facelab")}
    assert found == {"render", "fit", "viz", "models", "color"}
    init = {
        name for name, _ in _imported_facelab_packages(fake / "__init__.py", tmp_path / "facelab")
    }
    assert init == {"models", "render"}


@pytest.mark.parametrize("layer", LAYERS + BASE)
def test_no_layer_imports_a_higher_one(layer):
    above = LAYERS[LAYERS.index(layer) + 1 :] if layer in LAYERS else LAYERS
    bad = [
        f"{path.relative_to(PKG.parent)}:{line} imports facelab.{name}"
        for path in _files(layer)
        for name, line in sorted(_imported_facelab_packages(path))
        if name in above
    ]
    assert not bad, f"facelab.{layer} may not import {', '.join(above)}:\n" + "\n".join(bad)
