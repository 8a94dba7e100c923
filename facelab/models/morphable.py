"""``MorphableModel``: a linear 3D morphable face model (3DMM) held as plain tensors.

A 3DMM writes every face of a fixed topology (``V`` vertices, triangles ``faces``) as the mean
shape plus linear combinations of displacement fields (Blanz & Vetter 1999)::

    S(alpha, beta) = mean + sum_k alpha_k * identity_basis[k] + sum_j beta_j * expression_basis[j]

    mean            (V, 3)           model space: y up, +z out of the face, units ``model.units``
    identity_basis  (K_id, V, 3)     each component is the displacement at ONE standard deviation,
                                     so alpha ~ N(0, I) and the prior is ||alpha||^2
    identity_std    (K_id,)          the per-component std the source model reports (teaching PCA:
                                     basis[k] = std[k] * unit_pca_direction[k]); ones for ICT
    expression_basis (K_exp, V, 3)   ``expression_kind == "blendshapes"``: deltas (target - neutral),
                                     beta in [0, 1], names in ``expression_names``;
                                     ``"pca"``: like identity, beta ~ N(0, I)

The fast path flattens the bases to ``(K, 3V)`` matrices and evaluates the sum as two
``torch.addmm`` calls (a single GEMM each); the slow, readable twin is
``mean + torch.einsum("bk,kvc->bvc", alpha, identity_basis) + ...`` (used in the tests).

Besides the shape the model carries its topology and semantics: ``uvs (T, 2)`` and
``uv_faces (F, 3)`` (UV seams make ``T != V``), ``landmarks (68,) long`` iBUG-68 vertex indices,
``contour_candidates`` (jaw-contour vertex lists for pose-dependent contour landmarks),
boolean ``regions (V,)``, and a left/right ``symmetry (V,) long`` involution
(``symmetry[i]`` is the vertex mirroring ``i`` across the x = 0 plane). ``extras`` holds
model-specific arrays facelab does not use itself (e.g. FLAME's skinning weights, joint
regressor and pose correctives); they are saved but dropped by :meth:`MorphableModel.restrict`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput, ModelFormatError
from .params import FaceParams

FORMAT_VERSION = 1
_UNIT_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0, "um": 1e-3}


def mirror_symmetry(verts: np.ndarray, k: int = 8, center_x: float | None = 0.0) -> np.ndarray:
    """A left/right symmetry map ``(V,) int64`` of a mesh by nearest mirrored vertex.

    Vertex ``i`` is paired with the vertex nearest to its mirror image ``(2 c - x, y, z)``
    across the plane ``x = c`` (``c = center_x``; ``None`` uses the mean x of the vertices). Mutual
    nearest neighbours are accepted first; the remaining vertices are paired greedily by
    increasing distance among their ``k`` nearest mirrored candidates, so the result is
    always an **involution** (``sym[sym] == arange(V)``); a vertex left without a free partner
    maps to itself. Uses :class:`scipy.spatial.cKDTree`.
    """
    from scipy.spatial import cKDTree

    v = np.asarray(verts, dtype=np.float64)
    n = v.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    c = float(v[:, 0].mean()) if center_x is None else float(center_x)
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    mirrored[:, 0] += 2.0 * c
    tree = cKDTree(v)
    k = min(k, n)
    dist, idx = tree.query(mirrored, k=k)
    dist = dist.reshape(n, k)
    idx = idx.reshape(n, k)
    nn = idx[:, 0]
    sym = np.full(n, -1, dtype=np.int64)
    mutual = nn[nn] == np.arange(n)
    sym[mutual] = nn[mutual]
    todo = np.nonzero(sym < 0)[0]
    if todo.size:
        cand_i = np.repeat(todo, k)
        cand_j = idx[todo].reshape(-1)
        cand_d = dist[todo].reshape(-1)
        order = np.argsort(cand_d, kind="stable")
        for i, j in zip(cand_i[order].tolist(), cand_j[order].tolist()):
            if sym[i] >= 0 or sym[j] >= 0:
                continue
            sym[i] = j
            sym[j] = i
        left = sym < 0
        sym[left] = np.nonzero(left)[0]
    return sym


def _as_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    from ..geometry.rotation import axis_angle_to_matrix

    return axis_angle_to_matrix(w)


@dataclass(eq=False, kw_only=True)
class MorphableModel:
    """A linear 3DMM (see the module docstring for the formula and every field's shape).

    Construct it from arrays (numpy or torch); floating arrays are stored in ``dtype_``
    (default: the dtype of a floating ``mean`` tensor, else float32) and index arrays as
    ``long``. ``symmetry`` is computed by :func:`mirror_symmetry` when not given. Use
    ``.to(device, dtype)`` to move it; ``save``/``load`` for the ``.npz`` cache format.
    """

    mean: torch.Tensor
    faces: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor
    identity_std: torch.Tensor | None = None
    expression_kind: str = "blendshapes"
    expression_names: list[str] = field(default_factory=list)
    albedo_mean: torch.Tensor | None = None
    albedo_basis: torch.Tensor | None = None
    albedo_std: torch.Tensor | None = None
    uvs: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    contour_candidates: dict[str, torch.Tensor] = field(default_factory=dict)
    regions: dict[str, torch.Tensor] = field(default_factory=dict)
    symmetry: torch.Tensor | None = None
    name: str = "model"
    units: str = "mm"
    license: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    dtype_: torch.dtype | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        mean = self.mean
        fdt = self.dtype_ or (
            mean.dtype
            if isinstance(mean, torch.Tensor) and mean.is_floating_point()
            else torch.float32
        )
        if fdt not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            fdt = torch.float32
        self.dtype_ = None
        self.mean = _as_tensor(self.mean, fdt).contiguous()
        dev = self.mean.device
        V = self.mean.shape[0] if self.mean.dim() == 2 else -1
        if self.mean.dim() != 2 or self.mean.shape[1] != 3:
            raise ModelFormatError(f"mean must have shape (V, 3), got {tuple(self.mean.shape)}")

        def f(x):
            t = _as_tensor(x, fdt)
            return None if t is None else t.to(dev).contiguous()

        def li(x):
            t = _as_tensor(x, torch.long)
            return None if t is None else t.to(dev).contiguous()

        self.faces = li(self.faces)
        self.identity_basis = f(self.identity_basis)
        self.expression_basis = f(self.expression_basis)
        if self.identity_basis is None:
            self.identity_basis = torch.zeros(0, V, 3, dtype=fdt, device=dev)
        if self.expression_basis is None:
            self.expression_basis = torch.zeros(0, V, 3, dtype=fdt, device=dev)
        self.identity_std = f(self.identity_std)
        if self.identity_std is None:
            self.identity_std = torch.ones(self.identity_basis.shape[0], dtype=fdt, device=dev)
        self.albedo_mean = f(self.albedo_mean)
        self.albedo_basis = f(self.albedo_basis)
        self.albedo_std = f(self.albedo_std)
        if self.albedo_basis is not None and self.albedo_std is None:
            self.albedo_std = torch.ones(self.albedo_basis.shape[0], dtype=fdt, device=dev)
        self.uvs = f(self.uvs)
        self.uv_faces = li(self.uv_faces)
        self.landmarks = li(self.landmarks)
        self.contour_candidates = {k: li(v) for k, v in self.contour_candidates.items()}
        self.regions = {
            k: _as_tensor(v, torch.bool).to(dev).contiguous() for k, v in self.regions.items()
        }
        self.extras = {k: _as_tensor(v).to(dev) for k, v in self.extras.items()}
        self.expression_names = [str(n) for n in self.expression_names]
        self.meta = dict(self.meta)
        if self.symmetry is None:
            self.symmetry = torch.from_numpy(mirror_symmetry(self.mean.detach().cpu().numpy()))
        self.symmetry = li(self.symmetry)
        self.validate()

    # ---------------------------------------------------------------------------------------
    # properties

    @property
    def n_vertices(self) -> int:
        """``V``."""
        return int(self.mean.shape[0])

    @property
    def n_faces(self) -> int:
        """``F`` (triangles)."""
        return int(self.faces.shape[0])

    @property
    def n_identity(self) -> int:
        """``K_id``."""
        return int(self.identity_basis.shape[0])

    @property
    def n_expression(self) -> int:
        """``K_exp``."""
        return int(self.expression_basis.shape[0])

    @property
    def n_albedo(self) -> int:
        """Number of per-vertex albedo components (0 when the model has none)."""
        return 0 if self.albedo_basis is None else int(self.albedo_basis.shape[0])

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mean.dtype

    @property
    def mm_per_unit(self) -> float:
        """Millimetres per model unit (10 for ``"cm"``)."""
        if self.units not in _UNIT_MM:
            raise InvalidInput(f"unknown units {self.units!r}; known: {sorted(_UNIT_MM)}")
        return _UNIT_MM[self.units]

    def validate(self) -> MorphableModel:
        """Check every field's shape and index range; raise :class:`ModelFormatError`."""
        V = self.n_vertices

        def bad(msg: str) -> None:
            raise ModelFormatError(f"model {self.name!r}: {msg}")

        if self.faces.dim() != 2 or self.faces.shape[1] != 3:
            bad(f"faces must be (F, 3), got {tuple(self.faces.shape)}")
        if self.faces.numel() and (int(self.faces.min()) < 0 or int(self.faces.max()) >= V):
            bad(f"faces index outside [0, {V})")
        for nm in ("identity_basis", "expression_basis"):
            t = getattr(self, nm)
            if t.dim() != 3 or t.shape[1:] != (V, 3):
                bad(f"{nm} must be (K, {V}, 3), got {tuple(t.shape)}")
        if self.identity_std.shape != (self.n_identity,):
            bad(f"identity_std must be ({self.n_identity},), got {tuple(self.identity_std.shape)}")
        if self.expression_kind not in ("blendshapes", "pca"):
            bad(f"expression_kind must be 'blendshapes' or 'pca', got {self.expression_kind!r}")
        if self.expression_names and len(self.expression_names) != self.n_expression:
            bad(
                f"{len(self.expression_names)} expression_names for {self.n_expression} "
                "expression components"
            )
        if self.albedo_mean is not None and self.albedo_mean.shape != (V, 3):
            bad(f"albedo_mean must be ({V}, 3), got {tuple(self.albedo_mean.shape)}")
        if self.albedo_basis is not None and (
            self.albedo_basis.dim() != 3 or self.albedo_basis.shape[1:] != (V, 3)
        ):
            bad(f"albedo_basis must be (K_alb, {V}, 3), got {tuple(self.albedo_basis.shape)}")
        if (self.uvs is None) != (self.uv_faces is None):
            bad("uvs and uv_faces must be given together")
        if self.uvs is not None:
            if self.uvs.dim() != 2 or self.uvs.shape[1] != 2:
                bad(f"uvs must be (T, 2), got {tuple(self.uvs.shape)}")
            if self.uv_faces.shape != self.faces.shape:
                bad(
                    f"uv_faces {tuple(self.uv_faces.shape)} must match faces {tuple(self.faces.shape)}"
                )
            if self.uv_faces.numel() and (
                int(self.uv_faces.min()) < 0 or int(self.uv_faces.max()) >= self.uvs.shape[0]
            ):
                bad("uv_faces index outside the uvs")
        if self.landmarks is not None:
            if self.landmarks.dim() != 1:
                bad(f"landmarks must be (L,), got {tuple(self.landmarks.shape)}")
            if self.landmarks.numel() and (
                int(self.landmarks.min()) < 0 or int(self.landmarks.max()) >= V
            ):
                bad("landmark index outside the vertices")
        for k, c in self.contour_candidates.items():
            if c.dim() != 1 or (c.numel() and (int(c.min()) < 0 or int(c.max()) >= V)):
                bad(f"contour_candidates[{k!r}] must be a 1-D list of vertex indices")
        for k, r in self.regions.items():
            if r.shape != (V,):
                bad(f"regions[{k!r}] must be a ({V},) bool mask, got {tuple(r.shape)}")
        s = self.symmetry
        if s.shape != (V,) or (V and (int(s.min()) < 0 or int(s.max()) >= V)):
            bad(f"symmetry must be a ({V},) vertex map")
        return self

    # ---------------------------------------------------------------------------------------
    # devices

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MorphableModel:
        """A copy with tensors on ``device``; floating tensors cast to ``dtype``."""

        def mv(t):
            if t is None:
                return None
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        kw = self._fields()
        for k, v in list(kw.items()):
            if isinstance(v, torch.Tensor):
                kw[k] = mv(v)
            elif isinstance(v, dict) and k in ("contour_candidates", "regions", "extras"):
                kw[k] = {a: mv(b) for a, b in v.items()}
        return MorphableModel(**kw)

    def _fields(self) -> dict[str, Any]:
        names = [
            "mean", "faces", "identity_basis", "expression_basis", "identity_std",
            "expression_kind", "expression_names", "albedo_mean", "albedo_basis", "albedo_std",
            "uvs", "uv_faces", "landmarks", "contour_candidates", "regions", "symmetry", "name",
            "units", "license", "source", "meta", "extras",
        ]  # fmt: skip
        kw = {n: getattr(self, n) for n in names}
        kw["expression_names"] = list(self.expression_names)
        kw["contour_candidates"] = dict(self.contour_candidates)
        kw["regions"] = dict(self.regions)
        kw["meta"] = dict(self.meta)
        kw["extras"] = dict(self.extras)
        return kw

    # ---------------------------------------------------------------------------------------
    # evaluation

    def forward(
        self, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Vertices in model space ``(B, V, 3)``.

        ``S = mean + alpha @ B_id + beta @ B_exp`` with the bases flattened to ``(K, 3V)``.

        Args:
            identity: ``(B, k)`` with ``k <= K_id`` (a prefix of the components; ``None`` = 0).
            expression: ``(B, k)`` with ``k <= K_exp`` (``None`` = neutral).
        """
        if identity is None and expression is None:
            raise InvalidInput("forward needs identity and/or expression weights of shape (B, K)")
        ref = identity if identity is not None else expression
        if not isinstance(ref, torch.Tensor) or ref.dim() != 2:
            raise InvalidInput(
                f"weights must be (B, K) tensors, got {getattr(ref, 'shape', type(ref))}"
            )
        B = ref.shape[0]
        V3 = 3 * self.n_vertices
        out = self.mean.reshape(1, V3).to(ref.dtype).expand(B, V3)
        first = True
        for w, basis, nm in (
            (identity, self.identity_basis, "identity"),
            (expression, self.expression_basis, "expression"),
        ):
            if w is None:
                continue
            if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] != B:
                raise InvalidInput(
                    f"{nm} must be (B={B}, K) , got {tuple(getattr(w, 'shape', ()))}"
                )
            if w.device != basis.device:
                raise InvalidInput(
                    f"{nm} weights are on {w.device} but model {self.name!r} is on "
                    f"{basis.device}; call model.to(device)"
                )
            k = w.shape[1]
            if k > basis.shape[0]:
                raise InvalidInput(
                    f"{nm} has {k} weights but model {self.name!r} has {basis.shape[0]} "
                    f"{nm} components"
                )
            if k == 0:
                continue
            mat = basis[:k].reshape(k, V3)
            if mat.dtype != w.dtype:
                mat = mat.to(w.dtype)
            if first:
                out = torch.addmm(out, w, mat)
                first = False
            else:
                out.addmm_(w, mat)  # in place: no second (B, 3V) buffer
        if first:
            out = out.clone()
        return out.reshape(B, self.n_vertices, 3)

    __call__ = forward

    def vertices(self, params: FaceParams) -> torch.Tensor:
        """Model-space vertices ``(B, V, 3)`` of ``params`` (pose not applied)."""
        params.validate(self)
        return self.forward(params.identity, params.expression)

    def posed_vertices(self, params: FaceParams) -> torch.Tensor:
        """Camera-space vertices ``(B, V, 3)``: ``R(rotation) @ diag(1,-1,-1) @ x + translation``."""
        v = self.vertices(params)
        return pose_points(v, params.rotation, params.translation)

    def landmark_points(self, verts: torch.Tensor) -> torch.Tensor:
        """The landmark vertices ``(B, L, 3)`` of ``verts (B, V, 3)``."""
        if self.landmarks is None:
            raise InvalidInput(f"model {self.name!r} defines no landmarks")
        return verts[:, self.landmarks.to(verts.device)]

    def albedo(self, weights: torch.Tensor | None = None, batch: int = 1) -> torch.Tensor:
        """Per-vertex albedo ``(B, V, 3)`` = ``albedo_mean + weights @ albedo_basis``."""
        if self.albedo_mean is None:
            raise InvalidInput(
                f"model {self.name!r} has no per-vertex albedo; use facelab.models.albedo"
            )
        V3 = 3 * self.n_vertices
        if weights is None:
            return self.albedo_mean.reshape(1, -1, 3).expand(batch, -1, -1).clone()
        if weights.dim() != 2 or weights.shape[1] > self.n_albedo:
            raise InvalidInput(
                f"albedo weights must be (B, k) with k <= {self.n_albedo}, got "
                f"{tuple(weights.shape)}"
            )
        k = weights.shape[1]
        mat = self.albedo_basis[:k].reshape(k, V3).to(weights.dtype)
        out = torch.addmm(self.albedo_mean.reshape(1, V3).to(weights.dtype), weights, mat)
        return out.reshape(-1, self.n_vertices, 3)

    def sample(
        self,
        batch: int = 1,
        generator: torch.Generator | None = None,
        truncation: float = 1.0,
        expression_scale: float = 1.0,
        active_fraction: float = 0.15,
    ) -> FaceParams:
        """Random parameters: identity ``truncation * clamp(z, -3, 3)``, ``z ~ N(0, I)``.

        So ``|identity| <= 3 * truncation`` (``truncation = 0`` gives the mean face).
        Expressions: blendshapes are sparse -- each is active with probability
        ``active_fraction`` with weight ``clamp(expression_scale * U(0, 1), 0, 1)``; PCA
        expressions are ``expression_scale * clamp(z, -3, 3)``. Pose is zero (frontal, at the
        origin). The random draws are float64 on the generator's device, so a seed gives the
        same faces for every model dtype.
        """
        if batch < 1:
            raise InvalidInput(f"batch must be >= 1, got {batch}")
        if truncation < 0 or expression_scale < 0:
            raise InvalidInput("truncation and expression_scale must be >= 0")
        gdev = generator.device if generator is not None else torch.device("cpu")
        kw = {"generator": generator, "device": gdev, "dtype": torch.float64}
        z = torch.randn(batch, self.n_identity, **kw)
        identity = truncation * z.clamp(-3.0, 3.0)
        if self.expression_kind == "pca":
            expr = expression_scale * torch.randn(batch, self.n_expression, **kw).clamp(-3, 3)
        else:
            u = torch.rand(batch, self.n_expression, **kw)
            active = torch.rand(batch, self.n_expression, **kw) < active_fraction
            expr = (expression_scale * u * active).clamp(0.0, 1.0)
        params = FaceParams.zeros(self, batch, light=True)
        params.identity = identity.to(self.device, self.dtype)
        params.expression = expr.to(self.device, self.dtype)
        return params

    # ---------------------------------------------------------------------------------------
    # sub-models

    def region_mask(self, region: str | torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(V,)`` bool mask from a region name, a bool mask, or vertex indices."""
        if isinstance(region, str):
            if region not in self.regions:
                raise InvalidInput(
                    f"model {self.name!r} has no region {region!r}; regions: {sorted(self.regions)}"
                )
            return self.regions[region]
        t = _as_tensor(region).to(self.device)
        if t.dtype == torch.bool:
            if t.shape != (self.n_vertices,):
                raise InvalidInput(f"mask must be ({self.n_vertices},), got {tuple(t.shape)}")
            return t
        mask = torch.zeros(self.n_vertices, dtype=torch.bool, device=self.device)
        mask[t.long()] = True
        return mask

    def restrict(
        self, region: str | torch.Tensor | np.ndarray, name: str | None = None
    ) -> MorphableModel:
        """The sub-model on the vertices of ``region`` (name, bool mask ``(V,)`` or indices).

        Vertices keep their order. Triangles with all three corners inside are kept; ``uvs``
        are compacted to those still referenced; landmarks, contours, regions and the symmetry
        map are re-indexed. A landmark outside the region raises :class:`InvalidInput`
        (restrict to a region containing all landmarks, or drop them first with
        ``dataclasses.replace(model, landmarks=None)``). A mirror partner outside the region
        is recomputed by :func:`mirror_symmetry` on the sub-mesh.
        """
        mask = self.region_mask(region).to(self.device)
        keep = torch.nonzero(mask).squeeze(1)
        if keep.numel() == 0:
            raise InvalidInput("restrict: the region is empty")
        remap = torch.full((self.n_vertices,), -1, dtype=torch.long, device=self.device)
        remap[keep] = torch.arange(keep.numel(), device=self.device)
        fmask = mask[self.faces].all(dim=1)
        faces = remap[self.faces[fmask]]
        uvs = uv_faces = None
        if self.uvs is not None:
            uvf = self.uv_faces[fmask]
            used = torch.unique(uvf)
            uvmap = torch.full((self.uvs.shape[0],), -1, dtype=torch.long, device=self.device)
            uvmap[used] = torch.arange(used.numel(), device=self.device)
            uvs, uv_faces = self.uvs[used], uvmap[uvf]
        landmarks = None
        if self.landmarks is not None:
            landmarks = remap[self.landmarks]
            if bool((landmarks < 0).any()):
                out = torch.nonzero(landmarks < 0).squeeze(1).tolist()
                raise InvalidInput(
                    f"restrict: landmarks {out} of model {self.name!r} fall outside the region; "
                    "choose a region that contains them"
                )
        contours = {}
        for k, c in self.contour_candidates.items():
            cc = remap[c]
            cc = cc[cc >= 0]
            if cc.numel():
                contours[k] = cc
        regions = {k: r[keep] for k, r in self.regions.items() if bool(r[keep].any())}
        sym = remap[self.symmetry[keep]]
        if bool((sym < 0).any()):
            sym = torch.from_numpy(mirror_symmetry(self.mean[keep].detach().cpu().numpy()))
        kw = self._fields()
        kw.update(
            mean=self.mean[keep],
            faces=faces,
            identity_basis=self.identity_basis[:, keep],
            expression_basis=self.expression_basis[:, keep],
            albedo_mean=None if self.albedo_mean is None else self.albedo_mean[keep],
            albedo_basis=None if self.albedo_basis is None else self.albedo_basis[:, keep],
            uvs=uvs,
            uv_faces=uv_faces,
            landmarks=landmarks,
            contour_candidates=contours,
            regions=regions,
            symmetry=sym,
            name=name or f"{self.name}[{region if isinstance(region, str) else 'subset'}]",
        )
        kw["meta"] = {**self.meta, "parent": self.name, "parent_vertices": self.n_vertices}
        kw["extras"] = {}  # model-specific arrays (e.g. FLAME skinning) do not survive restrict
        sub = MorphableModel(**kw)
        sub._parent_indices = keep  # (V_sub,) long: vertex i of the sub-model is keep[i]
        return sub

    def subset(
        self,
        n_identity: int | None = None,
        expressions: int | list[str] | None = None,
    ) -> MorphableModel:
        """A model with fewer components (same vertices): the first ``n_identity`` identity
        components, and the first ``expressions`` expression components or the named ones
        (in the given order), e.g. ``ict.subset(40, ["jawOpen", "mouthSmile_L"])``."""
        kw = self._fields()
        if n_identity is not None:
            if not 0 <= n_identity <= self.n_identity:
                raise InvalidInput(f"n_identity must be in [0, {self.n_identity}]")
            kw["identity_basis"] = self.identity_basis[:n_identity]
            kw["identity_std"] = self.identity_std[:n_identity]
        if expressions is not None:
            if isinstance(expressions, int):
                if not 0 <= expressions <= self.n_expression:
                    raise InvalidInput(f"expressions must be in [0, {self.n_expression}]")
                idx = list(range(expressions))
            else:
                unknown = [n for n in expressions if n not in self.expression_names]
                if unknown:
                    raise InvalidInput(
                        f"unknown expression names {unknown}; model {self.name!r} has "
                        f"{self.expression_names}"
                    )
                idx = [self.expression_names.index(n) for n in expressions]
            kw["expression_basis"] = self.expression_basis[idx]
            if self.expression_names:
                kw["expression_names"] = [self.expression_names[i] for i in idx]
        return MorphableModel(**kw)

    @property
    def parent_indices(self) -> torch.Tensor | None:
        """For a model made by :meth:`restrict`: ``(V,)`` indices into the parent's vertices."""
        return getattr(self, "_parent_indices", None)

    # ---------------------------------------------------------------------------------------
    # meshes and summaries

    def mesh(self, verts: torch.Tensor | None = None):
        """A :class:`facelab.geometry.mesh.Mesh` of ``verts (V, 3)`` (default: the mean)."""
        from ..geometry.mesh import Mesh

        v = self.mean if verts is None else verts
        if v.dim() == 3:
            if v.shape[0] != 1:
                raise InvalidInput("mesh() takes one face: verts (V, 3) or (1, V, 3)")
            v = v[0]
        return Mesh(verts=v, faces=self.faces, uvs=self.uvs, uv_faces=self.uv_faces)

    def info(self) -> dict[str, Any]:
        """JSON-safe summary (the keys of ``facelab model info NAME --json``)."""
        ext = (self.mean.max(0).values - self.mean.min(0).values).tolist()
        return {
            "name": self.name,
            "vertices": self.n_vertices,
            "triangles": self.n_faces,
            "identity_components": self.n_identity,
            "expression_components": self.n_expression,
            "expression_kind": self.expression_kind,
            "expression_names": list(self.expression_names),
            "albedo_components": self.n_albedo,
            "landmarks": 0 if self.landmarks is None else int(self.landmarks.numel()),
            "has_uv": self.uvs is not None,
            "uv_vertices": 0 if self.uvs is None else int(self.uvs.shape[0]),
            "regions": sorted(self.regions),
            "contours": sorted(self.contour_candidates),
            "units": self.units,
            "extent": [round(e, 4) for e in ext],
            "license": self.license,
            "source": self.source,
        }

    def __repr__(self) -> str:
        return (
            f"MorphableModel({self.name!r}: V={self.n_vertices}, F={self.n_faces}, "
            f"K_id={self.n_identity}, K_exp={self.n_expression} ({self.expression_kind}), "
            f"units={self.units!r}, {self.dtype}, {self.device})"
        )

    # ---------------------------------------------------------------------------------------
    # save / load

    def save(self, path: str | Path) -> Path:
        """Write a compact ``.npz`` (no pickle; strings go in a JSON metadata entry)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InvalidInput(f"save: use a .npz path, got {path.name}")
        arrays: dict[str, np.ndarray] = {}

        def put(k, t):
            if t is not None:
                arrays[k] = t.detach().cpu().numpy()

        for k in (
            "mean", "faces", "identity_basis", "identity_std", "expression_basis",
            "albedo_mean", "albedo_basis", "albedo_std", "uvs", "uv_faces", "landmarks",
            "symmetry",
        ):  # fmt: skip
            put(k, getattr(self, k))
        for k, v in self.regions.items():
            put(f"region__{k}", v)
        for k, v in self.contour_candidates.items():
            put(f"contour__{k}", v)
        for k, v in self.extras.items():
            put(f"extra__{k}", v)
        meta = {
            "format": "facelab-morphable-model",
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "units": self.units,
            "license": self.license,
            "source": self.source,
            "expression_kind": self.expression_kind,
            "expression_names": list(self.expression_names),
            "regions": list(self.regions),
            "contours": list(self.contour_candidates),
            "extras": list(self.extras),
            "meta": self.meta,
        }
        arrays["__meta__"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype | None = None) -> MorphableModel:
        """Read a file written by :meth:`save` (``np.load(allow_pickle=False)``)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise ModelFormatError(f"{path}: not a readable .npz model file ({e})") from None
        if "__meta__" not in data:
            raise ModelFormatError(f"{path}: not a facelab model file (no __meta__ entry)")
        try:
            meta = json.loads(str(data.pop("__meta__")))
        except json.JSONDecodeError as e:
            raise ModelFormatError(f"{path}: corrupt metadata ({e})") from None
        if meta.get("format") != "facelab-morphable-model":
            raise ModelFormatError(f"{path}: not a facelab model file")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFormatError(f"{path}: written by a newer facelab; upgrade facelab")
        for req in ("mean", "faces", "identity_basis", "expression_basis"):
            if req not in data:
                raise ModelFormatError(f"{path}: missing array {req!r}")

        def t(k):
            return torch.from_numpy(data[k]) if k in data else None

        return cls(
            mean=t("mean"),
            faces=t("faces"),
            identity_basis=t("identity_basis"),
            identity_std=t("identity_std"),
            expression_basis=t("expression_basis"),
            expression_kind=meta["expression_kind"],
            expression_names=meta["expression_names"],
            albedo_mean=t("albedo_mean"),
            albedo_basis=t("albedo_basis"),
            albedo_std=t("albedo_std"),
            uvs=t("uvs"),
            uv_faces=t("uv_faces"),
            landmarks=t("landmarks"),
            symmetry=t("symmetry"),
            regions={k: t(f"region__{k}") for k in meta["regions"]},
            contour_candidates={k: t(f"contour__{k}") for k in meta["contours"]},
            name=meta["name"],
            units=meta["units"],
            license=meta["license"],
            source=meta["source"],
            meta=meta.get("meta", {}),
            extras={k: t(f"extra__{k}") for k in meta.get("extras", [])},
            dtype_=dtype,
        )


def pose_points(
    points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """Model -> camera: ``x_cam = R(rotation) @ diag(1, -1, -1) @ x + t``
    (:func:`facelab.geometry.camera.pose_to_camera`, the one implementation).

    ``points (B, N, 3)``, ``rotation (B, 3)`` axis-angle, ``translation (B, 3)`` -> ``(B, N, 3)``.
    """
    from ..geometry.camera import pose_to_camera

    return pose_to_camera(points, rotation, translation)


__all__ = ["MorphableModel", "mirror_symmetry", "pose_points"]
