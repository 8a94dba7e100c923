"""Device and dtype follow the inputs: the renderer, the world and the fitter end to end.

Two kinds of run:

* ``float64`` on the CPU, always: a tensor created without ``dtype=`` is float32 and meets the
  float64 model (a matmul, ``grid_sample`` or ``index_put`` refuses the mix; elsewhere the
  result dtype is checked). A dtype leak fails here the same way a device leak fails on a GPU.
* ``float32`` on every accelerator present (CUDA, MPS); skipped with the reason elsewhere.
  A tensor created without ``device=`` is on the CPU and meets a CUDA tensor: torch raises.

Every case checks that each output tensor is on the model's device, and floating outputs
have the model's dtype.
"""

from __future__ import annotations

import pytest
import torch

from facelab.models import load

torch.set_num_threads(1)


def _accelerators() -> list:
    out = []
    for name, present, why in (
        ("cuda", torch.cuda.is_available(), "CUDA is not available on this machine"),
        (
            "mps",
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
            "MPS (Apple GPU) is not available on this machine",
        ),
    ):
        out.append(
            pytest.param(
                (name, torch.float32),
                id=f"{name}-float32",
                marks=pytest.mark.skipif(not present, reason=why),
            )
        )
    return out


PLACES = [
    pytest.param(("cpu", torch.float64), id="cpu-float64"),
    # float32 model while torch's default dtype is float64: a tensor created without dtype=
    # is float64 and promotes what it touches, so the output dtype check catches it
    pytest.param(("cpu", "float32-under-default-float64"), id="cpu-float32-default64"),
    *_accelerators(),
]


@pytest.fixture(scope="module", params=PLACES)
def place(request):
    device, dtype = request.param
    if dtype == "float32-under-default-float64":
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        yield torch.device(device), torch.float32
        torch.set_default_dtype(old)
        return
    yield torch.device(device), dtype


@pytest.fixture(scope="module")
def model(place):
    device, dtype = place
    return load("builtin", device=device, dtype=dtype)


def _check(tensors: dict, device: torch.device, dtype: torch.dtype, where: str) -> None:
    for k, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            continue
        assert t.device.type == device.type, f"{where}: {k} on {t.device}, expected {device}"
        if t.is_floating_point():
            assert t.dtype == dtype, f"{where}: {k} is {t.dtype}, expected {dtype}"


def _world(model, realism: float, size: int = 64):
    from facelab.world import WorldConfig, WorldDataset

    cfg = WorldConfig(model="builtin", image_size=size, realism=realism, yaw_range=(-15.0, 15.0))
    return WorldDataset(cfg, length=2, seed=1, model=model)


def test_renderer_follows_the_mesh(model, place):
    from facelab.render import Renderer, sh_ambient

    device, dtype = place
    B = 2
    p = model.sample(B, torch.Generator().manual_seed(0))
    verts = model.vertices(p)
    K = torch.tensor([[150.0, 0, 32], [0, 150.0, 32], [0, 0, 1]], dtype=dtype, device=device)
    rot = torch.zeros(B, 3, dtype=dtype, device=device)
    tr = torch.tensor([[0.0, 0.0, 30.0]] * B, dtype=dtype, device=device)
    albedo = model.albedo(p.albedo, B) if model.albedo_mean is not None else None
    sh = sh_ambient(0.8, B, 3, dtype=dtype, device=device)
    ldir = torch.tensor([[0.0, 0.0, -1.0]] * B, dtype=dtype, device=device)
    ks = torch.tensor(0.3, dtype=dtype, device=device)  # a 0-d learnable scalar
    for aa in (False, True):
        out = Renderer(image_size=64, antialias=aa).render(
            verts, model.faces, K=K, rotation=rot, translation=tr, vertex_colors=albedo, sh=sh,
            light_dir=ldir, specular=ks, landmarks=model.landmarks,
        )  # fmt: skip
        assert bool(out.mask.any())
        _check(vars(out), device, dtype, f"Renderer(antialias={aa})")
    # a UV texture through the same renderer
    tex = torch.rand(B, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    out = Renderer(image_size=64).render(
        verts, model.faces, K=K, rotation=rot, translation=tr, texture=tex, uvs=model.uvs,
        uv_faces=model.uv_faces, sh=sh,
    )  # fmt: skip
    _check(vars(out), device, dtype, "Renderer(texture)")


@pytest.mark.parametrize("realism", [0.0, 1.0])
def test_world_renders_on_the_models_device_and_dtype(model, place, realism):
    device, dtype = place
    s = _world(model, realism)[0]
    _check(s, device, dtype, f"world(realism={realism})")
    assert bool(s["mask"].any()) and bool(torch.isfinite(s["image"]).all())


def test_fitter_end_to_end(model, place):
    from facelab.fit import FitConfig, fit

    device, dtype = place
    s = _world(model, 0.0, size=128)[0]
    # the albedo PCA (built per test, ~10-20 s on one thread) once, in float64; the other
    # places fit a constant albedo
    albedo = "pca" if dtype == torch.float64 else "constant"
    res = fit(
        s["image"].cpu(), model=model, landmarks=s["landmarks2d"].cpu(), fast=True,
        progress=False, config=FitConfig(resolution=48, albedo=albedo),
    )  # fmt: skip
    tensors = {k: v for k, v in vars(res).items() if isinstance(v, torch.Tensor)}
    tensors.update({f"params.{k}": v for k, v in res.params.items()})
    # the photo keeps its own dtype (display image); geometry and parameters follow the model
    for k in ("image", "overlay", "render", "texture"):
        tensors.pop(k, None)
    _check(tensors, device, dtype, "fit")
    for k in ("image", "overlay", "render"):
        assert getattr(res, k).device.type == device.type, k
    assert bool(torch.isfinite(res.posed_vertices).all())
    assert res.landmark_nme < 0.2
