"""Checkpoints: ``NAME.safetensors`` (tensors) + ``NAME.json`` (config and provenance). No pickle.

A checkpoint is a pair of files with the same stem:

- ``NAME.safetensors``: named tensors (network weights ``G.*``, ``D.*``, ``G_ema.*``,
  optimizer moments ``opt_G.*``, RNG states ``rng.*`` as ``uint8``). safetensors stores raw
  arrays and a JSON header only, so loading it cannot run code (unlike ``torch.load`` of a
  pickle).
- ``NAME.json``: ``{"format": "facelab-gan-checkpoint", "version": 1, "config": {...},
  "command": "...", "seed": S, "step": N, "wall_time_s": T, "metrics": {...}, ...}``.

:func:`load_checkpoint` raises :class:`facelab.errors.ModelFormatError` with a message saying
what the file is not, for anything else (a pickle, a truncated file, a mismatched pair).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import AssetMissing, ModelFormatError

__all__ = ["FORMAT", "checkpoint_paths", "load_checkpoint", "save_checkpoint"]

FORMAT = "facelab-gan-checkpoint"
VERSION = 1


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights.safetensors, meta.json)`` for a stem or either file of a checkpoint."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_checkpoint(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``tensors`` and ``meta`` atomically (temp file + rename); returns both paths."""
    from safetensors.torch import save_file

    wpath, jpath = checkpoint_paths(path)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    doc = {"format": FORMAT, "version": VERSION, **meta}
    tmp_w = wpath.with_name(wpath.name + f".tmp{os.getpid()}")
    tmp_j = jpath.with_name(jpath.name + f".tmp{os.getpid()}")
    save_file(flat, str(tmp_w), metadata={"format": FORMAT, "version": str(VERSION)})
    tmp_j.write_text(json.dumps(doc, indent=1, sort_keys=True, default=_json_default) + "\n")
    os.chmod(tmp_w, 0o644)
    os.replace(tmp_w, wpath)
    os.replace(tmp_j, jpath)
    return wpath, jpath


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a checkpoint written by :func:`save_checkpoint`.

    Raises:
        AssetMissing: a file of the pair does not exist.
        ModelFormatError: the files are not a facelab GAN checkpoint.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    wpath, jpath = checkpoint_paths(path)
    for p in (wpath, jpath):
        if not p.is_file():
            raise AssetMissing(
                f"{p}: no such checkpoint file (a checkpoint is NAME.safetensors + NAME.json)"
            )
    try:
        meta = json.loads(jpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{jpath}: not a facelab GAN checkpoint's JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f'{jpath}: not a facelab GAN checkpoint (no "format": "{FORMAT}")')
    if int(meta.get("version", -1)) > VERSION:
        raise ModelFormatError(
            f"{jpath}: checkpoint version {meta.get('version')} is newer than this facelab "
            f"understands ({VERSION}); upgrade facelab"
        )
    try:
        tensors = load_file(str(wpath), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFormatError(
            f"{wpath}: not a safetensors file ({type(e).__name__}: {e}); facelab never loads "
            "pickled checkpoints (torch.save/.pt files)"
        ) from e
    return tensors, meta


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` under ``prefix.``, with the prefix stripped."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
