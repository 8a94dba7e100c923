r"""Evaluating symmetry-prior inversion on world faces, against **true** novel views.

The paper scores a novel view of an inverted photo against the flipped photo (a proxy: there is
no second photo of an FFHQ face). The world (:mod:`facelab.world`) renders the *same* person,
light and albedo from any camera, with exact depth, so here the novel views are real:

- :func:`world_face` draws one person at an input yaw and renders the photo (the GAN's
  framing: :func:`facelab.gan.triplane_data.world_config`, pitch and roll 0), its exact EG3D
  camera, the face-region mask, and the true views at ``eval_yaws`` with their depth;
  ``asymmetric=True`` paints a dark mark on one cheek of the albedo (in every view);
  ``side_light=True`` replaces the key light by one from the person's side, fixed to the head
  (:meth:`WorldFaces.set_side_light`), so one half of the face is lit and the other in shade;
- :func:`view_metrics`: per view MSE (colour in [0, 1]), the dlib-feature perceptual distance,
  the identity similarity (cosine of dlib embeddings of the unaligned 32 px views — a
  like-for-like proxy, not a face-verification score), the depth error over the true face
  pixels, the normal error (:func:`normal_error`: the angle between the surface normals of the
  inverted and the true depth maps), and the paper's proxy (the view from the mirrored camera
  vs the flipped photo);
- :func:`collapse_index`: relative nose-to-cheek depth of the frontal view, inverted vs true
  (1 = the true relief, 0 = a flat face, the "collapsed geometry" of single-view inversion).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ...errors import InvalidInput
from ...geometry.eg3d import camera_params, normalized_intrinsics, split_camera_params
from .camera import camera_yaw_pitch, mirror_camera_params
from .warp import sample_at, unproject_depth

__all__ = [
    "EVAL_YAWS",
    "WorldFace",
    "WorldFaces",
    "collapse_index",
    "depth_normals",
    "identity_similarity",
    "normal_error",
    "view_metrics",
]

EVAL_YAWS = (-60.0, -45.0, -30.0, -15.0, 15.0, 30.0, 45.0, 60.0)
"""Absolute yaws (degrees) of the true novel views."""


@dataclass
class WorldFace:
    """One evaluation face (all images ``[-1, 1]`` at the GAN's resolution ``R``).

    ``photo (1, 3, R, R)``, ``camera (1, 25)``, ``face_mask (1, R, R)``; ``views``,
    ``view_depth``, ``view_mask``, ``view_cameras``: the true views at ``yaws`` (depth in EG3D
    units); ``frontal_landmarks (68, 2)`` in pixels of the yaw-0 view (its index
    ``yaws.index(0.0)``)."""

    index: int
    input_yaw: float
    asymmetric: bool
    photo: torch.Tensor
    camera: torch.Tensor
    face_mask: torch.Tensor
    yaws: list[float]
    views: torch.Tensor
    view_depth: torch.Tensor
    view_mask: torch.Tensor
    view_cameras: torch.Tensor
    frontal_landmarks: torch.Tensor
    side_light: bool = False
    meta: dict = field(default_factory=dict)


class WorldFaces:
    """A world for the evaluation: the GAN's training world (ICT people at realism 0.5 on black,
    EG3D's field of view, fill 0.7) with pitch and roll 0, rendered at ``2 R`` px and
    area-averaged to ``R`` (as the GAN's training photos were)."""

    def __init__(self, resolution: int = 32, seed: int = 2026, realism: float = 0.5) -> None:
        from ...gan.triplane_data import ViewsConfig, world_config
        from ...world import WorldDataset

        self.res = int(resolution)
        self.seed = int(seed)
        self.vcfg = ViewsConfig(
            image_size=2 * self.res, realism=realism, pitch_range=(0.0, 0.0),
            roll_range=(0.0, 0.0),
        )  # fmt: skip
        self.ds = WorldDataset(world_config(self.vcfg), length=100000, seed=self.seed)
        self.r = self.ds.renderer
        self.distance = 4.2647 * self.r.face_width / self.vcfg.fill
        self._mark_uv = None

    def _cheek_uv(self) -> torch.Tensor:
        if self._mark_uv is None:
            from ...fit.albedo import vertex_uvs

            m = self.r.model
            lm = m.mean[m.landmarks].double()
            p = 0.5 * (lm[3] + lm[31])  # left cheek, between the jaw and the nose wing
            v = int((m.mean.double() - p).norm(dim=1).argmin())
            self._mark_uv = vertex_uvs(m)[v].double()
        return self._mark_uv

    def _paint_mark(self, batch) -> None:
        if batch.albedo is None:
            return
        S = batch.albedo.shape[-1]
        uv = self._cheek_uv()
        yy, xx = torch.meshgrid(
            (torch.arange(S, dtype=torch.float64) + 0.5) / S,
            (torch.arange(S, dtype=torch.float64) + 0.5) / S,
            indexing="ij",
        )
        d = ((xx - uv[0]) ** 2 + ((1 - yy) - uv[1]) ** 2).sqrt()
        disc = (d < 0.05).to(batch.albedo)
        batch.albedo = batch.albedo * (1 - 0.7 * disc)

    #: the side key light's direction ``h`` (towards the light) in the frame that the head's
    #: rotation ``params.rotation`` maps into each camera: from one side of the face, a little
    #: above and in front (measured: the lit half is 1.4-2.3x as bright as the other from -30 to
    #: +30 degrees of yaw)
    SIDE_LIGHT = (-0.85, -0.2, -0.45)
    #: the side light's colour is the scene's key colour times this (the world's environment
    #: light is bright enough at realism 0.5 to wash out a key light of its own strength)
    SIDE_LIGHT_GAIN = 3.0

    def set_side_light(self, batch) -> None:
        """Replace ``batch``'s key light by :attr:`SIDE_LIGHT` (model frame), the same for every
        view of the head: in view ``k`` it is ``R_k h`` with ``R_k`` the head's rotation, its
        colour the scene's key colour times :attr:`SIDE_LIGHT_GAIN`, and the SH light is the
        environment plus the new key light's SH."""
        from ...geometry.rotation import axis_angle_to_matrix
        from ...render.shading import sh_basis
        from ...world.lighting import sh_of_key

        p = batch.params
        h = torch.tensor(self.SIDE_LIGHT, dtype=torch.float64)
        h = h / h.norm()
        R = axis_angle_to_matrix(p.rotation.double().cpu())
        key_dir = (R @ h).to(batch.key_dir)
        batch.key_dir = key_dir
        batch.key_color = batch.key_color * self.SIDE_LIGHT_GAIN
        key_sh = sh_of_key(key_dir.double().cpu(), batch.key_color.double().cpu(), sh_basis)
        p.light = (batch.env_sh.double().cpu() + key_sh).to(p.light)

    def render(
        self, index: int, yaws: list[float], asymmetric: bool = False, side_light: bool = False
    ) -> dict:
        """The person ``index`` at ``yaws`` (degrees): images ``(V, 3, R, R)`` in [-1, 1],
        depth ``(V, R, R)`` (EG3D units, 0 off the face), masks ``(V, R, R)`` (head, face),
        cameras ``(V, 25)``, landmarks ``(V, 68, 2)`` (R pixels)."""
        from ...gan.triplane_data import world_to_eg3d

        batch = self.r.sample_views(index, self.seed, len(yaws), yaws=[float(y) for y in yaws])
        if asymmetric:
            self._paint_mark(batch)
        if side_light:
            self.set_side_light(batch)
        out = self.r.render(batch)
        c2w, s = world_to_eg3d(
            out["cam2world"].double(), self.r.face_center.double(), self.distance
        )
        V = len(yaws)
        img = F.adaptive_avg_pool2d(out["image"].float(), self.res) * 2 - 1
        m = out["mask"].float()[:, None]
        mp = F.adaptive_avg_pool2d(m, self.res)
        dp = F.adaptive_avg_pool2d(out["depth"].float()[:, None] * s * m, self.res)
        depth = torch.where(mp > 0.5, dp / mp.clamp(min=1e-6), torch.zeros_like(dp))[:, 0]
        face = F.adaptive_avg_pool2d(out["mask_face"].float()[:, None], self.res)[:, 0] > 0.5
        cams = camera_params(c2w.float(), normalized_intrinsics(batch=V))
        return {
            "image": img,
            "depth": depth,
            "mask": mp[:, 0] > 0.5,
            "face": face,
            "cameras": cams,
            "landmarks": out["landmarks2d"].float() * (self.res / (2 * self.res)),
        }

    def face(
        self, index: int, input_yaw: float, asymmetric: bool = False,
        eval_yaws: tuple[float, ...] = EVAL_YAWS, side_light: bool = False,
    ) -> WorldFace:  # fmt: skip
        """One :class:`WorldFace`: the photo at ``input_yaw``, true views at ``eval_yaws`` and 0."""
        yaws = [float(input_yaw)] + [float(y) for y in eval_yaws] + [0.0]
        v = self.render(index, yaws, asymmetric, side_light)
        return WorldFace(
            index=index,
            input_yaw=float(input_yaw),
            asymmetric=asymmetric,
            photo=v["image"][:1],
            camera=v["cameras"][:1],
            face_mask=v["face"][:1],
            yaws=yaws[1:],
            views=v["image"][1:],
            view_depth=v["depth"][1:],
            view_mask=v["mask"][1:],
            view_cameras=v["cameras"][1:],
            frontal_landmarks=v["landmarks"][-1],
            side_light=side_light,
        )

    def oracle(self, face: WorldFace):
        """The ground-truth depth oracle for :func:`~facelab.methods.spi.invert.pivotal_tuning`:
        cameras -> the true depth and head mask from those yaws, and the exact cameras."""

        def f(cameras: torch.Tensor):
            yaw, _ = camera_yaw_pitch(cameras)
            v = self.render(face.index, torch.rad2deg(yaw).tolist(), face.asymmetric,
                            face.side_light)  # fmt: skip
            return v["depth"], v["mask"], v["cameras"]

        return f


def identity_similarity(a: torch.Tensor, b: torch.Tensor, net) -> torch.Tensor:
    """Cosine similarity ``(B,)`` of dlib ResNet embeddings of ``a`` and ``b`` (``[-1, 1]``,
    resized to 150 px, unaligned)."""

    def emb(x):
        x = F.interpolate(
            (x.float().clamp(-1, 1) + 1) / 2, size=150, mode="bilinear", align_corners=False
        )
        return net.features(net.preprocess(x))["embedding"]

    return F.cosine_similarity(emb(a), emb(b), dim=1)


@torch.no_grad()
def view_metrics(
    render: dict[str, torch.Tensor], face: WorldFace, distance=None, net=None
) -> dict[str, torch.Tensor]:
    """Per-view metrics ``(V,)`` of the inverted face's ``render`` (from ``face.view_cameras``)
    against the true views: ``mse`` (colour in [0, 1]), ``perceptual`` (dlib features),
    ``identity`` (cosine), ``depth`` (mean |error| over true head pixels, EG3D units),
    ``normal`` (mean angle in degrees between the depth maps' normals, :func:`normal_error`)."""
    img = render["image"].clamp(-1, 1)
    out = {"mse": ((img - face.views) / 2).square().flatten(1).mean(1)}
    if distance is not None:
        out["perceptual"] = distance(img, face.views)
    if net is not None:
        out["identity"] = identity_similarity(img, face.views, net)
    m = face.view_mask.float()
    out["depth"] = ((render["depth"] - face.view_depth).abs() * m).flatten(1).sum(1) / m.flatten(
        1
    ).sum(1).clamp(min=1)
    out["normal"] = normal_error(
        render["depth"], face.view_depth, face.view_cameras, face.view_mask
    )
    return out


def depth_normals(depth: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    r"""World-space unit normals ``(B, H, W, 3)`` of the surface seen in ``depth (B, H, W)``
    (camera z) by EG3D cameras ``camera (B, 25)``, facing the camera.

    With :math:`X(u, v)` the unprojected pixels (:func:`~facelab.methods.spi.unproject_depth`),
    :math:`n \propto (X_{u+1} - X_{u-1}) \times (X_{v+1} - X_{v-1})` (central differences),
    its sign chosen so that :math:`n \cdot (o - X) > 0` with :math:`o` the camera centre. The
    one-pixel border has no central difference: its normals are 0.
    """
    X = unproject_depth(depth, camera)
    du = X[:, 1:-1, 2:] - X[:, 1:-1, :-2]
    dv = X[:, 2:, 1:-1] - X[:, :-2, 1:-1]
    n = torch.linalg.cross(du, dv, dim=-1)
    c2w, _ = split_camera_params(camera.to(depth.dtype))
    to_cam = c2w[:, None, None, :3, 3] - X[:, 1:-1, 1:-1]
    n = torch.where((n * to_cam).sum(-1, keepdim=True) < 0, -n, n)
    n = F.normalize(n, dim=-1)
    return F.pad(n.permute(0, 3, 1, 2), (1, 1, 1, 1)).permute(0, 2, 3, 1)


def normal_error(
    pred_depth: torch.Tensor,
    true_depth: torch.Tensor,
    camera: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean angle in degrees ``(B,)`` between the normals (:func:`depth_normals`) of
    ``pred_depth`` and ``true_depth`` (both ``(B, H, W)`` camera z from ``camera``), over the
    pixels of ``mask (B, H, W)`` whose four neighbours are in it too (so no difference straddles
    the silhouette; all interior pixels when ``mask`` is None). NaN for a view with none."""
    if pred_depth.shape != true_depth.shape or pred_depth.dim() != 3:
        raise InvalidInput(
            f"depth maps must both be (B, H, W), got {tuple(pred_depth.shape)} and "
            f"{tuple(true_depth.shape)}"
        )
    true_depth = true_depth.to(pred_depth)
    n_p, n_t = depth_normals(pred_depth, camera), depth_normals(true_depth, camera)
    m = torch.ones_like(pred_depth, dtype=torch.bool) if mask is None else mask.bool()
    inner = torch.zeros_like(m)
    inner[:, 1:-1, 1:-1] = (m[:, 1:-1, 1:-1] & m[:, 1:-1, 2:] & m[:, 1:-1, :-2]
                            & m[:, 2:, 1:-1] & m[:, :-2, 1:-1])  # fmt: skip
    cos = (n_p * n_t).sum(-1).clamp(-1.0, 1.0)
    ang = torch.rad2deg(torch.arccos(cos))
    w = inner.to(ang.dtype)
    return (ang * w).flatten(1).sum(1) / w.flatten(1).sum(1)


def _depth_at(depth: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    return sample_at(depth[None, None], uv.reshape(1, 1, -1, 2))[0, 0, 0]


def collapse_index(
    pred_depth: torch.Tensor, true_depth: torch.Tensor, landmarks: torch.Tensor
) -> float:
    """``relief_pred / relief_true`` of the frontal view, ``relief = mean depth of two cheek
    points - depth of the nose tip`` (landmark 30; cheeks halfway between jaw landmarks 3 / 13
    and nose wings 31 / 35). Depth maps ``(R, R)``, landmarks ``(68, 2)`` in their pixels."""
    lm = landmarks.to(pred_depth.dtype)
    pts = torch.stack([lm[30], 0.5 * (lm[3] + lm[31]), 0.5 * (lm[13] + lm[35])])
    p, t = _depth_at(pred_depth, pts), _depth_at(true_depth.to(pred_depth.dtype), pts)
    rel_p = 0.5 * (p[1] + p[2]) - p[0]
    rel_t = 0.5 * (t[1] + t[2]) - t[0]
    return float(rel_p / rel_t.clamp(min=1e-6))


@torch.no_grad()
def proxy_mirror_mse(result, face: WorldFace) -> float:
    """The paper's proxy: the view from the mirrored camera against the flipped photo (MSE,
    colour in [0, 1])."""
    out = result.render(mirror_camera_params(face.camera))
    return float(((out["image"].clamp(-1, 1) - face.photo.flip(-1)) / 2).square().mean())


def floor_result(G, camera: torch.Tensor, config=None):
    """The floor: the mean-latent face (no inversion), as an :class:`SPIResult`."""
    from .invert import SPIConfig, SPIResult, mean_latent

    cfg = config or SPIConfig()
    w_avg, _ = mean_latent(G, cfg.w_avg_samples, cfg.seed)
    ws = w_avg[:, None].expand(-1, G.num_ws, -1).clone()
    return SPIResult(G, ws, camera, replace(cfg, w_steps=0, tune=False), {}, {"total": 0.0}, {})
