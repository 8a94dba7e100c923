r"""``Renderer``: camera + lights + mesh -> image, mask, depth, normals, projected landmarks.

A thin convenience over the primitives, doing what every chapter does::

    verts_cam = pose_to_camera(verts, rotation, translation)      # or camera.to_camera(verts)
    screen    = project_depth(verts_cam, K)                       # (u, v, z)
    frags     = rasterize(screen, faces, image_size)
    n         = normalize(interpolate(vertex_normals(verts_cam), frags))
    albedo    = interpolate(vertex_colors, frags)  or  texture(tex, interpolate(uvs, frags))
    colour    = albedo * sh_shading(n, sh) + albedo * lambert(n, l) + k_s * blinn_phong(n, l, v)

Shading happens only at the covered pixels (packed ``(P, C)`` rows), then one scatter makes the
image. Silhouette gradients: ``antialias=True`` (nvdiffrast's analytic antialiasing,
:func:`facelab.render.antialias`), or ``mode="soft"``, which replaces the hard mask and colours
by SoftRas (:func:`facelab.render.soft_rasterize`, per-vertex Gouraud shading). ``backend="pytorch3d"`` swaps the rasterizer for PyTorch3D's (same conventions,
same outputs) where it is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InvalidInput
from ..geometry.camera import Camera, pose_to_camera, project_depth
from ..geometry.mesh import vertex_normals  # the one implementation (also importable here)
from .antialias import antialias, face_adjacency
from .interpolate import interpolate, interpolate_packed, scatter_packed
from .rasterize import Fragments, rasterize
from .shading import (
    blinn_phong,
    depth_to_image,
    encode_normals,
    lambert,
    sh_shading,
    sh_shading_packed,
)
from .soft import soft_rasterize
from .texture import texture as sample_texture

__all__ = ["RenderOutput", "Renderer"]

BACKENDS = ("torch", "pytorch3d")


@dataclass
class RenderOutput:
    """What :meth:`Renderer.render` returns. Images are ``(B, C, H, W)``.

    Attributes:
        image: ``(B, 3, H, W)`` shaded colour over the background.
        mask: ``(B, 1, H, W)`` coverage: 0/1 (hard) or the soft silhouette (``mode="soft"``).
        depth: ``(B, 1, H, W)`` camera depth ``z``, 0 on background (differentiable).
        normals: ``(B, 3, H, W)`` unit camera-space normals, 0 on background
            (:meth:`normal_map` encodes them as colours).
        fragments: the rasterizer output (:class:`~facelab.render.Fragments`).
        verts_camera: ``(B, V, 3)`` camera-space vertices.
        verts_screen: ``(B, V, 3)`` ``(u, v, z)``.
        landmarks: ``(B, L, 2)`` projected landmark vertices (pixels), if requested.
        albedo: ``(B, 3, H, W)`` the unlit surface colour (0 on background), if requested
            (``render(..., albedo_map=True)``, hard mode).
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    fragments: Fragments
    verts_camera: torch.Tensor
    verts_screen: torch.Tensor
    landmarks: torch.Tensor | None = None
    albedo: torch.Tensor | None = None

    def normal_map(self) -> torch.Tensor:
        """``(B, 3, H, W)`` normals encoded ``(n + 1) / 2`` in ``[0, 1]``, 0 on background."""
        m = self.fragments.mask
        return encode_normals(self.normals.permute(0, 2, 3, 1), m).permute(0, 3, 1, 2)

    def depth_map(self) -> torch.Tensor:
        """``(B, 1, H, W)`` depth as a ``[0, 1]`` picture (near = white)."""
        return depth_to_image(self.depth[:, 0], self.fragments.mask).unsqueeze(1)


