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

A *training* checkpoint adds the optimizers and RNG states to the networks
(:func:`save_training_state` / :func:`load_training_state`, shared by every GAN trainer);
its config is a :class:`JsonConfig` dataclass, stored as ``meta["config"]``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import AssetMissing, InvalidInput, ModelFormatError

__all__ = [
    "FORMAT",
    "JsonConfig",
    "checkpoint_paths",
    "load_checkpoint",
    "load_optimizer_tensors",
    "load_training_state",
    "optimizer_tensors",
    "save_checkpoint",
    "save_training_state",
]

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


class JsonConfig:
    """Mixin for the config dataclasses stored in checkpoints: ``to_dict`` / ``from_dict``.

    ``to_dict()`` is ``dataclasses.asdict`` with tuples as lists and a ``channels`` dict's
    keys as strings (what JSON gives back); ``from_dict(d)`` refuses unknown fields (a
    checkpoint of a newer facelab, a typo in ``--set``) and turns lists back into tuples for
    the fields declared as tuples.
    """

    def to_dict(self) -> dict:
        d = asdict(self)  # type: ignore[call-overload]
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        if isinstance(d.get("channels"), dict):
            d["channels"] = {str(k): v for k, v in d["channels"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict):  # -> Self
        fs = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(fs)
        if unknown:
            raise InvalidInput(f"unknown {cls.__name__} fields {sorted(unknown)}")
        d = dict(d)
        for k, v in d.items():
            if isinstance(v, list) and str(fs[k].type).startswith("tuple"):
                d[k] = tuple(v)
        return cls(**d)


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as ``{f"{prefix}.{index}.{name}": tensor}`` (the
    hyper-parameters are not stored: they come from the config)."""
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{idx}.{k}"] = torch.as_tensor(v)
    return out


def load_optimizer_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str
) -> None:
    """Inverse of :func:`optimizer_tensors`: load the state under ``prefix.`` into ``opt``."""
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in prefixed(tensors, prefix).items():
        idx, name = k.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def save_training_state(
    path: str | os.PathLike,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> tuple[Path, Path]:
    """A resumable checkpoint: ``name.*`` weights of every network in ``nets``, ``name.*``
    moments of every optimizer in ``opts`` (e.g. ``{"opt_G": opt_g}``), ``extra`` tensors
    (RNG states ``rng.*``) and ``meta``."""
    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        tensors.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
    for name, opt in opts.items():
        tensors.update(optimizer_tensors(opt, name))
    tensors.update(extra or {})
    return save_checkpoint(path, tensors, meta)


def load_training_state(
    path: str | os.PathLike,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    device: str | torch.device = "cpu",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a :func:`save_training_state` checkpoint into ``nets`` and ``opts`` (in place);
    returns ``(tensors, meta)`` for the rest (RNG states, step, wall time)."""
    tensors, meta = load_checkpoint(path, device=device)
    for name, net in nets.items():
        net.load_state_dict(prefixed(tensors, name))
    for name, opt in opts.items():
        load_optimizer_tensors(opt, tensors, name)
    return tensors, meta
