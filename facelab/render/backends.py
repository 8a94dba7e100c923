"""Optional rasterizer backends with facelab's conventions: PyTorch3D.

``rasterize_pytorch3d`` takes the same screen-space vertices ``(u, v, z)`` as
:func:`facelab.render.rasterize` and returns the same :class:`~facelab.render.Fragments`, so a
:class:`~facelab.render.Renderer` with ``backend="pytorch3d"`` gives the same images.

Conversion to PyTorch3D's screen NDC (+x left, +y up, the shorter image side spanning
``[-1, 1]``, pixel centres at ``+0.5``; see PyTorch3D's "cameras" notes)::

    x_ndc = (W - 2 u) / min(H, W),     y_ndc = (H - 2 v) / min(H, W),     z = camera depth

and ``pytorch3d.renderer.mesh.rasterize_meshes`` with ``perspective_correct=True`` (it
interpolates with ``1/z`` weights, as facelab does) and one face per pixel. Culling of back
faces and of triangles behind ``near`` is done here with facelab's rule (front = counter-
clockwise as the viewer sees the image) before handing the faces over, so both backends drop
the same triangles. Its barycentrics and depth carry PyTorch3D's own gradients.
"""

from __future__ import annotations

import torch

from ..errors import BackendUnavailable
from .rasterize import Fragments, _check_inputs, _drawn_faces, signed_screen_areas

__all__ = ["pytorch3d_available", "rasterize_pytorch3d", "require_pytorch3d"]


def pytorch3d_available() -> bool:
    """True if ``pytorch3d`` imports."""
    try:
        import pytorch3d.renderer  # noqa: F401
    except Exception:  # ImportError, or a broken build raising at import
        return False
    return True


def require_pytorch3d() -> None:
    """Raise :class:`BackendUnavailable` (with what to do) unless PyTorch3D imports."""
    if not pytorch3d_available():
        raise BackendUnavailable(
            "backend='pytorch3d' needs PyTorch3D, which is not installed (it has no wheels for "
            "most platforms: build it from source, see its INSTALL.md). Use backend='torch', "
            "facelab's own rasterizer, which gives the same outputs."
        )


def rasterize_pytorch3d(
    verts_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: int | tuple[int, int],
    near: float = 1e-6,
    cull_backfaces: bool = False,
    eps_area: float = 1e-12,
    bin_size: int | None = 0,
) -> Fragments:
    """PyTorch3D's rasterizer behind facelab's interface (same arguments as
    :func:`facelab.render.rasterize`; ``bin_size=0`` is PyTorch3D's naive rasterizer, None
    lets it choose coarse-to-fine binning)."""
    require_pytorch3d()
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    H, W = _check_inputs(verts_screen, faces, image_size)
    faces = faces.long()
    B, V, _ = verts_screen.shape
    dev, dt = verts_screen.device, verts_screen.dtype
    s = float(min(H, W))
    ndc = torch.stack(
        [
            (W - 2 * verts_screen[..., 0]) / s,
            (H - 2 * verts_screen[..., 1]) / s,
            verts_screen[..., 2],
        ],
        -1,
    )
    with torch.no_grad():
        area = signed_screen_areas(verts_screen.detach(), faces)
        ok = _drawn_faces(verts_screen.detach()[:, faces, 2], area, near, eps_area, cull_backfaces)
    kept = [torch.nonzero(ok[b], as_tuple=True)[0] for b in range(B)]
    meshes = Meshes(verts=list(ndc.unbind(0)), faces=[faces[k] for k in kept])
    p2f, zbuf, bary, _ = rasterize_meshes(
        meshes,
        image_size=(H, W),
        blur_radius=0.0,
        faces_per_pixel=1,
        bin_size=bin_size,
        perspective_correct=True,
        cull_backfaces=False,
    )
    p2f, zbuf, bary = p2f[..., 0], zbuf[..., 0].to(dt), bary[..., 0, :].to(dt)
    # packed face index (over the kept faces of all meshes) -> index into `faces`
    kept_all = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long, device=dev)
    valid = p2f >= 0
    local = torch.full_like(p2f, -1)
    local[valid] = kept_all[p2f[valid]]
    pix = torch.nonzero(valid.reshape(-1), as_tuple=True)[0]
    bary_flat = bary.reshape(-1, 3)
    zflat = zbuf.reshape(-1)
    bary = torch.where(valid.unsqueeze(-1), bary, torch.zeros_like(bary))
    zbuf = torch.where(valid, zbuf, torch.full_like(zbuf, -1.0))
    return Fragments(
        pix_to_face=local,
        bary=bary,
        zbuf=zbuf,
        pix=pix,
        face=local.reshape(-1)[pix],
        bary_packed=bary_flat[pix],
        z_packed=zflat[pix],
        faces=faces,
        image_size=(H, W),
    )
