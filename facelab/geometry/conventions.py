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

**Images** exchanged between modules: ``(B, 3, H, W)`` float RGB in ``[0, 1]``. Render buffers
(rasterizer output and interpolated attributes) are channel-last ``(B, H, W, C)``.
"""

from __future__ import annotations

import torch

FLIP_YZ = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def flip_yz(like: torch.Tensor | None = None) -> torch.Tensor:
    """``diag(1, -1, -1)`` as a ``(3, 3)`` tensor on ``like``'s device and dtype."""
    kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
    return torch.tensor(FLIP_YZ, **kw)
