"""``FitResult``: what a fit produced, and how to write it to disk.

``FitResult.save(dir)`` writes (the contract of ``facelab fit PHOTO --out DIR``):

* ``mesh.obj`` (+ ``mesh.mtl``, ``mesh.png``): the fitted mesh in model space with the model's
  UVs and a texture unwrapped from the photo (texels whose surface point is visible in the
  photo get its colour; the others the fitted albedo, displayed in sRGB);
* ``params.json``: the fitted :class:`~facelab.models.FaceParams` plus camera, pose angles,
  landmark error, timings and warnings (keys listed in :meth:`FitResult.summary`);
* ``overlay.png``: the render blended over the photo, fitted landmarks drawn;
* ``report.html``: the self-contained report (:mod:`facelab.viz.report`): photo, face-region
  overlay, difference, the shape from five angles (grey and textured), a rotatable 3D view,
  landmarks, pose, coefficients, timings and losses;
* ``mesh.glb`` (with ``glb=True``): the textured mesh as binary glTF for common 3D viewers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models.params import FaceParams


@dataclass
class FitResult:
    """The outcome of :func:`facelab.fit.fit` for one photo.

    Attributes:
        params: fitted :class:`FaceParams` (batch 1; ``focal`` in photo pixels).
        vertices: ``(V, 3)`` model-space vertices of the fitted face.
        posed_vertices: ``(V, 3)`` camera-space vertices.
        faces: ``(F, 3)`` long; ``uvs (T, 2)`` / ``uv_faces (F, 3)`` or None.
        K: ``(3, 3)`` intrinsics of the photo.
        image: ``(3, H, W)`` the photo; ``overlay`` ``(3, H, W)`` render over the photo;
            ``render`` ``(3, H, W)`` the render alone (sRGB); ``mask`` ``(H, W)`` bool.
        landmarks: ``(68, 2)`` detected landmarks; ``projected_landmarks`` ``(68, 2)`` fitted.
        landmark_vertices: ``(68,)`` model vertices used (the jaw slides with the pose).
        vertex_albedo: ``(V, 3)`` linear albedo.
        texture: ``(3, S, S)`` UV texture (sRGB) or None; ``texture_mask`` ``(S, S)`` visible texels.
        history: ``{stage: [loss per step]}`` (``"landmarks"`` holds stage-1 RMS pixels).
        timings: seconds per phase (``detect``, ``landmarks``, each photometric stage,
            ``photometric``, ``total``).
        ypr: ``(yaw, pitch, roll)`` degrees, camera axes.
        landmark_nme: NME of the fitted vs detected landmarks (outer-eye normalised).
        warnings: human-readable issues (extreme pose, stopped stages ...).
        model_name, source: what was fitted to what.
        face_vertices: ``(V,)`` bool, the model's front-face region (the report blends the
            render over the photo there only, not over the neck or the back of the head);
            None = all vertices.
    """

    params: FaceParams
    vertices: torch.Tensor
    posed_vertices: torch.Tensor
    faces: torch.Tensor
    K: torch.Tensor
    image: torch.Tensor
    overlay: torch.Tensor
    render: torch.Tensor
    mask: torch.Tensor
    landmarks: torch.Tensor
    projected_landmarks: torch.Tensor
    landmark_vertices: torch.Tensor
    vertex_albedo: torch.Tensor
    uvs: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    texture_mask: torch.Tensor | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    ypr: tuple[float, float, float] = (0.0, 0.0, 0.0)
    landmark_nme: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    model_name: str = ""
    source: str = ""
    units: str = "cm"
    face_vertices: torch.Tensor | None = None

    def mesh(self):
        """The fitted mesh (model space) as a :class:`facelab.geometry.mesh.Mesh`."""
        from ..geometry.mesh import Mesh

        return Mesh(verts=self.vertices, faces=self.faces, uvs=self.uvs, uv_faces=self.uv_faces)

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary: ``source``, ``model``, ``units``, ``image_size`` [H, W],
        ``focal``, ``ypr_degrees``, ``landmark_nme``, ``timings``, ``warnings``, ``final_loss``
        (last loss of each stage)."""
        H, W = self.image.shape[-2:]
        return {
            "source": self.source,
            "model": self.model_name,
            "units": self.units,
            "image_size": [int(H), int(W)],
            "focal": float(self.K[0, 0]),
            "ypr_degrees": [round(float(a), 3) for a in self.ypr],
            "landmark_nme": float(self.landmark_nme),
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
            "warnings": list(self.warnings),
            "final_loss": {k: (v[-1] if v else None) for k, v in self.history.items()},
        }

    def save(self, out_dir: str | Path, glb: bool = False, report: bool = True) -> dict[str, Path]:
        """Write ``mesh.obj`` (+ texture), ``params.json``, ``overlay.png``, ``report.html``
        (``report=False``: no report) and, with ``glb``, ``mesh.glb``.

        Returns ``{name: path}`` of the files written (keys ``mesh``, ``texture``, ``glb``,
        ``params``, ``overlay``, ``report``).
        """
        from ..geometry.io import save_glb, save_obj
        from ..vision import save_image

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        mesh_path = out / "mesh.obj"
        save_obj(
            mesh_path, self.mesh(), texture_image=self.texture if self.uvs is not None else None
        )
        paths["mesh"] = mesh_path
        if self.texture is not None and self.uvs is not None:
            paths["texture"] = out / "mesh.png"
        if glb:
            gp = out / "mesh.glb"
            save_glb(gp, self.mesh(), self.texture if self.uvs is not None else None)
            paths["glb"] = gp
        pj = out / "params.json"
        payload = {"params": self.params.to_dict(), "K": self.K.tolist(), **self.summary()}
        pj.write_text(json.dumps(payload, indent=2, sort_keys=True))
        paths["params"] = pj
        ov = out / "overlay.png"
        save_image(self.overlay.clamp(0, 1), ov)
        paths["overlay"] = ov
        if report:
            rp = out / "report.html"
            paths["report"] = rp
            rp.write_text(self._report_html(paths, out), encoding="utf-8")
        return paths

    def _report_html(self, paths: dict[str, Path], base: Path | None = None) -> str:
        # the report lives in facelab.viz (viz sits on top of fit): imported when used
        from ..viz.report import fit_report_html

        return fit_report_html(self, paths, base_dir=base)


def face_region(model) -> torch.Tensor | None:
    """``(V,)`` bool: the model's front-face region for :attr:`FitResult.face_vertices`.

    ``"face_narrow"`` (ICT: the face without ears, scalp and neck), else ``"face"`` when it is a
    proper subset of the mesh, else None (the whole mesh is the face).
    """
    regions = getattr(model, "regions", None) or {}
    for name in ("face_narrow", "face"):
        m = regions.get(name)
        if m is not None and bool(m.any()) and not bool(m.all()):
            return m
    return None


def loss_svg(history: dict[str, list[float]], width: int = 640, height: int = 220) -> str:
    """A small inline SVG plot of the loss curves (moved to :func:`facelab.viz.report.loss_svg`)."""
    from ..viz.report import loss_svg as _loss_svg

    return _loss_svg(history, width, height)


__all__ = ["FitResult", "face_region", "loss_svg"]
