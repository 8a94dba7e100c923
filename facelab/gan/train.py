"""The GAN training loop: seeded, resumable, distributed; ``python -m facelab.gan.train``.

One step (StyleGAN2's schedule, Karras et al. 2020):

1. **G**: ``L_G = softplus(-D(aug(G(z))))`` with style mixing (probability
   ``style_mixing``: two latents, a random crossover layer).
2. **D**: ``L_D = softplus(D(aug(G(z)))) + softplus(-D(aug(x)))``, on the same generated
   images (detached; saves one generator forward per step, ~15% of a CPU step).
3. **R1** every ``r1_interval`` steps (lazy): ``r1_interval * gamma / 2 * ||grad_x D(x)||^2``;
   Adam's ``lr`` and ``betas`` of D are adjusted by ``c = k / (k + 1)`` as in StyleGAN2.
4. **EMA**: ``G_ema <- beta G_ema + (1 - beta) G``, ``beta = 0.5 ** (B / ema_nimg)``
   (a half-life of ``ema_kimg`` thousand images); ``w_avg`` follows the mapping network's
   mean output (for truncation).

**Determinism.** Every random draw of step ``t`` (the data indices, latents, mixing cut,
noise maps, augmentation) comes from a ``torch.Generator`` seeded by ``(seed, t, phase,
micro-batch)``, so a resumed run continues exactly where it stopped, and a run is the same
whatever the number of processes: the global batch of ``batch`` images is split into
micro-batches of ``micro_batch``; process ``r`` of ``W`` handles micro-batches
``r*A .. r*A+A-1`` (``A = batch / (W * micro_batch)``), gradients are summed over its
micro-batches and averaged over processes.

**Distributed.** ``torchrun --nproc-per-node N -m facelab.gan.train ...`` runs ``N``
processes (gloo on CPU, NCCL on CUDA). Gradients are averaged with one ``all_reduce`` of the
flattened gradients per phase — DistributedDataParallel's semantics, done by hand as in
NVlabs' stylegan2-ada-pytorch, because PyTorch's DDP wrapper does not support the double
backward of R1 and the alternating G/D phases. Rank 0 writes checkpoints and logs; a
checkpoint resumes on any number of processes.

**Files.** ``work_dir/checkpoint.{safetensors,json}`` (G, D, G_ema, both Adam states, RNG
state, config, command, seed, step, wall time, latest metrics), ``work_dir/log.jsonl`` (one
JSON object per ``log_interval`` steps) and, with ``out``, an export of ``G_ema`` only
(``out/<export_name>.{safetensors,json}`` + ``out/log.jsonl``) small enough to ship.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import os
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InvalidInput, ModelFormatError
from ..models.albedo import AlbedoPCA
from .augment import AugmentConfig, augment
from .checkpoint import (
    checkpoint_paths,
    load_checkpoint,
    load_training_state,
    prefixed,
    save_checkpoint,
    save_training_state,
)
from .loop import (
    GANLoopConfig,
    TrainingLoop,
    discriminator_loss,
    ema_update,
    gradient_step,
    read_log,
    set_threads,
    write_log,
)
from .loss import g_nonsaturating_loss, lazy_r1_weight, r1_penalty
from .networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

__all__ = [
    "CONFIGS",
    "TrainConfig",
    "export_generator",
    "load_generator",
    "main",
    "spawn_train",
    "train",
]


@dataclass
class TrainConfig(GANLoopConfig):
    """Everything a training run depends on (saved in every checkpoint); the shared loop's
    fields are :class:`~facelab.gan.loop.GANLoopConfig`'s, with these meanings here:

    Attributes:
        name: config name (``cpu-64``, ``gpu-128``, ...).
        data: ``"texture"`` (:func:`facelab.methods.ganfit.texture_gan.texture_maps_cached`)
            or ``"tensor"`` (data passed to :func:`train`).
        n_train, data_seed: number and seed of the training maps.
        generator, discriminator: :class:`~facelab.gan.networks.GeneratorConfig` / :class:`~facelab.gan.networks.DiscriminatorConfig`
            fields.
        batch: global batch (images per step, all processes together); ``micro_batch``:
            images per forward pass (``batch`` must be a multiple of ``micro_batch * W``).
        lr_d: 0.0025 here (StyleGAN2's; Adam's ``lr`` and ``betas`` of D are then adjusted
            for lazy R1, see the module doc).
        ema_kimg, ema_rampup: EMA half-life in thousands of images, ramped up as
            ``min(ema_kimg, rampup * seen_kimg)`` (None: no ramp).
        style_mixing: probability of mixing two latents.
        augment: :class:`~facelab.gan.augment.AugmentConfig` fields (all 0: no augmentation).
        fade_kimg: progressive architecture only: thousands of images per fade-in and per
            stable phase of each resolution.
        ckpt_interval: 200 here; a checkpoint also writes the export (``out``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        disc_view: what the discriminator judges. ``"image"``: the images. ``"residual"``
            (needs the generator's ``linear_basis`` and ``residual_orthogonal``): only the part
            of each image, real or generated, that the ``K`` principal components cannot
            hold, ``P_perp (x - base) / s`` (``s``: the training maps' residual std, so D sees
            unit-scale input). The linear path is then not trained: its coefficient map and
            the mapping network it reads keep their initial weights (whitened: the PCA's
            N(0, I) moments; the synthesis layers' own style affines still learn), and the
            game is played on the detail alone: a PCA model with an adversarial residual.
        disc_cond: ``"none"``, or ``"coefficients"`` (with ``disc_view="residual"``): the
            discriminator is also given each image's coordinates in the linear basis,
            standardised with the training maps' (``coefficient_view``), through its
            projection term (``DiscriminatorConfig.c_dim = K``), so it judges whether a
            residual suits the face it is added to (skin tone, make-up) and not only whether
            it looks like some face's detail.
        sample_detail: the exported generator's default ``detail`` (the scale of its
            residual when sampled, :class:`~facelab.gan.networks.Generator`; set by
            :func:`load_generator`): a sampling knob like truncation, chosen after training on
            a selection split; training itself always runs at 1.
    """

    name: str = "custom"
    data: str = "texture"
    n_train: int = 4096
    data_seed: int = 0
    generator: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)
    batch: int = 16
    micro_batch: int = 16
    lr_d: float = 0.0025
    ema_kimg: float = 2.0
    ema_rampup: float | None = 0.05
    style_mixing: float = 0.9
    augment: dict = field(default_factory=dict)
    fade_kimg: float = 4.0
    ckpt_interval: int = 200
    device: str = "auto"
    disc_view: str = "image"
    disc_cond: str = "none"
    sample_detail: float = 1.0

    def __post_init__(self) -> None:
        if self.disc_cond not in ("none", "coefficients"):
            raise InvalidInput(
                f"disc_cond must be 'none' or 'coefficients', got {self.disc_cond!r}"
            )
        if self.disc_cond == "coefficients" and self.disc_view != "residual":
            raise InvalidInput("disc_cond='coefficients' needs disc_view='residual'")
        if not 0.0 <= self.sample_detail <= 2.0:
            raise InvalidInput(f"sample_detail must be in [0, 2], got {self.sample_detail}")
        if self.sample_detail != 1.0 and not self.gen_config().linear_basis:
            raise InvalidInput(
                "sample_detail scales the residual over a linear path: set linear_basis"
            )
        if self.disc_view not in ("image", "residual"):
            raise InvalidInput(f"disc_view must be 'image' or 'residual', got {self.disc_view!r}")
        if self.disc_view == "residual":
            g = self.gen_config()
            if not (g.linear_basis and g.residual_orthogonal):
                raise InvalidInput(
                    "disc_view='residual' needs a generator with linear_basis > 0 and "
                    "residual_orthogonal=True"
                )

    @property
    def resolution(self) -> int:
        return int(self.generator.get("resolution", 64))

    def gen_config(self) -> GeneratorConfig:
        return GeneratorConfig(**self.generator)

    def disc_config(self) -> DiscriminatorConfig:
        d = dict(self.discriminator)
        d.setdefault("resolution", self.resolution)
        if self.disc_cond == "coefficients":
            d["c_dim"] = self.gen_config().linear_basis
        if self.gen_config().architecture == "progressive":
            d.setdefault("architecture", "progressive")
        return DiscriminatorConfig(**d)


_CH64 = {"4": 64, "8": 64, "16": 64, "32": 32, "64": 16}

_CPU64 = TrainConfig(
    name="cpu-64",
    n_train=4096,
    generator={
        "resolution": 64,
        "z_dim": 64,
        "w_dim": 128,
        "mapping_layers": 4,
        "channels": _CH64,
        "base_image": True,
        "rgb_init": 0.1,
    },  # fmt: skip
    discriminator={"channels": _CH64},
    batch=16,
    micro_batch=16,
    steps=5000,
    max_minutes=88.0,
    r1_gamma=0.5,
    ema_kimg=1.0,
    log_interval=25,
    ckpt_interval=100,
)

_FIR = [1, 3, 3, 1]

#: ``cpu-64`` with the fixes of issue 14: a *fixed* base image (the data mean: the shipped
#: run's learned base drifted into the pattern all its samples share), StyleGAN2's [1, 3, 3, 1]
#: resampling filters in G and D and R1 ``gamma = 0.0002 R^2 / B`` (StyleGAN2-ADA's heuristic).
#: Same channels as ``cpu-64``: measured side by side on a loaded machine, its step costs what
#: ``cpu-64``'s does (1.03 against 1.08 s), while doubling D's channels at 64 and 32 px costs
#: 1.6x (1.74 s), beyond the one-thread budget.
_CPU64_AA = replace(
    _CPU64,
    name="cpu-64-aa",
    generator={**_CPU64.generator, "train_base": False, "resample_filter": _FIR},
    discriminator={"channels": _CH64, "resample_filter": _FIR},
    r1_gamma=0.0002 * 64**2 / 16,
)

#: The shipped texture GAN: ``cpu-64-aa`` plus a linear path (``GeneratorConfig.linear_basis``):
#: the generator starts as the data's 64-component PCA model (the PCA of chapter 6's claim
#: table) plus a small residual synthesis network (``rgb_init`` 0.03), so the adversarial game
#: spends its CPU budget on what the PCA misses instead of first rediscovering the coarse
#: layout. 8000 steps of 16 (128k images): measured 0.45 s per step on one thread, 60 minutes.
_CPU64_PCA = replace(
    _CPU64_AA,
    name="cpu-64-pca",
    generator={**_CPU64_AA.generator, "linear_basis": 64, "rgb_init": 0.03},
    steps=8000,
)

#: ``cpu-64-pca`` with its output centred (``GeneratorConfig.center_output``): the mean
#: sample is pinned to the data mean, so neither the coefficients' mean (it drifted to a norm
#: of 2.1 in the ``cpu-64-pca`` run) nor a z-independent residual pattern (a texel-mean gap of
#: 0.05) can carry a pattern every sample shares. Same budget: 8000 steps of 16. Measured
#: (seed 0, 50 min on one thread, claim table on 256 samples): the shared pattern is gone but
#: the residual grows instead (high-band ratio 1.74 vs 1.13, precision 0.22 vs 0.51) and
#: KID-dlib is worse (0.50 vs 0.43; PCA 0.17): not shipped
#: (``benchmarks/results/texture_gan_cpu64c_claim.json``).
_CPU64_C = replace(
    _CPU64_PCA,
    name="cpu-64-c",
    generator={**_CPU64_PCA.generator, "center_output": True},
)

#: ``cpu-64-pca`` with the two moments of its linear path pinned and its residual confined:
#: the coefficients are whitened with their running statistics (``whiten_coeff``: zero mean,
#: identity covariance, the PCA's and the data's, so only their shape is learned), the
#: synthesis network's output is projected off the basis' span (``residual_orthogonal``: it
#: holds only what 64 components cannot) and the output mean is pinned to the data mean
#: (``center_output``). The diagnosis behind it (the ``cpu-64-pca`` export, 256 samples,
#: KID-dlib): its learned coefficients alone 0.55; the same basis with N(0, I) coefficients
#: 0.24; those plus its residual 0.47, plus its residual centred 0.23; plus the *data's*
#: residual 0.13 (PCA 0.17): the residual detail is worth a KID win if it is data-like.
_CPU64_W = replace(
    _CPU64_PCA,
    name="cpu-64-w",
    generator={**_CPU64_PCA.generator, "whiten_coeff": True, "residual_orthogonal": True,
               "center_output": True},
)  # fmt: skip

#: ``cpu-64-pca`` with the discriminator judging the residual alone (``disc_view="residual"``):
#: the linear path is the PCA and is not trained (its coefficient map and the mapping network
#: keep their initial, whitening weights), the residual is orthogonal to it and centred, and
#: the synthesis network learns, against a discriminator that sees only the part of each
#: map 64 components cannot hold, the detail the PCA blurs. ``cpu-64-w`` itself (D on the
#: whole map) was stopped at step 400: with the coefficients' moments pinned, D separated
#: real from fake at once (D_fake -3.3) and the residual grew to 8x the data's rms
#: (high-band ratio 5.7-9.6).
_CPU64_R = replace(
    _CPU64_PCA,
    name="cpu-64-r",
    generator={**_CPU64_PCA.generator, "residual_orthogonal": True, "center_output": True},
    disc_view="residual",
)

#: ``cpu-64-r`` with ten times the R1 weight: its discriminator, on unit-scale residuals,
#: separated real from fake ever more surely (mean logits +6 / -5 by step 4600) while
#: KID-dlib of the samples rose from step 2100 on. Measured (seed 0, 8000 steps, 58 min on one
#: thread; ``benchmarks/results/texture_gan_residual/claim.json``, chapter 6's protocol): the
#: game stays balanced (logits about +-2), high-band energy 0.91-0.99 of the data's (PCA 0.34),
#: recall 0.68-0.70 (PCA 0.26), KID-dlib 0.165 at step 4000 (chosen on held-out maps) and 0.220
#: at step 8000 against the PCA's 0.169 (paired: -0.004 +- 0.016, +0.051 +- 0.017) and the
#: shipped GAN's 0.43. It reaches the PCA's KID, does not beat it: not shipped.
_CPU64_R1 = replace(_CPU64_R, name="cpu-64-r-r1", r1_gamma=10 * _CPU64_R.r1_gamma)

#: ``cpu-64-r-r1`` with a projection discriminator conditioned on each map's PCA coordinates
#: (``disc_cond="coefficients"``): D can tell a residual that does not suit its face (dark
#: stubble on a pale base, lip colour off the lips) from the data's, which the residual-only
#: D of ``cpu-64-r-r1`` cannot. Same budget (8000 steps of 16, 56 minutes on one thread).
#: Measured on the selection split (``benchmarks/results/texture_gan_residual/
#: cpu-64-rc_selection.json``): best at step 6000 with detail 0.8, KID-dlib 0.095 against the
#: shipped model's 0.112 under the same script, within the spread between snapshots (about
#: 0.02): no clear gain, not shipped.
_CPU64_RC = replace(_CPU64_R1, name="cpu-64-rc", disc_cond="coefficients")

#: The shipped texture GAN (since issue 14's stop 34): ``cpu-64-r-r1`` stopped at step 4000
#: and sampled with its residual at 0.8 (``sample_detail``). Both were chosen on a selection
#: split of their own (the 512 held-out maps as KID-dlib's reference, other latents than the
#: claim table's): among the ``cpu-64-r-r1`` snapshots every 500 steps, step 4000 scored best
#: (KID-dlib 0.136; 0.156-0.196 at the others from 2500 to 6500), and its residual scored
#: best, flatly, from 0.6 to 0.8 (0.089-0.092 against 0.116 unscaled and the PCA's 0.199; the
#: largest of them keeps the most detail; ``benchmarks/results/texture_gan_selection.json``,
#: ``benchmarks/gan.py --select``). 4000 steps of 16, 27 minutes on one thread; the retrained
#: export is bit-identical to the snapshot. Measured under chapter 6's protocol (256 samples,
#: the training maps as reference; ``benchmarks/results/texture_gan_shipped_claim.json``):
#: KID-dlib 0.133 vs the PCA's 0.169 (paired -0.036 +- 0.014), high-band 0.69 (PCA 0.34).
_CPU64_SHIP = replace(_CPU64_R1, name="cpu-64", steps=4000, sample_detail=0.8)

#: Named configurations. ``cpu-64`` is the shipped texture GAN (above); ``cpu-64-pca`` the
#: one shipped before it (a linear path, D on the whole map); ``cpu-64-v1`` the
#: first shipped one (a learned base image, no linear path: 5000 steps, 0.81 s per step);
#: ``cpu-64-aa`` its fixed-base, anti-aliased variant; ``gpu-128`` the full-size one for a GPU;
#: ``cpu-64-progressive`` the v1 model grown ProGAN-style (8 px, then fade-in and stable
#: phases of 2k images per resolution); ``tiny-16`` for tests.
CONFIGS: dict[str, TrainConfig] = {
    "cpu-64": _CPU64_SHIP,
    "cpu-64-pca": _CPU64_PCA,
    "cpu-64-v1": _CPU64,
    "cpu-64-aa": _CPU64_AA,
    "cpu-64-c": _CPU64_C,
    "cpu-64-w": _CPU64_W,
    "cpu-64-r": _CPU64_R,
    "cpu-64-r-r1": _CPU64_R1,
    "cpu-64-rc": _CPU64_RC,
    "gpu-128": TrainConfig(
        name="gpu-128",
        n_train=20000,
        generator={
            "resolution": 128,
            "z_dim": 64,
            "w_dim": 256,
            "mapping_layers": 8,
            "base_image": True,
            "rgb_init": 0.1,
            "channel_base": 16384,
            "channel_max": 256,
        },  # fmt: skip
        discriminator={"channel_base": 16384, "channel_max": 256},
        batch=32,
        micro_batch=32,
        steps=40000,
        r1_gamma=1.0,
        ema_kimg=10.0,
        augment={"translation": 0.0},
        log_interval=100,
        ckpt_interval=2000,
        device="auto",
    ),
    "cpu-64-progressive": replace(
        _CPU64,
        name="cpu-64-progressive",
        generator={**_CPU64.generator, "architecture": "progressive"},
        steps=1000,
        max_minutes=64.0,
        fade_kimg=2.0,
    ),
    "tiny-16": TrainConfig(
        name="tiny-16",
        n_train=8,
        generator={
            "resolution": 16,
            "z_dim": 8,
            "w_dim": 16,
            "mapping_layers": 2,
            "channels": {"4": 16, "8": 16, "16": 8},
        },  # fmt: skip
        discriminator={"channels": {"4": 16, "8": 16, "16": 8}},
        batch=8,
        micro_batch=4,
        steps=20,
        r1_interval=4,
        log_interval=5,
        ckpt_interval=10,
        device="cpu",
    ),
}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _identity_view(x: torch.Tensor) -> torch.Tensor:
    return x


def _span_coordinates(G: Generator, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flat, coords)``: ``x - base`` flattened ``(B, C R R)`` and its coordinates ``(B, K)``
    in the orthonormal basis ``G.basis_q`` of the linear path's span."""
    flat = (x - G.base.to(x.dtype)[None]).reshape(x.shape[0], -1)
    return flat, flat @ G.basis_q.to(x.dtype).T


def residual_view(G: Generator, data: torch.Tensor):
    """``view(x) = P_perp (x - base) / s``: the part of ``x (B, C, R, R)`` off the span of
    ``G``'s linear basis (``G.basis_q``), scaled by ``s``, the std of ``data``'s own (the
    discriminator's input for ``TrainConfig.disc_view = "residual"``)."""
    if G.basis_q is None or G.base is None:
        raise InvalidInput(
            "the residual view needs a generator with a base image and residual_orthogonal"
        )

    def perp(x: torch.Tensor) -> torch.Tensor:
        flat, coords = _span_coordinates(G, x)
        return (flat - coords @ G.basis_q.to(x.dtype)).reshape(x.shape)

    with torch.no_grad():
        s = torch.cat([perp(data[i : i + 512].to(G.base)) for i in range(0, len(data), 512)]).std()
    scale = 1.0 / float(s.clamp_min(1e-8))

    def view(x: torch.Tensor) -> torch.Tensor:
        return perp(x) * scale

    view.scale = scale  # type: ignore[attr-defined]
    return view


def coefficient_view(G: Generator, data: torch.Tensor):
    """``cond(x) = (Q (x - base) - m) / s``: the coordinates ``(B, K)`` of ``x (B, C, R, R)``
    in the orthonormal basis ``Q = G.basis_q`` of the linear path's span, standardised per
    coordinate with ``data``'s mean ``m`` and std ``s`` (the discriminator's condition for
    ``TrainConfig.disc_cond = "coefficients"``; a generated image's are its own linear part's,
    since its residual is orthogonal to the span)."""
    if G.basis_q is None or G.base is None:
        raise InvalidInput(
            "the coefficient view needs a generator with a base image and residual_orthogonal"
        )

    def coords(x: torch.Tensor) -> torch.Tensor:
        return _span_coordinates(G, x)[1]

    with torch.no_grad():
        a = torch.cat([coords(data[i : i + 512].to(G.base)) for i in range(0, len(data), 512)])
    m, s = a.mean(0), a.std(0).clamp_min(1e-8)

    def cond(x: torch.Tensor) -> torch.Tensor:
        return (coords(x) - m.to(x.dtype)) / s.to(x.dtype)

    return cond


def _no_cond(x: torch.Tensor) -> None:
    return None


def _gen(seed: int, *keys: Any) -> torch.Generator:
    """A CPU generator seeded by a hash of ``(seed, *keys)`` (stable across processes)."""
    h = hashlib.sha256(repr((int(seed),) + keys).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & ((1 << 63) - 1))


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _allreduce_grads(module: torch.nn.Module, world: int) -> None:
    """Average gradients over processes with one flattened ``all_reduce``."""
    if world <= 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[i : i + n].view_as(p))
        i += n


def _broadcast_module(module: torch.nn.Module) -> None:
    _, world = _dist_info()
    if world <= 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def _noise(G: Generator, b: int, g: torch.Generator, like: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for i in range(len(G.convs)):
        res = getattr(G, f"noise_const_{i}").shape[-1]
        out.append(torch.randn(b, 1, res, res, generator=g).to(like.device, like.dtype))
    return out


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _load_data(cfg: TrainConfig, data: torch.Tensor | None) -> torch.Tensor:
    """Training images in [-1, 1], ``(N, C, R, R)`` float32 on CPU."""
    if data is not None:
        x = data.float()
    elif cfg.data == "texture":
        from ..methods.ganfit.texture_gan import texture_maps_cached

        x = texture_maps_cached(cfg.n_train, cfg.resolution, cfg.data_seed, progress=True) * 2 - 1
    else:
        raise InvalidInput(f"config data={cfg.data!r} needs the data tensor passed to train()")
    if x.dim() != 4 or x.shape[-1] != cfg.resolution or x.shape[-2] != cfg.resolution:
        raise InvalidInput(
            f"training data must be (N, C, {cfg.resolution}, {cfg.resolution}), got {tuple(x.shape)}"
        )
    return x


def _progressive_stage(G: Generator, cfg: TrainConfig, nimg: int) -> tuple[int, float]:
    """``(stage, alpha)`` after ``nimg`` images: ``fade_kimg`` at 8 px (stage 1), then per
    higher resolution a fade-in phase (alpha 0 -> 1) and a stable phase of ``fade_kimg`` each."""
    top = len(G.resolutions) - 1
    k = nimg / (cfg.fade_kimg * 1000.0) - 1.0
    if k < 0:
        return 1, 1.0
    stage = 2 + int(k // 2)
    if stage > top:
        return top, 1.0
    return stage, float(min(1.0, k - 2 * (stage - 2)))


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    work_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    data: torch.Tensor | None = None,
    resume: bool = True,
    command: str | None = None,
    progress: bool = True,
    export_name: str = "texture_gan",
    eval_fn=None,
) -> dict[str, Any]:
    """Train (or resume) a GAN; returns ``{"step", "wall_time_s", "log": [...], "G_ema": G}``.

    Args:
        config: the run (see :class:`TrainConfig`).
        work_dir: where ``checkpoint.*`` and ``log.jsonl`` live (resumed from if present and
            ``resume``).
        out: export directory for the EMA generator (+ log copy), or None.
        data: training images ``(N, C, R, R)`` in [-1, 1] (else from ``config.data``).
        command: the command line recorded in checkpoints (default: ``sys.argv``).
        eval_fn: optional ``fn(G_ema, data) -> dict`` of metrics, called at checkpoints.

    Works inside ``torch.distributed`` (initialise the process group first, as :func:`main`
    does under ``torchrun``).
    """
    rank, world = _dist_info()
    cfg = config
    dev = _device(cfg)
    work = Path(work_dir)
    if rank == 0:
        work.mkdir(parents=True, exist_ok=True)
    if cfg.batch % (cfg.micro_batch * world):
        raise InvalidInput(
            f"batch {cfg.batch} must be a multiple of micro_batch {cfg.micro_batch} x processes {world}"
        )
    accum = cfg.batch // (cfg.micro_batch * world)
    cmd = command if command is not None else " ".join(shlex.quote(a) for a in sys.argv)

    x_all = _load_data(cfg, data)
    torch.manual_seed(cfg.seed)
    G = Generator(cfg.gen_config()).to(dev)
    if G.base is not None:
        G.init_base(x_all.mean(0))
    if G.basis is not None:
        pca = AlbedoPCA.fit_lowrank(x_all.cpu(), G.basis.shape[0], seed=cfg.seed)
        G.init_linear_basis(pca.basis.to(dev), seed=cfg.seed)
    D = Discriminator(cfg.disc_config()).to(dev)
    view = _identity_view if cfg.disc_view == "image" else residual_view(G, x_all)
    cond = coefficient_view(G, x_all) if cfg.disc_cond == "coefficients" else _no_cond
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    c = cfg.r1_interval / (cfg.r1_interval + 1) if cfg.r1_interval > 0 else 1.0
    # disc_view "residual": the linear path is the PCA and stays it; its coefficients read w,
    # so the mapping network is frozen too (the synthesis layers' own style affines learn)
    frozen = [*G.mapping.parameters(), *G.coeff.parameters()] if cfg.disc_view == "residual" else []
    frozen_ids = {id(p) for p in frozen}
    trainable = [p for p in G.parameters() if id(p) not in frozen_ids]
    opt_g = torch.optim.Adam(trainable, lr=cfg.lr_g, betas=cfg.betas, eps=1e-8)
    opt_d = torch.optim.Adam(
        D.parameters(), lr=cfg.lr_d * c, betas=(cfg.betas[0] ** c, cfg.betas[1] ** c), eps=1e-8
    )
    aug_cfg = AugmentConfig(**cfg.augment)
    nets = {"G": G, "D": D, "G_ema": G_ema}
    opts = {"opt_G": opt_g, "opt_D": opt_d}
    step, wall0, log = 0, 0.0, []
    ck_w, ck_j = checkpoint_paths(work / "checkpoint")
    if resume and ck_w.is_file() and ck_j.is_file():
        saved = json.loads(ck_j.read_text()).get("config", {})
        for k in ("generator", "discriminator", "batch", "seed"):
            if saved.get(k) != cfg.to_dict().get(k):
                raise ModelFormatError(
                    f"{ck_j}: checkpoint was trained with {k}={saved.get(k)!r}, this run has "
                    f"{cfg.to_dict().get(k)!r}; use another --work-dir or --no-resume"
                )
        tensors, meta = load_training_state(work / "checkpoint", nets, opts, device=dev)
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"].cpu())
        step, wall0 = int(meta["step"]), float(meta.get("wall_time_s", 0.0))
        log = read_log(work / "log.jsonl", upto_step=step)
    _broadcast_module(G)
    _broadcast_module(D)
    _broadcast_module(G_ema)

    prog = cfg.gen_config().architecture == "progressive"
    max_s = None if cfg.max_minutes is None else cfg.max_minutes * 60
    loop = TrainingLoop(step, cfg.steps, cfg.log_interval, cfg.ckpt_interval, max_s, wall0,
                        bar=f"train {cfg.name}" if progress and rank == 0 else None,
                        bar_keys={"G": "loss_G", "D": "loss_D"})  # fmt: skip
    n_data = x_all.shape[0]
    mix_layers = G.num_ws

    def batch_data(t: int, k: int) -> torch.Tensor:
        gi = _gen(cfg.seed, t, "data")
        idx = torch.randint(0, n_data, (cfg.batch,), generator=gi)
        sel = idx[k * cfg.micro_batch : (k + 1) * cfg.micro_batch]
        return x_all[sel].to(dev)

    def fake(t: int, phase: str, k: int, m: int) -> torch.Tensor:
        g = _gen(cfg.seed, t, phase, k)
        z = torch.randn(m, G.config.z_dim, generator=g).to(dev)
        z2 = torch.randn(m, G.config.z_dim, generator=g).to(dev)
        do_mix = float(torch.rand((), generator=g)) < cfg.style_mixing
        cut = int(torch.randint(1, mix_layers, (), generator=g))
        noise = _noise(G, m, g, z)
        w = G.mapping(z)
        w2 = G.mapping(z2) if do_mix else None
        return G.synthesis(G.mix_ws(w, w2, cut if do_mix else None), noise=noise), g

    def resize(x: torch.Tensor, r: int) -> torch.Tensor:
        return x if x.shape[-1] == r else torch.nn.functional.adaptive_avg_pool2d(x, r)

    def step_fn(step: int) -> dict[str, float | None]:
        nimg = step * cfg.batch
        if prog:
            s, a = _progressive_stage(G, cfg, nimg)
            G.set_stage(s, a)
            G_ema.set_stage(s, a)
            D.set_stage(s, a)
        res = G.output_resolution
        ks = [rank * accum + i for i in range(accum)]
        # ---- G phase
        G.requires_grad_(True)
        for p in frozen:
            p.requires_grad_(False)
        D.requires_grad_(False)
        fakes = []

        def g_terms():
            for k in ks:
                img, g = fake(step, "G", k, cfg.micro_batch)
                fakes.append(img.detach())
                yield g_nonsaturating_loss(D(augment(view(img), aug_cfg, g), cond(img)))

        lg = gradient_step(opt_g, g_terms(), accum, lambda: _allreduce_grads(G, world))
        # ---- D phase, on the G phase's images (one G forward per step)
        G.requires_grad_(False)
        D.requires_grad_(True)
        d_out: list[dict[str, torch.Tensor]] = []
        r1v: list[float] = []
        r1_w = lazy_r1_weight(step, cfg.r1_gamma, cfg.r1_interval)

        def d_terms():
            for k, img in zip(ks, fakes):
                g = _gen(cfg.seed, step, "D", k)
                x_real = resize(batch_data(step, k), res)
                real = view(x_real)
                c_fake = cond(img)
                img = augment(view(img), aug_cfg, g)  # fakes first: the order of the draws
                d = discriminator_loss(
                    D, augment(real, aug_cfg, g), img, c_real=cond(x_real), c_fake=c_fake
                )
                d_out.append({n: v.detach() for n, v in d.items()})
                yield d["loss"]

        def r1_terms():  # a pass of its own: the reals augmented with their own draws
            for k in ks if r1_w > 0 else []:
                g = _gen(cfg.seed, step, "R1", k)
                x_real = resize(batch_data(step, k), res)
                real = view(x_real).detach().requires_grad_(True)
                pen = r1_penalty(real, D(augment(real, aug_cfg, g), cond(x_real)))
                r1v.append(float(pen.detach()))
                yield pen * r1_w

        terms = itertools.chain(d_terms(), r1_terms())
        gradient_step(opt_d, terms, accum, lambda: _allreduce_grads(D, world))
        # ---- w_avg (identical on all ranks) and EMA
        with torch.no_grad():
            gz = _gen(cfg.seed, step, "wavg")
            w = G.mapping(torch.randn(64, G.config.z_dim, generator=gz).to(dev))
            G.mapping.w_avg.copy_(w.mean(0).lerp(G.mapping.w_avg, 0.995 if step else 0.0))
            if G.coeff_whiten is not None:  # config.whiten_coeff: the same 64 draws; from
                # the exact statistics init_linear_basis set (64 draws cannot start a 64 x 64
                # covariance: it would be singular)
                G.update_coeff_stats(G.raw_coefficients(w), 0.99)
            if G.out_avg is not None:  # config.center_output: from this step's own fakes
                m = torch.stack([f.mean(0) for f in fakes]).mean(0)
                if world > 1:
                    torch.distributed.all_reduce(m)
                    m /= world
                G.update_out_avg(m, 0.99 if step else 0.0)
        ema_nimg = cfg.ema_kimg * 1000.0
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, (nimg + cfg.batch) * cfg.ema_rampup)
        ema_update(G_ema, G, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))

        def mean(xs) -> float:  # over the micro-batches (of this process)
            return sum(float(x) / accum for x in xs)

        return {"loss_G": mean(lg), "loss_D": mean(d["loss"] for d in d_out),
                "D_real": mean(d["logits_real"].mean() for d in d_out),
                "D_fake": mean(d["logits_fake"].mean() for d in d_out),
                "r1": mean(r1v) if r1v else None}  # fmt: skip

    def log_fn(t: int, acc: dict[str, list[float]], saving: bool) -> None:
        sec = acc.pop("step_s")
        row = {"step": t, "kimg": t * cfg.batch / 1000, "wall_time_s": round(loop.wall_time(), 2),
               "sec_per_step": round(sum(sec) / len(sec), 4),
               **{k: round(sum(v) / len(v), 5) for k, v in acc.items()}}  # fmt: skip
        if prog:
            row["stage_resolution"], row["alpha"] = G.output_resolution, round(G.alpha, 4)
        if saving and eval_fn is not None and rank == 0:
            row["metrics"] = eval_fn(G_ema, x_all)
        log.append(row)
        if rank == 0:
            with open(work / "log.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def save_fn(t: int) -> None:
        if rank != 0:
            return
        metrics = next((r["metrics"] for r in reversed(log) if "metrics" in r), {})
        meta = {"config": cfg.to_dict(), "command": cmd, "seed": cfg.seed, "step": t,
                "images_seen": t * cfg.batch, "wall_time_s": round(loop.wall_time(), 2),
                "world_size": world, "metrics": metrics, "torch": torch.__version__}  # fmt: skip
        rng = {"rng.torch": torch.get_rng_state()}
        save_training_state(work / "checkpoint", nets, opts, meta, rng)
        write_log(work / "log.jsonl", log)
        if out is not None:
            export_generator(G_ema, meta, Path(out) / export_name, log)

    stop_reason = loop.run(step_fn, log_fn, save_fn)
    if out is not None and rank == 0:
        calibrate_export(G_ema, cfg, ck_j, Path(out) / export_name, log)
    return {"step": loop.step, "wall_time_s": loop.wall_time(), "log": log,
            "G_ema": G_ema, "G": G, "D": D, "stop_reason": stop_reason}  # fmt: skip


def calibrate_export(
    G_ema: Generator, cfg: TrainConfig, ck_json: Path, stem: Path, log: list[dict]
) -> None:
    """Re-export ``G_ema`` with its running statistics made exact for *its own* weights (not
    G's running ones): the coefficient whitening over 4096 seeded ``z``
    (``whiten_coeff``), then the output mean over 2048 (``center_output``). No-op otherwise."""
    if G_ema.coeff_whiten is None and G_ema.out_avg is None:
        return
    meta = json.loads(ck_json.read_text()) if ck_json.is_file() else {"config": cfg.to_dict()}
    if G_ema.coeff_whiten is not None:
        G_ema.calibrate_coeff_stats(4096, seed=cfg.seed)
        meta["coeff_stats"] = {"samples": 4096, "seed": cfg.seed}
    if G_ema.out_avg is not None:
        G_ema.calibrate_out_avg(2048, seed=cfg.seed)
        meta["out_avg"] = {"samples": 2048, "seed": cfg.seed}
    export_generator(G_ema, meta, stem, log)


def export_generator(
    G: Generator, meta: dict, stem: str | os.PathLike, log: list[dict] | None = None
) -> None:
    """Write ``stem.safetensors`` (generator weights) + ``stem.json`` (+ ``log.jsonl`` beside)."""
    stem = Path(stem)
    m = dict(meta)
    m["kind"] = "generator"
    m["generator_config"] = G.config.to_dict()
    m["license"] = "MIT (trained by facelab from its own procedural textures)"
    save_checkpoint(stem, {k: v for k, v in G.state_dict().items()}, m)
    if log is not None:
        write_log(stem.parent / "log.jsonl", log)


def load_generator(
    stem: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[Generator, dict]:
    """``(G, meta)`` from an :func:`export_generator` file or a training checkpoint's ``G_ema``."""
    tensors, meta = load_checkpoint(stem, device=device)
    if meta.get("kind") == "generator":
        gcfg, sd = meta["generator_config"], tensors
    else:
        cfg = meta.get("config")
        if not isinstance(cfg, dict) or "generator" not in cfg:
            raise ModelFormatError(f"{stem}: checkpoint has no generator config")
        gcfg, sd = TrainConfig.from_dict(cfg).gen_config().to_dict(), prefixed(tensors, "G_ema")
    G = Generator(GeneratorConfig(**gcfg)).to(device)
    try:
        G.load_state_dict(sd)
    except RuntimeError as e:
        raise ModelFormatError(f"{stem}: weights do not match the generator config ({e})") from e
    tcfg = meta.get("config")
    if isinstance(tcfg, dict) and "sample_detail" in tcfg:
        G.detail = float(TrainConfig.from_dict(tcfg).sample_detail)
    return G.eval().requires_grad_(False), meta


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The training options (shared by ``python -m facelab.gan.train`` and ``facelab train``)."""
    p.add_argument(
        "--config", default="cpu-64", help=f"named config: {', '.join(CONFIGS)} (default cpu-64)"
    )
    p.add_argument("--out", default=None, help="export directory for the EMA generator and log")
    p.add_argument("--work-dir", default=None,
                   help="checkpoints + log (default: <facelab cache>/gan/<config>)")  # fmt: skip
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument(
        "--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this"
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start afresh even if a checkpoint exists"
    )
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads per process (default 1; 0: torch's default, one per core)",
    )  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a config field, e.g. --set batch=32 --set 'augment={\"translation\":0.5}'")  # fmt: skip
    p.add_argument(
        "--no-eval", action="store_true", help="skip the cheap spectral metrics at checkpoints"
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.config not in CONFIGS:
        raise InvalidInput(f"unknown config {args.config!r}; choose from {sorted(CONFIGS)}")
    d = CONFIGS[args.config].to_dict()
    for kv in args.set:
        if "=" not in kv:
            raise InvalidInput(f"--set expects KEY=JSON, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            d[k] = json.loads(v)
        except json.JSONDecodeError:
            d[k] = v
    if args.steps is not None:
        d["steps"] = args.steps
    if args.seed is not None:
        d["seed"] = args.seed
    if args.max_minutes is not None:
        d["max_minutes"] = args.max_minutes
    return TrainConfig.from_dict(d)


def run(args: argparse.Namespace) -> int:
    """Run training from parsed arguments (initialises torch.distributed under torchrun)."""
    set_threads(args.threads)
    cfg = config_from_args(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if _device(cfg).type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    from ..data import cache_dir

    work = Path(args.work_dir) if args.work_dir else Path(cache_dir()) / "gan" / cfg.name
    eval_fn = None
    if not args.no_eval:
        from .metrics import training_metrics

        eval_fn = training_metrics
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    prog = (
        "facelab"
        if argv0 in ("facelab", "__main__.py", "cli.py")
        else "python -m facelab.gan.train"
    )
    command = " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])
    res = train(cfg, work, out=args.out, resume=not args.no_resume, eval_fn=eval_fn, command=command,
                progress=sys.stderr.isatty() or os.environ.get("FACELAB_TQDM") == "1")  # fmt: skip
    rank, _ = _dist_info()
    if rank == 0:
        last = res["log"][-1] if res["log"] else {}
        print(json.dumps({"step": res["step"], "wall_time_s": round(res["wall_time_s"], 1),
                          "stop_reason": res["stop_reason"], "last": last}))  # fmt: skip
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m facelab.gan.train [--config cpu-64] [--out DIR] ...``."""
    p = argparse.ArgumentParser(
        prog="python -m facelab.gan.train", description=__doc__.split("\n")[0]
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _spawn_worker(rank: int, world: int, init_file: str, cfg: dict, work_dir: str, data_path: str | None,
                  result_path: str) -> None:  # fmt: skip
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from safetensors.torch import load_file, save_file

        data = load_file(data_path)["data"] if data_path else None
        res = train(
            TrainConfig.from_dict(cfg), work_dir, data=data, progress=False, command="spawn_train"
        )
        if rank == 0:
            sd = {f"G.{k}": v for k, v in res["G"].state_dict().items()}
            sd.update({f"D.{k}": v for k, v in res["D"].state_dict().items()})
            sd.update({f"G_ema.{k}": v for k, v in res["G_ema"].state_dict().items()})
            save_file({k: v.contiguous() for k, v in sd.items()}, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn_train(
    world: int, config: TrainConfig, work_dir: str | os.PathLike, data: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Run :func:`train` in ``world`` local CPU processes (gloo), as ``torchrun`` would; returns
    rank 0's final ``G.*``, ``D.*`` and ``G_ema.*`` tensors. For tests and small experiments."""
    import tempfile

    import torch.multiprocessing as mp
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp:
        data_path = None
        if data is not None:
            data_path = os.path.join(tmp, "data.safetensors")
            save_file({"data": data.contiguous()}, data_path)
        result = os.path.join(tmp, "result.safetensors")
        init = os.path.join(tmp, "init")
        method = "fork" if sys.platform.startswith("linux") else "spawn"  # fork: no re-import
        mp.start_processes(_spawn_worker, args=(world, init, config.to_dict(), str(work_dir), data_path, result),
                           nprocs=world, join=True, start_method=method)  # fmt: skip
        return load_file(result)