def _batch(x: torch.Tensor | None, B: int, name: str, dims: int) -> torch.Tensor | None:
    if x is None:
        return None
    if x.dim() == dims - 1:
        x = x.unsqueeze(0)
    if x.dim() != dims or x.shape[0] not in (1, B):
        raise InvalidInput(f"{name} must have batch 1 or {B}, got shape {tuple(x.shape)}")
    return x.expand(B, *x.shape[1:])


@dataclass
class Renderer:
    """Render meshes with facelab's rasterizer (or PyTorch3D's).

    Attributes:
        image_size: ``(H, W)`` or ``S``.
        backend: ``"torch"`` (default, runs everywhere) or ``"pytorch3d"``
            (raises :class:`~facelab.errors.BackendUnavailable` if not installed).
        mode: ``"hard"`` (z-buffer; gradients w.r.t. colours, lights and vertex positions
            inside the silhouette) or ``"soft"`` (SoftRas: also silhouette gradients).
        background: ``(3,)`` colour or float.
        near: triangles closer than this (camera units) are dropped.
        cull_backfaces: skip triangles facing away (faster, and hides the inside of a head).
        sigma, gamma, faces_per_pixel: SoftRas parameters for ``mode="soft"``.
        antialias: in ``mode="hard"``, run nvdiffrast-style analytic antialiasing
            (:func:`facelab.render.antialias`) on the image and mask: smooth silhouettes with
            gradients w.r.t. silhouette vertex positions, sharp interior.
    """

    image_size: int | tuple[int, int] = 256
    backend: str = "torch"
    mode: str = "hard"
    background: float | tuple[float, float, float] = 0.0
    near: float = 1e-3
    cull_backfaces: bool = True
    sigma: float = 1.0
    gamma: float = 1e-2
    faces_per_pixel: int | None = None
    antialias: bool = False
    _size: tuple[int, int] = field(init=False, repr=False)
    _adjacency: tuple | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.image_size
        self._size = (s, s) if isinstance(s, int) else (int(s[0]), int(s[1]))
        if self.backend not in BACKENDS:
            raise InvalidInput(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.mode not in ("hard", "soft"):
            raise InvalidInput(f"mode must be 'hard' or 'soft', got {self.mode!r}")
        if self.backend == "pytorch3d":
            from .backends import require_pytorch3d

            require_pytorch3d()

    def rasterize(self, verts_screen: torch.Tensor, faces: torch.Tensor) -> Fragments:
        """Rasterize screen vertices with the configured backend."""
        if self.backend == "pytorch3d":
            from .backends import rasterize_pytorch3d

            return rasterize_pytorch3d(
                verts_screen, faces, self._size, self.near, self.cull_backfaces
            )
        return rasterize(verts_screen, faces, self._size, self.near, self.cull_backfaces)

    def render(
        self,
        verts: torch.Tensor,
        faces: torch.Tensor,
        camera: Camera | None = None,
        K: torch.Tensor | None = None,
        rotation: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
        vertex_colors: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        uvs: torch.Tensor | None = None,
        uv_faces: torch.Tensor | None = None,
        sh: torch.Tensor | None = None,
        light_dir: torch.Tensor | None = None,
        light_color: torch.Tensor | float = 1.0,
        specular: float | torch.Tensor = 0.0,
        shininess: float = 32.0,
        landmarks: torch.Tensor | None = None,
        albedo_map: bool = False,
    ) -> RenderOutput:
        """Render a batch of meshes.

        Args:
            verts: ``(B, V, 3)``: model space if ``rotation``/``translation`` are given
                (``x_cam = R(rotation) diag(1,-1,-1) x + translation``), else world space if
                ``camera`` is given (``camera.to_camera``), else camera space.
            faces: ``(F, 3)`` long.
            camera: a :class:`~facelab.geometry.camera.Camera` (its ``K``; its ``R, t`` unless
                a pose is given). Or pass ``K``.
            K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics when there is no ``camera``.
            rotation, translation: ``(B, 3)`` face pose (axis-angle, camera-space translation).
            vertex_colors: ``(B, V, 3)`` or ``(V, 3)`` albedo per vertex, or
            texture: ``(B, 3, S, S)`` albedo texture with ``uvs (T, 2)`` and ``uv_faces (F, 3)``
                (``uv_faces`` defaults to ``faces``). Neither: white.
            sh: ``(B, 9, 3)`` SH lighting (:func:`facelab.render.sh_shading`).
            light_dir: ``(B, 3)`` direction towards a directional light (camera space) for
                Lambert + Blinn-Phong; ``light_color`` ``(B, 3)`` or float.
            specular, shininess: Blinn-Phong ``k_s`` and exponent.
            landmarks: ``(L,)`` long vertex indices to project.
            albedo_map: also return the unlit albedo buffer (``RenderOutput.albedo``).

            With neither ``sh`` nor ``light_dir`` the albedo is shown unlit.

        Returns:
            :class:`RenderOutput`.
        """
        if verts.dim() != 3 or verts.shape[-1] != 3:
            raise InvalidInput(f"verts must be (B, V, 3), got {tuple(verts.shape)}")
        B, V, _ = verts.shape
        H, W = self._size
        if camera is not None and tuple(camera.image_size) != (H, W):
            raise InvalidInput(
                f"camera.image_size {camera.image_size} != renderer image_size {(H, W)}"
            )
        if rotation is not None or translation is not None:
            rot = rotation if rotation is not None else verts.new_zeros(B, 3)
            tr = translation if translation is not None else verts.new_zeros(B, 3)
            verts_cam = pose_to_camera(verts, rot.expand(B, 3), tr.expand(B, 3))
        elif camera is not None:
            verts_cam = camera.to_camera(verts)
        else:
            verts_cam = verts
        if camera is not None:
            K = camera.K
        if K is None:
            raise InvalidInput("pass a camera or intrinsics K to Renderer.render")
        K = K if K.dim() == 3 else K.unsqueeze(0)
        screen = project_depth(verts_cam, K.to(verts.dtype).expand(B, 3, 3))
        faces_in = faces
        faces = faces.long()
        frags = self.rasterize(screen, faces)
        bg = torch.as_tensor(self.background, dtype=verts.dtype, device=verts.device).expand(3)

        vn = vertex_normals(verts_cam, faces)  # (B, V, 3) camera space
        bi = frags.batch_index
        vertex_colors = _batch(vertex_colors, B, "vertex_colors", 3)
        # one fused interpolation of normals | positions | colours: (P, 6 or 9)
        use_vc = texture is None and vertex_colors is not None and self.mode == "hard"
        parts = [vn, verts_cam] + ([vertex_colors.to(verts.dtype)] if use_vc else [])
        packed = interpolate_packed(torch.cat(parts, -1), frags)
        n_p = torch.nn.functional.normalize(packed[:, :3], dim=-1)  # (P, 3)
        pos_p = packed[:, 3:6]
        sh = _batch(sh, B, "sh", 3)
        light_dir = _batch(light_dir, B, "light_dir", 2)
        if isinstance(light_color, torch.Tensor):
            light_color = _batch(light_color, B, "light_color", 2)

        if self.mode == "soft":
            if texture is not None:
                raise InvalidInput(
                    "mode='soft' shades per vertex: pass vertex_colors, not a texture"
                )
            alb_v = vertex_colors if vertex_colors is not None else torch.ones_like(verts)
            pos_v = verts_cam
            col_v = self._shade(vn, alb_v, pos_v, sh, light_dir, light_color, specular, shininess)
            out = soft_rasterize(
                screen, faces, (H, W), col_v, self.sigma, self.gamma, bg,
                self.faces_per_pixel, near=self.near, cull_backfaces=self.cull_backfaces,
            )  # fmt: skip
            image, mask = out[..., :3], out[..., 3:]
        else:
            if texture is not None:
                if uvs is None:
                    raise InvalidInput("texture needs uvs (T, 2) (and uv_faces if not faces)")
                uv_img = interpolate(uvs, frags, faces=uv_faces if uv_faces is not None else faces)
                alb = sample_texture(texture, uv_img, mask=frags.mask)
                alb_p = alb.reshape(-1, alb.shape[-1])[frags.pix]
            elif use_vc:
                alb_p = packed[:, 6:9]
            else:
                alb_p = n_p.new_ones(n_p.shape[0], 3)
            col_p = self._shade(
                n_p, alb_p, pos_p, sh, _idx(light_dir, bi),
                _idx(light_color, bi) if isinstance(light_color, torch.Tensor) else light_color,
                _idx(specular, bi) if isinstance(specular, torch.Tensor) and specular.dim() else specular,
                shininess, bi,
            )  # fmt: skip
            image = scatter_packed(col_p, frags, bg)
            mask = frags.mask.unsqueeze(-1).to(image.dtype)
            if self.antialias:
                both = antialias(
                    torch.cat([image, mask], -1), frags, screen, faces, self._adj(faces_in, faces)
                )
                image, mask = both[..., :3], both[..., 3:]
        alb_img = None
        if albedo_map and self.mode == "hard":
            alb_img = scatter_packed(alb_p, frags).permute(0, 3, 1, 2)
        depth = scatter_packed(frags.z_packed.unsqueeze(1), frags)
        normals = scatter_packed(n_p, frags)
        lmk = None
        if landmarks is not None:
            lmk = screen[:, landmarks.long(), :2]
        return RenderOutput(
            image=image.permute(0, 3, 1, 2),
            mask=mask.permute(0, 3, 1, 2),
            depth=depth.permute(0, 3, 1, 2),
            normals=normals.permute(0, 3, 1, 2),
            fragments=frags,
            verts_camera=verts_cam,
            verts_screen=screen,
            landmarks=lmk,
            albedo=alb_img,
        )

    def _adj(self, faces_in: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """Face adjacency, cached for the last ``faces`` tensor (same object and shape)."""
        c = self._adjacency
        if c is None or c[0] is not faces_in or c[1] != tuple(faces.shape):
            self._adjacency = c = (faces_in, tuple(faces.shape), face_adjacency(faces))
        return c[2]

    @staticmethod
    def _shade(n, albedo, pos, sh, light_dir, light_color, specular, shininess, rows=None):
        """Colour of surface points: per vertex ``(B, V, .)`` with per-image parameters, or
        packed ``(P, .)`` rows of images ``rows (P,)`` (``sh`` per image, the rest per row)."""
        if sh is None and light_dir is None:
            return albedo
        col = 0
        if sh is not None:
            shade = sh_shading(n, sh) if rows is None else sh_shading_packed(n, sh, rows)
            col = col + albedo * shade
        if light_dir is not None:
            lc = light_color
            col = col + albedo * lambert(n, light_dir, lc)
            spec_on = not (isinstance(specular, float | int) and specular == 0)
            if spec_on:
                view = torch.nn.functional.normalize(-pos, dim=-1)
                ks = specular
                if isinstance(ks, torch.Tensor) and ks.dim():  # (B,) or (P,): broadcast
                    ks = ks.reshape(ks.shape[0], *([1] * (n.dim() - 1)))
                col = col + ks * blinn_phong(n, light_dir, view, shininess, lc)
        return col

    def project_landmarks(
        self, verts_camera: torch.Tensor, landmarks: torch.Tensor, K: torch.Tensor
    ) -> torch.Tensor:
        """``(B, L, 2)`` pixel positions of landmark vertices ``landmarks (L,)``."""
        K = K if K.dim() == 3 else K.unsqueeze(0)
        return project_depth(verts_camera[:, landmarks.long()], K)[..., :2]


def _idx(x, bi: torch.Tensor):
    """Per-image tensor ``(B, ...)`` -> per-covered-pixel rows ``(P, ...)``."""
    return None if x is None else x[bi]
