r"""The world's image model: a batch of sampled faces -> photos with exact ground truth.

For ``B`` samples at once (same model topology) the renderer rasterizes the posed mesh
(:func:`facelab.render.rasterize`), interpolates normals, positions, UVs, ambient occlusion and
key-light visibility to the covered pixels, and shades

.. math::

    I = \rho\, \big[ S(n; L) + \Delta_{ao} + \Delta_{key} \big]_{\text{sss}} + k_{spec}\, P

where ``S(n; L)`` is the fitter's Lambert-SH shading with the ground-truth SH ``L`` (environment
+ order-2 fit of the key light, :mod:`facelab.world.lighting`), and the effects, each scaled by
its resolved sub-knob (:class:`~facelab.world.config.Knobs`), are

- ``Delta_ao = k_ao (AO - 1) S(n; L_env)`` — ambient occlusion darkens the environment;
- ``Delta_key = k_key (E_key - S(n; L_key))`` with ``k_key = min(1, max(k_shadows,
  k_subsurface))`` — the key light rendered exactly instead of its SH fit,
  ``E_key = c [(1 - k_ss) max(0, <n,l>) + k_ss wrap(<n,l>)] (1 - k_sh (1 - vis))``, ``vis``
  from a shadow map (:mod:`facelab.world.occlusion`);
- ``[.]_sss`` — the irradiance blurred in screen space per channel (red widest), mixed in with
  weight ``k_ss`` (:func:`facelab.world.effects.masked_blur`);
- ``P`` — Blinn-Phong highlights of the key light (strength and roughness from a UV
  roughness map) plus a Fresnel-weighted environment reflection.

Then eye and mouth interiors are painted where the model has no eyeball/teeth geometry
(``eyes_teeth``), the background is composited, and the sensor adds blur, noise and JPEG
(:mod:`facelab.world.sensor`). When the shading knobs (specular, subsurface, ambient
occlusion, shadows; eyes/teeth for models with that geometry) are 0 the face's pixels come
verbatim from :class:`facelab.render.Renderer` (:meth:`WorldRenderer.lambert_render`): with
every knob at 0 the image is bit-for-bit the fitter's ``rho * sh_shading(n, L)`` over black,
clamped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..geometry.camera import intrinsics, pose_cam2world, project
from ..geometry.mesh import vertex_normals
from ..geometry.rotation import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_yaw_pitch_roll,
    yaw_pitch_roll_to_matrix,
)
from ..models.params import FaceParams
from ..render import interpolate_packed
from ..render.shading import normalized_blinn_phong, sh_basis, sh_shading, sh_shading_packed
from ..render.texture import sample_points
from .background import PatchBank, fbm, sample_background
from .config import WorldConfig
from .effects import (
    WRAP_RGB,
    masked_blur,
    polygon_inside,
    reflect,
    schlick_fresnel,
    shininess_from_roughness,
    wrap_diffuse,
)
from .lighting import sh_of_environment, sh_of_key
from .occlusion import ambient_occlusion, directional_visibility
from .scene import SceneSample, sample_scene
from .seeding import generator_for
from .sensor import apply_blur, apply_noise, jpeg_roundtrip

PARTS = {"eyeballs": 1, "teeth": 2, "gums_tongue": 3, "mouth_socket": 4, "eye_sockets": 5}
"""Model regions with their own procedural albedo (where the model has the geometry)."""
PART_COLORS = {
    2: (0.86, 0.82, 0.72),  # teeth
    3: (0.62, 0.22, 0.22),  # gums and tongue
    4: (0.28, 0.07, 0.06),  # mouth socket
    5: (0.45, 0.22, 0.2),  # eye sockets (inner lids)
}
PART_SPECULAR = {1: (5.0, 0.12), 2: (2.0, 0.3)}
"""Per part: (specular strength multiplier, roughness) — wet eyes, enamel."""
IRIS_COLORS = ((0.25, 0.13, 0.06), (0.12, 0.07, 0.04), (0.22, 0.32, 0.45), (0.24, 0.30, 0.18))


@dataclass
class WorldBatch:
    """Everything that defines ``B`` samples before rendering (batch-first tensors).

    ``params`` holds the ground truth the fitter sees (``light`` = environment + key-light SH
    fit, ``focal`` in pixels). The rest is what the richer image model uses on top.
    """

    params: FaceParams
    env_sh: torch.Tensor  # (B, 9, 3)
    key_dir: torch.Tensor  # (B, 3)
    key_color: torch.Tensor  # (B, 3)
    albedo: torch.Tensor | None  # (B, 3, S, S) UV texture, or None -> model.albedo / grey
    roughness_map: torch.Tensor  # (B, 1, R, R) in [0, 1]
    specular: torch.Tensor  # (B,)
    roughness: torch.Tensor  # (B,)
    subsurface_radius: torch.Tensor  # (B,) fraction of the face width
    blur: torch.Tensor  # (B,)
    shot: torch.Tensor  # (B,)
    read: torch.Tensor  # (B,)
    jpeg_quality: list[int]
    iris: torch.Tensor  # (B, 3)
    background: torch.Tensor | None  # (B, 3, H, W)
    noise: torch.Tensor | None  # (B, 3, H, W) standard normal
    ypr: torch.Tensor  # (B, 3) degrees
    fov: torch.Tensor  # (B,)
    distance: torch.Tensor  # (B,)
    indices: list[int] = field(default_factory=list)
    seed: int = 0

    @property
    def batch_size(self) -> int:
        return self.params.batch_size


def _to(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if x is None else x.to(device)


def _stack_or_none(xs: list[torch.Tensor | None]) -> torch.Tensor | None:
    if any(x is None for x in xs):
        return None
    return torch.stack(xs)  # type: ignore[arg-type]


class WorldRenderer:
    """Samples and renders the world of a :class:`~facelab.world.config.WorldConfig`.

    ``WorldRenderer(config)(indices, seed)`` returns a dict of batched tensors (keys in
    ``facelab.world.SAMPLE_KEYS``). Sample ``i`` depends only on ``(seed, i)``.

    Args:
        config: the world.
        model: a :class:`~facelab.models.MorphableModel` (default ``load(config.model)``).
    """

    def __init__(self, config: WorldConfig, model=None) -> None:
        self.config = config
        self.knobs = config.knobs()
        if model is None:
            from ..models import load

            model = load(config.model)
        if "eye_extras" in model.regions and bool(model.regions["eye_extras"].any()):
            # ICT's lacrimal fluid / eye blend / occlusion / lashes are alpha-blended overlays
            # in the original renderer; opaque they would hide the eyes, so the world drops them.
            model = model.restrict(~model.regions["eye_extras"], name=f"{model.name}-world")
        self.model = model
        dt = model.dtype
        self.dtype = dt
        self.device = dev = model.device  # everything rendered follows the model
        faces = model.faces
        V = model.n_vertices
        face_region = model.regions.get("face", torch.ones(V, dtype=torch.bool, device=dev))
        skin_region = model.regions.get("skin", face_region)
        non_skin = torch.zeros(V, dtype=torch.bool, device=dev)
        for name in ("eyes", "eyeballs", "teeth", "mouth_interior", "gums", "eyelashes"):
            if name in model.regions:
                non_skin |= model.regions[name]
        self.face_faces = face_region[faces].all(1)
        self.skin_faces = (skin_region & ~non_skin)[faces].all(1) & self.face_faces
        self.has_eyeballs = "eyeballs" in model.regions and bool(model.regions["eyeballs"].any())
        part_v = torch.zeros(V, dtype=torch.long, device=dev)
        for name, k in PARTS.items():
            if name in model.regions:
                part_v[model.regions[name]] = k
        self.part_faces = part_v[faces].amax(1)  # (F,) 0 = skin/head
        self.has_parts = bool((self.part_faces > 0).any())
        if self.has_eyeballs:
            eye = torch.nonzero(model.regions["eyeballs"]).squeeze(1)
            self.eye_left = eye[model.mean[eye, 0] > 0]
            self.eye_right = eye[model.mean[eye, 0] <= 0]
        if model.landmarks is None or model.landmarks.numel() != 68:
            from ..errors import InvalidInput

            raise InvalidInput(f"model {model.name!r} needs 68 iBUG landmarks for the world")
        lm = model.mean[model.landmarks]
        self.face_center = (lm.amin(0) + lm.amax(0)) / 2
        self.face_center[2] = lm[:, 2].mean()
        self.face_width = float((lm[16] - lm[0]).norm()) * 1.15
        self.shadow_map_size = max(48, min(int(config.shadow_map_size), int(config.image_size)))
        self._ao: torch.Tensor | None = None
        self._albedo_gen = None
        self._bank = PatchBank()

    # ------------------------------------------------------------------ lazily built assets

    def ambient_occlusion(self) -> torch.Tensor:
        """Per-vertex AO ``(V,)`` of the mean shape (computed once, 32 shadow maps)."""
        if self._ao is None:
            mean = self.model.mean.to(torch.float64)
            self._ao = ambient_occlusion(mean, self.model.faces).to(self.dtype)
        return self._ao

    def _albedo_generator(self):
        if self._albedo_gen is None:
            from .albedo import make_albedo_generator

            self._albedo_gen = make_albedo_generator(self.model, self.config)
        return self._albedo_gen

    # ------------------------------------------------------------------ sampling

    def sample(self, indices: list[int], seed: int) -> WorldBatch:
        """Draw the parameters of samples ``indices`` of the world ``seed`` (each from its own
        per-index generators, so the batch composition does not matter)."""
        cfg, model = self.config, self.model
        H = W = cfg.image_size
        plist, scenes, albedos, rough, iris, bgs, noises = [], [], [], [], [], [], []
        gen = self._albedo_generator()
        for i in indices:
            gs = generator_for(seed, i, "scene")
            gn = generator_for(seed, i, "sensor")
            ga = generator_for(seed, i, "albedo")
            gb = generator_for(seed, i, "background")
            gh = generator_for(seed, i, "shade")
            p = model.sample(
                1, gs, truncation=cfg.truncation, expression_scale=cfg.expression_scale
            )
            sc = sample_scene(cfg, gs, gn, self.face_center.double().cpu(), self.face_width)
            plist.append(p)
            scenes.append(sc)
            albedos.append(gen.draw(ga) if gen is not None else None)
            rough.append(fbm(32, 32, gh, octaves=4))
            k = int(torch.randint(0, len(IRIS_COLORS), (1,), generator=gh))
            tint = 0.8 + 0.4 * torch.rand(3, generator=gh, dtype=torch.float64)
            iris.append(torch.tensor(IRIS_COLORS[k], dtype=torch.float64) * tint)
            bg, noise = self._background_and_noise(gb, gn, (H, W))
            bgs.append(bg)
            noises.append(noise)
        tex = gen.render(albedos) if gen is not None else None
        return self._assemble(plist, scenes, tex, rough, iris, bgs, noises, list(indices), seed)

    def _background_and_noise(
        self, gb: torch.Generator, gn: torch.Generator, size: tuple[int, int]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """One view's background picture (drawn from ``gb``) and sensor-noise field
        ``(3, H, W)`` (standard normal, drawn from ``gn``); each ``None`` when its knob is off."""
        kn = self.knobs
        bg = None
        if kn.background != "none" and kn.background_mix > 0:
            bg = sample_background(size, gb, kn.background, self._bank)
        noise = torch.randn(3, *size, generator=gn) if kn.noise > 0 else None
        return bg, noise

    def _assemble(
        self, plist, scenes: list[SceneSample], tex, rough, iris, bgs, noises, indices, seed
    ):
        dt, dev = self.dtype, self.device

        def st(name: str) -> torch.Tensor:
            vals = [getattr(s, name) for s in scenes]
            if isinstance(vals[0], torch.Tensor):
                return torch.stack(vals)
            return torch.tensor(vals, dtype=torch.float64)

        env = {k: st(k) for k in ("ambient", "sky_dir", "sky", "quad_dir", "quad")}
        env_sh = sh_of_environment(env, sh_basis)
        key_dir, key_color = st("key_dir"), st("key_color")
        key_sh = sh_of_key(key_dir, key_color, sh_basis)
        params = FaceParams.cat(plist)
        params.rotation = st("rotation").to(dev, dt)
        params.translation = st("translation").to(dev, dt)
        params.focal = st("focal").to(dev, dt)
        params.light = (env_sh + key_sh).to(dev, dt)
        return WorldBatch(
            params=params,
            env_sh=env_sh.to(dev, dt),
            key_dir=key_dir.to(dev, dt),
            key_color=key_color.to(dev, dt),
            albedo=None if tex is None else tex.to(dev),
            roughness_map=torch.stack(rough).to(dev, dt),
            specular=st("specular").to(dev, dt),
            roughness=st("roughness").to(dev, dt),
            subsurface_radius=st("subsurface_radius").to(dev, dt),
            blur=st("blur").to(dev, dt),
            shot=st("shot").to(dev, dt),
            read=st("read").to(dev, dt),
            jpeg_quality=[s.jpeg_quality for s in scenes],
            iris=torch.stack(iris).to(dev, dt),
            background=_to(_stack_or_none(bgs), dev),
            noise=_to(_stack_or_none(noises), dev),
            ypr=st("ypr").to(dev, dt),
            fov=st("fov").to(dev, dt),
            distance=st("distance").to(dev, dt),
            indices=indices,
            seed=seed,
        )

    def sample_views(
        self, index: int, seed: int, views: int, yaws: list[float] | None = None
    ) -> WorldBatch:
        """The same person, expression, albedo and (world-fixed) light seen by ``views`` cameras.

        View 0 is sample ``index`` exactly as :meth:`sample` draws it. The other cameras sit at
        the same distance with the same focal length; their yaws are ``yaws`` (degrees) or
        evenly spread over 85 % of ``yaw_range`` with +-5 deg jitter, pitch and roll drawn from
        the config's ranges (stream ``"views"``). Lights are fixed to the head: with camera
        rotations ``M_k = R_k diag(1,-1,-1)``, a light direction ``d`` of view 0 is
        ``R_k R_0^T d`` in view k, and the SH environment is rotated the same way
        (:func:`facelab.world.lighting.rotate_sh`).
        """
        from .lighting import rotate_sh
        from .scene import pose_translation
        from .seeding import index_seed

        if views < 1:
            from ..errors import InvalidInput

            raise InvalidInput(f"views must be >= 1, got {views}")
        cfg = self.config
        H = W = cfg.image_size
        base = self.sample([index], seed)
        gv = generator_for(seed, index, "views")
        lo, hi = cfg.yaw_range
        if yaws is None:
            spread = torch.linspace(0.85 * lo, 0.85 * hi, views, dtype=torch.float64)
            jit = (torch.rand(views, generator=gv, dtype=torch.float64) - 0.5) * 10.0
            yaw_list = (spread + jit).clamp(lo, hi).tolist()
        else:
            if len(yaws) != views:
                from ..errors import InvalidInput

                raise InvalidInput(f"got {len(yaws)} yaws for {views} views")
            yaw_list = [float(y) for y in yaws]
        plo, phi = cfg.pitch_range
        rlo, rhi = cfg.roll_range
        R0 = axis_angle_to_matrix(base.params.rotation[0].double().cpu())
        rots, trans, Rrel = [], [], []
        for k in range(views):
            if k == 0 and yaws is None:
                R = R0
            else:
                pitch = plo + (phi - plo) * float(torch.rand(1, generator=gv, dtype=torch.float64))
                roll = rlo + (rhi - rlo) * float(torch.rand(1, generator=gv, dtype=torch.float64))
                ypr = torch.tensor([yaw_list[k], pitch, roll], dtype=torch.float64)
                R = yaw_pitch_roll_to_matrix(ypr, degrees=True)
            target = torch.tensor([0.0, 0.0, float(base.distance[0])], dtype=torch.float64)
            if k == 0 and yaws is None:
                t = base.params.translation[0].double().cpu()
            else:
                t = pose_translation(R, self.face_center.double().cpu(), target)
            rots.append(matrix_to_axis_angle(R))
            trans.append(t)
            Rrel.append(R @ R0.T)
        Rrel_t = torch.stack(Rrel)  # (K, 3, 3)
        dt, dev = self.dtype, self.device
        env = rotate_sh(base.env_sh.double().cpu().expand(views, -1, -1), Rrel_t)
        key_dir = (Rrel_t @ base.key_dir[0].double().cpu()).reshape(views, 3)
        key_color = base.key_color.double().cpu().expand(views, -1)
        key_sh = sh_of_key(key_dir, key_color, sh_basis)
        P = base.params
        params = FaceParams(
            identity=P.identity.expand(views, -1).clone(),
            expression=P.expression.expand(views, -1).clone(),
            rotation=torch.stack(rots).to(dev, dt),
            translation=torch.stack(trans).to(dev, dt),
            albedo=None if P.albedo is None else P.albedo.expand(views, -1).clone(),
            light=(env + key_sh).to(dev, dt),
            focal=P.focal.expand(views).clone(),
        )
        vseed = index_seed(seed, index, "views")
        bgs, noises = [], []
        for k in range(views):
            if k == 0:
                bgs.append(None if base.background is None else base.background[0])
                noises.append(None if base.noise is None else base.noise[0])
                continue
            gb = generator_for(vseed, k, "background")
            gn = generator_for(vseed, k, "sensor")
            bg, noise = self._background_and_noise(gb, gn, (H, W))
            bgs.append(bg)
            noises.append(noise)

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.expand(views, *t.shape[1:]).clone()

        ypr = torch.stack(
            [matrix_to_yaw_pitch_roll(axis_angle_to_matrix(r), degrees=True) for r in rots]
        )
        return WorldBatch(
            params=params,
            env_sh=env.to(dev, dt),
            key_dir=key_dir.to(dev, dt),
            key_color=key_color.to(dev, dt),
            albedo=rep(base.albedo),
            roughness_map=rep(base.roughness_map),
            specular=rep(base.specular),
            roughness=rep(base.roughness),
            subsurface_radius=rep(base.subsurface_radius),
            blur=rep(base.blur),
            shot=rep(base.shot),
            read=rep(base.read),
            jpeg_quality=base.jpeg_quality * views,
            iris=rep(base.iris),
            background=_to(_stack_or_none(bgs), dev),
            noise=_to(_stack_or_none(noises), dev),
            ypr=ypr.to(dev, dt),
            fov=rep(base.fov),
            distance=rep(base.distance),
            indices=[index] * views,
            seed=seed,
        )

    def batch_from_params(
        self,
        params: FaceParams,
        seed: int = 0,
        albedo: torch.Tensor | None = None,
        key_dir: torch.Tensor | None = None,
        key_color: torch.Tensor | None = None,
    ) -> WorldBatch:
        """A :class:`WorldBatch` for explicit ``params`` (``light (B, 9, 3)`` and ``focal (B,)``
        required). The albedo texture, if not given, and every other random quantity
        (background, noise, roughness, ...) come from samples ``0..B-1`` of world ``seed``.
        ``params.light`` is taken as the whole SH light; an optional key light
        (``key_dir, key_color (B, 3)``) is *added* to it (its SH fit in ``light``, rendered
        exactly by the realistic model)."""
        from ..errors import InvalidInput

        if params.light is None or params.focal is None:
            raise InvalidInput("render_sample needs params.light (B, 9, 3) and params.focal (B,)")
        B = params.batch_size
        dt, dev = self.dtype, self.device
        base = self.sample(list(range(B)), seed)
        p = params.to(device=dev, dtype=dt).detach().clone()
        env = p.light.clone()
        if key_dir is None:
            kd = torch.tensor([0.0, 0.0, -1.0], dtype=dt, device=dev).expand(B, 3).clone()
            kc = torch.zeros(B, 3, dtype=dt, device=dev)
        else:
            kd = F.normalize(key_dir.to(dev, dt), dim=-1)
            kc = (
                key_color.to(dev, dt)
                if key_color is not None
                else torch.ones(B, 3, dtype=dt, device=dev)
            )
            key_sh = sh_of_key(kd.double().cpu(), kc.double().cpu(), sh_basis)
            p.light = env + key_sh.to(dev, dt)
        base.params = p
        base.env_sh = env
        base.key_dir = kd
        base.key_color = kc
        if albedo is not None:
            base.albedo = albedo.to(dev, dt)
        R = axis_angle_to_matrix(p.rotation)
        base.ypr = matrix_to_yaw_pitch_roll(R, degrees=True)
        lm = self.model.landmark_points(self.model.posed_vertices(p))
        base.distance = lm[..., 2].mean(1)
        return base

    # ------------------------------------------------------------------ rendering

    def __call__(self, indices: list[int], seed: int) -> dict[str, torch.Tensor]:
        return self.render(self.sample(indices, seed))

    def render(self, batch: WorldBatch, knobs=None) -> dict[str, torch.Tensor]:
        """Render a :class:`WorldBatch`; returns batched ground truth (see
        ``facelab.world.SAMPLE_KEYS``). ``knobs`` overrides the config's."""
        kn = knobs or self.knobs
        model = self.model
        P = batch.params
        B = P.batch_size
        H = W = self.config.image_size
        with torch.no_grad():
            K = intrinsics(P.focal, P.focal, W / 2.0, H / 2.0)
            if self._lambert_shading(kn):
                lam = self.lambert_render(batch, K)  # the fitter's image model, verbatim
                frags, verts = lam.fragments, lam.verts_camera
                n = lam.normals.permute(0, 2, 3, 1).reshape(-1, 3)[frags.pix]  # (Np, 3)
                img = lam.image.permute(0, 2, 3, 1).contiguous()
            else:
                # The one render path: Renderer's geometry pass (pose, projection, rasterizer,
                # interpolated normals; unlit), then the world's shading on its fragments.
                from ..render.renderer import Renderer

                mverts = model.vertices(P)
                geo = Renderer(image_size=(H, W)).render(
                    mverts, model.faces, K=K, rotation=P.rotation, translation=P.translation
                )
                frags, verts = geo.fragments, geo.verts_camera
                vn = vertex_normals(verts, model.faces)
                n = geo.normals.permute(0, 2, 3, 1).reshape(-1, 3)[frags.pix]  # (Np, 3)
                bidx = frags.batch_index
                x = interpolate_packed(verts, frags)  # (Np, 3)
                rho, uv = self._albedo_at(batch, frags)  # (Np, 3), (Np, 2) | None
                part = None
                if kn.eyes_teeth and self.has_parts:
                    rho, part = self._part_albedo(batch, frags, mverts, rho)
                shade = sh_shading_packed(n, P.light, bidx)  # (Np, 3)
                color = self._effects(batch, kn, frags, verts, vn, n, x, uv, rho, shade, bidx, part)
                img = color.new_zeros(B * H * W, 3)
                img[frags.pix] = color
                img = img.view(B, H, W, 3)
            mask = frags.mask
            face_mask = mask & self.face_faces[frags.pix_to_face.clamp_min(0)]
            skin_mask = mask & self.skin_faces[frags.pix_to_face.clamp_min(0)]
            depth = torch.where(mask, frags.zbuf, torch.zeros_like(frags.zbuf))
            normals = n.new_zeros(B * H * W, 3)
            normals[frags.pix] = n
            normals = normals.view(B, H, W, 3)
            lm3 = verts[:, model.landmarks]  # (B, 68, 3)
            lm2 = project(lm3, K)
            if kn.eyes_teeth and not self.has_eyeballs:
                img, face_mask, skin_mask, mask, depth, normals = self._paint_eyes_mouth(
                    batch, img, mask, face_mask, skin_mask, depth, normals, lm2, lm3
                )
            img = img.permute(0, 3, 1, 2)  # (B, 3, H, W)
            if batch.background is not None and kn.background_mix > 0:
                bg = batch.background.to(img) * min(1.0, kn.background_mix)
                img = torch.where(mask[:, None], img, bg)
            img = self._sensor(batch, kn, img)
            visible = self._landmark_visibility(lm2, lm3, depth, mask)
        out = {
            "image": img.clamp(0, 1),
            "mask": mask,
            "mask_face": face_mask,
            "mask_skin": skin_mask,
            "depth": depth,
            "normals": normals,
            "vertices": verts,
            "landmarks2d": lm2,
            "landmarks3d": lm3,
            "landmarks_visible": visible,
            "K": K,
            "cam2world": pose_cam2world(P.rotation, P.translation),
            "identity": P.identity,
            "expression": P.expression,
            "rotation": P.rotation,
            "translation": P.translation,
            "light": P.light,
            "focal": P.focal,
            "env_light": batch.env_sh,
            "key_dir": batch.key_dir,
            "key_color": batch.key_color,
            "ypr": batch.ypr,
            "index": torch.tensor(batch.indices, dtype=torch.long, device=verts.device),
        }
        if P.albedo is not None:
            out["albedo"] = P.albedo
        return out

    def _lambert_shading(self, kn) -> bool:
        """True when no shading effect is on: the face's pixels are then exactly the Lambert
        renderer's (image-space effects — painted eyes, background, sensor — still apply)."""
        return (
            kn.specular == 0
            and kn.subsurface == 0
            and kn.ambient_occlusion == 0
            and kn.shadows == 0
            and not (kn.eyes_teeth and self.has_parts)
        )

    def _albedo_inputs(self, batch: WorldBatch) -> dict:
        """Albedo arguments of :meth:`facelab.render.Renderer.render`: the UV texture, else
        the model's per-vertex albedo, else a uniform grey 0.6."""
        if batch.albedo is not None and self.model.uvs is not None:
            return {
                "texture": batch.albedo.to(self.device, self.dtype),
                "uvs": self.model.uvs,
                "uv_faces": self.model.uv_faces,
            }
        if self.model.albedo_mean is not None:
            return {"vertex_colors": self.model.albedo(batch.params.albedo, batch.batch_size)}
        return {"vertex_colors": torch.full_like(self.model.mean, 0.6)}

    def lambert_render(self, batch: WorldBatch, K: torch.Tensor | None = None):
        """The plain Lambert-SH render of ``batch.params`` by :class:`facelab.render.Renderer`
        (defaults: hard rasterization, back faces culled, black background) — exactly what a
        fitter renders from the same parameters. Returns its ``RenderOutput``."""
        from ..render.renderer import Renderer

        P = batch.params
        H = W = self.config.image_size
        if K is None:
            K = intrinsics(P.focal, P.focal, W / 2.0, H / 2.0)
        r = Renderer(image_size=(H, W))
        return r.render(
            self.model.vertices(P),
            self.model.faces,
            K=K,
            rotation=P.rotation,
            translation=P.translation,
            sh=P.light,
            **self._albedo_inputs(batch),
        )

    def _albedo_at(self, batch: WorldBatch, frags) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Albedo ``(Np, 3)`` and UVs ``(Np, 2)`` (or None) at the covered pixels, sampled
        exactly as the Lambert renderer does (mipmapped texture lookup)."""
        from ..render import interpolate
        from ..render.texture import texture as sample_texture

        args = self._albedo_inputs(batch)
        if "texture" in args:
            uv_img = interpolate(args["uvs"], frags, faces=args["uv_faces"])
            alb = sample_texture(args["texture"], uv_img, mask=frags.mask)
            return alb.reshape(-1, 3)[frags.pix], uv_img.reshape(-1, 2)[frags.pix]
        vc = args["vertex_colors"]
        return interpolate_packed(vc if vc.dim() == 3 else vc[None], frags), None

    def _part_albedo(self, batch, frags, mverts, rho):
        """Procedural albedo of eyeballs (sclera, iris, pupil, limbal ring), teeth, gums,
        tongue and mouth socket where the model has that geometry: ``(rho', part (Np,))``.

        The eyeball pattern is a function of the angle ``theta`` between the model-space
        direction from the eyeball's centre and the gaze axis +z: iris for ``theta < 30 deg``,
        pupil for ``theta < 11 deg``, a darker limbal ring at the iris border.
        """
        dt = rho.dtype
        part = self.part_faces[frags.face]
        rho = rho.clone()
        for k, c in PART_COLORS.items():
            rho = torch.where((part == k)[:, None], rho.new_tensor(c), rho)
        eye = part == 1
        if self.has_eyeballs and bool(eye.any()):
            bidx = frags.batch_index[eye]
            p = interpolate_packed(mverts, frags)[eye]  # model space
            cl = mverts[:, self.eye_left].mean(1)[bidx]
            cr = mverts[:, self.eye_right].mean(1)[bidx]
            c = torch.where((p[:, 0] > 0)[:, None], cl, cr)
            cosang = F.normalize(p - c, dim=-1)[:, 2]
            theta = torch.acos(cosang.clamp(-1, 1)) * (180.0 / math.pi)
            sclera = rho.new_tensor([0.86, 0.81, 0.77])
            iris = batch.iris[bidx].to(dt) * (0.55 + 0.45 * (theta / 30.0).clamp(0, 1))[:, None]
            col = torch.where((theta < 30.0)[:, None], iris, sclera.expand_as(iris))
            col = torch.where(((theta > 27.0) & (theta < 31.0))[:, None], col * 0.45, col)
            col = torch.where((theta < 11.0)[:, None], torch.full_like(col, 0.02), col)
            rho[eye] = col
        return rho, part

    def _effects(
        self, batch, kn, frags, verts, vn, n, x, uv, rho, shade, bidx, part=None
    ) -> torch.Tensor:
        """The richer image model on packed pixels (formulas in the module docstring)."""
        B = batch.batch_size
        H = W = self.config.image_size
        k_ao = float(kn.ambient_occlusion)
        k_sh = min(1.0, float(kn.shadows))
        k_ss = min(1.0, float(kn.subsurface))
        k_key = min(1.0, max(k_sh, k_ss))
        k_spec = float(kn.specular)
        env_shade = sh_shading_packed(n, batch.env_sh, bidx)
        D = shade
        if k_ao > 0:
            ao = interpolate_packed(self.ambient_occlusion()[:, None], frags)[:, 0]
            D = D + k_ao * (ao - 1)[:, None] * env_shade
        vis = None
        ldir = batch.key_dir[bidx]
        kcol = batch.key_color[bidx]
        if k_key > 0:
            key_fit = sh_shading_packed(n, batch.params.light - batch.env_sh, bidx)  # S(n; L_key)
            cos = (n * ldir).sum(-1)
            e = (1 - k_ss) * cos.clamp_min(0)[:, None] + k_ss * wrap_diffuse(cos, 0.5)
            if k_sh > 0:
                vis_v = directional_visibility(
                    verts, self.model.faces, batch.key_dir, size=self.shadow_map_size, normals=vn
                )
                vis = interpolate_packed(vis_v[..., None], frags)[:, 0].clamp(0, 1)
                e = e * (1 - k_sh * (1 - vis))[:, None]
            D = D + k_key * (kcol * e - key_fit)
        D = D.clamp_min(0)
        if k_ss > 0:
            img = D.new_zeros(B * H * W, 3)
            img[frags.pix] = D
            img = img.view(B, H, W, 3).permute(0, 3, 1, 2)
            m = frags.mask[:, None]
            px_width = batch.params.focal * self.face_width / batch.distance  # (B,)
            sig = (batch.subsurface_radius * px_width)[:, None] * D.new_tensor(WRAP_RGB)[None]
            blurred = masked_blur(img, m, sig)
            img = img + k_ss * (blurred - img)
            D = img.permute(0, 2, 3, 1).reshape(-1, 3)[frags.pix]
        color = rho * D
        if k_spec > 0:
            v = F.normalize(-x, dim=-1)
            rmap = n.new_full((n.shape[0], 1), 0.5)
            if uv is not None:
                rmap = _sample_uv(batch.roughness_map, uv, bidx)
            rough = (batch.roughness[bidx] * (0.7 + 0.6 * rmap[:, 0])).clamp(0.15, 0.95)
            ks = batch.specular[bidx] * (1.4 - 0.8 * rmap[:, 0])
            if part is not None:
                for k, (mult, r) in PART_SPECULAR.items():
                    sel = part == k
                    ks = torch.where(sel, ks * mult, ks)
                    rough = torch.where(sel, torch.full_like(rough, r), rough)
            lobe = normalized_blinn_phong(n, ldir, v, shininess_from_roughness(rough))
            if vis is not None:
                lobe = lobe * (1 - k_sh * (1 - vis))
            spec = (ks * lobe)[:, None] * kcol
            fres = schlick_fresnel(n, v)
            env_refl = sh_shading_packed(reflect(n, v), batch.env_sh, bidx).clamp_min(0)
            spec = spec + (0.6 * fres * (1.4 - 0.8 * rmap[:, 0]))[:, None] * env_refl
            color = color + k_spec * spec
        return color

    def _paint_eyes_mouth(self, batch, img, mask, face_mask, skin_mask, depth, normals, lm2, lm3):
        """Eyes (sclera, iris, pupil, lid shadow, glint) and an open mouth's interior (dark
        cavity, upper teeth) painted in image space inside the landmark polygons, for models
        without eyeball/teeth geometry; only where no nearer surface (e.g. the nose) covers.
        Works on each polygon's bounding box. Buffers are modified in place (fresh tensors)."""
        B, H, W, _ = img.shape
        dt, dev = img.dtype, img.device
        amb = sh_shading(
            torch.tensor([[0.0, 0.0, -1.0]], dtype=dt, device=dev).expand(B, 3), batch.params.light
        ).clamp_min(0)  # (B, 3) shading of a camera-facing normal
        sclera = torch.tensor([0.78, 0.74, 0.70], dtype=dt, device=dev)
        cavity = torch.tensor([0.12, 0.035, 0.03], dtype=dt, device=dev)
        tooth = torch.tensor([0.82, 0.78, 0.70], dtype=dt, device=dev)
        toward = torch.tensor([0.0, 0.0, -1.0], dtype=dt, device=dev)
        tol = 0.12 * self.face_width
        parts = (("eye", slice(36, 42)), ("eye", slice(42, 48)), ("mouth", slice(60, 68)))
        for b in range(B):
            for kind, idx in parts:
                poly = lm2[b, idx]
                lo = poly.amin(0)
                hi = poly.amax(0)
                width = float(hi[0] - lo[0])
                height = float(hi[1] - lo[1])
                if width < 1.0 or (kind == "mouth" and height / width < 0.08):
                    continue
                j0, j1 = max(0, int(lo[0])), min(W, int(math.ceil(float(hi[0]))) + 1)
                i0, i1 = max(0, int(lo[1])), min(H, int(math.ceil(float(hi[1]))) + 1)
                if j1 <= j0 or i1 <= i0:
                    continue
                gy, gx = torch.meshgrid(
                    torch.arange(i0, i1, dtype=dt, device=dev) + 0.5,
                    torch.arange(j0, j1, dtype=dt, device=dev) + 0.5,
                    indexing="ij",
                )
                pts = torch.stack([gx, gy], -1)  # (h, w, 2)
                inside = polygon_inside(pts.reshape(1, -1, 2), poly[None])[0].view(gx.shape)
                z = float(lm3[b, idx, 2].mean())
                m = mask[b, i0:i1, j0:j1]
                d = depth[b, i0:i1, j0:j1]
                sel = inside & (~m | (d > z - tol))
                if not bool(sel.any()):
                    continue
                rel = (pts - poly.mean(0)) / width  # in polygon widths
                r = rel.norm(dim=-1)
                t_top = ((pts[..., 1] - lo[1]) / max(height, 1e-6)).clamp(0, 1)
                if kind == "eye":
                    iris_w = (r < 0.22).to(dt)[..., None]
                    ring = (0.7 + 0.3 * (r / 0.22).clamp(0, 1))[..., None]
                    col = sclera * (1 - iris_w) + iris_w * batch.iris[b] * ring
                    pupil = (r < 0.09).to(dt)[..., None]
                    col = col * (1 - pupil) + pupil * 0.02
                    lid = (0.45 + 0.55 * t_top.clamp(0, 0.6) / 0.6)[..., None]
                    col = col * lid * amb[b]
                    glint = ((rel - rel.new_tensor([0.07, -0.07])).norm(dim=-1) < 0.05).to(dt)
                    col = col * (1 - glint[..., None]) + glint[..., None] * 0.95
                else:
                    teeth = ((t_top < 0.35) & (rel[..., 0].abs() < 0.38)).to(dt)[..., None]
                    col = (cavity * (1 - teeth) + teeth * tooth) * amb[b]
                img[b, i0:i1, j0:j1] = torch.where(sel[..., None], col, img[b, i0:i1, j0:j1])
                depth[b, i0:i1, j0:j1] = torch.where(
                    sel, d.new_tensor(z + 0.02 * self.face_width), d
                )
                normals[b, i0:i1, j0:j1] = torch.where(
                    sel[..., None], toward, normals[b, i0:i1, j0:j1]
                )
                face_mask[b, i0:i1, j0:j1] |= sel
                skin_mask[b, i0:i1, j0:j1] &= ~sel
                mask[b, i0:i1, j0:j1] |= sel
        return img, face_mask, skin_mask, mask, depth, normals

    def _sensor(self, batch: WorldBatch, kn, img: torch.Tensor) -> torch.Tensor:
        H = self.config.image_size
        if kn.blur > 0:
            img = apply_blur(img, kn.blur * batch.blur * 0.9 * H / 128.0)
        if kn.noise > 0 and batch.noise is not None:
            img = apply_noise(
                img, kn.noise * batch.shot, kn.noise * batch.read, batch.noise.to(img)
            )
        if kn.jpeg:
            img = torch.stack([jpeg_roundtrip(im, q) for im, q in zip(img, batch.jpeg_quality)])
        return img

    def _landmark_visibility(self, lm2, lm3, depth, mask) -> torch.Tensor:
        """``(B, 68)`` bool: inside the image and within a depth tolerance of the z-buffer at
        (a 3x3 neighbourhood of) its pixel — i.e. not hidden by the face itself."""
        B, H, W = depth.shape
        col = torch.floor(lm2[..., 0]).long()
        row = torch.floor(lm2[..., 1]).long()
        inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (lm3[..., 2] > 0)
        tol = 0.03 * self.face_width
        vis = torch.zeros_like(inside)
        flat = depth.reshape(B, -1)
        fmask = mask.reshape(B, -1)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                r = (row + di).clamp(0, H - 1)
                c = (col + dj).clamp(0, W - 1)
                d = flat.gather(1, r * W + c)
                m = fmask.gather(1, r * W + c)
                vis |= m & ((d - lm3[..., 2]).abs() < tol)
        return vis & inside


def _sample_uv(tex: torch.Tensor, uv: torch.Tensor, bidx: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``tex (B, C, S, S)`` at packed ``uv (Np, 2)`` (v up) of images
    ``bidx (Np,)``: ``(Np, C)``."""
    B, C, S, _ = tex.shape
    # Pad each image's pixels into one row of points per image: (B, Nmax, 2).
    counts = torch.bincount(bidx, minlength=B)
    nmax = int(counts.max()) if counts.numel() else 0
    if nmax == 0:
        return tex.new_zeros(0, C)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(bidx.numel(), device=bidx.device) - start[bidx]
    grid = tex.new_zeros(B, nmax, 2)
    grid[bidx, pos] = uv.to(tex.dtype)
    return sample_points(tex, grid)[bidx, pos]  # the one bilinear point lookup
