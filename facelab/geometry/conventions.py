"""The one coordinate convention of facelab, stated once.

**Model space** (every loader converts to it): right-handed, +x towards the face's left
(the viewer's right when facing it), +y up, +z out of the face (the face looks down +z),
in the model's own units (``MorphableModel.units``).

**Camera space** (OpenCV): +x right, +y down, +z forward, into the scene. A point is visible
when z > 0.

**Pixels**: ``(u, v)`` = (column, row); pixel ``(i, j)`` (row i, column j) covers
``[j, j+1) x [i, i+1)`` and its centre is ``(j + 0.5, i + 0.5)``. The image covers
``[0, W] x [0, H]``. Projection: ``u = fx * x / z + cx``, ``v = fy * y / z + cy``; a centred
principal point is ``(W / 2, H / 2)``.

**Pose**: a face's pose (``FaceParams.rotation``, axis-angle, and ``translation``) maps model
space to camera space as ``x_cam = R(rotation) @ FLIP @ x_model + translation`` where
``FLIP = diag(1, -1, -1)`` turns the model's y-up/z-out frame into the camera's y-down/z-forward
frame. So rotation 0 is a frontal face looking into the camera; yaw is a rotation about the
camera's y axis, pitch about x, roll about z.

**Images** exchanged between modules: ``(B, 3, H, W)`` float RGB in ``[0, 1]`` (photos,
:class:`facelab.render.RenderOutput`, the world's samples). Render buffers (rasterizer output,
interpolated attributes, :class:`facelab.fit.render.FaceRender`) are channel-last
``(B, H, W, C)``; convert at the edges with ``permute``.

**Background**: the rasterizer marks uncovered pixels with ``Fragments.pix_to_face = -1`` and
``Fragments.zbuf = -1`` (a sentinel, never a depth); every depth *map* (``RenderOutput.depth``,
the world's ``depth``) and every colour, albedo and normal buffer is 0 there.

**One render path**: ``rasterize -> Fragments -> interpolate / texture -> shading (->
antialias)``, composed once in :class:`facelab.render.Renderer`; the fitter's ``render_face`` and
the world's photos are ``Renderer`` renders plus their own masks and shading on the same
fragments.

**Focal length** from a field of view: across the longer image side,
``f = 0.5 max(H, W) / tan(fov / 2)`` (:func:`facelab.geometry.camera.focal_from_fov`).
"""

from __future__ import annotations

import torch

FLIP_YZ = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def flip_yz(like: torch.Tensor | None = None) -> torch.Tensor:
    """``diag(1, -1, -1)`` as a ``(3, 3)`` tensor on ``like``'s device and dtype."""
    kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
    return torch.tensor(FLIP_YZ, **kw)
