"""``FitResult``: what a fit produced, and how to write it to disk.

``FitResult.save(dir)`` writes (the contract of ``facelab fit PHOTO --out DIR``):

* ``mesh.obj`` (+ ``mesh.mtl``, ``mesh.png``): the fitted mesh in model space with the model's
  UVs and a texture unwrapped from the photo (texels whose surface point is visible in the
  photo get its colour; the others the fitted albedo, displayed in sRGB);
* ``params.json``: the fitted :class:`~facelab.models.FaceParams` plus camera, pose angles,
  landmark error, timings and warnings (keys listed in :meth:`FitResult.summary`);
* ``overlay.png``: the render blended over the photo, fitted landmarks drawn;
* ``report.html``: photo, overlay, texture, a loss plot (inline SVG) and the summary table.
"""

from __future__ import annotations

import html
import json
import math
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

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``mesh.obj`` (+ texture), ``params.json``, ``overlay.png``, ``report.html``.

        Returns ``{name: path}`` of the files written.
        """
        from ..geometry.io import save_obj
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
        pj = out / "params.json"
        payload = {"params": self.params.to_dict(), "K": self.K.tolist(), **self.summary()}
        pj.write_text(json.dumps(payload, indent=2, sort_keys=True))
        paths["params"] = pj
        ov = out / "overlay.png"
        save_image(self.overlay.clamp(0, 1), ov)
        paths["overlay"] = ov
        rp = out / "report.html"
        rp.write_text(self._report_html(paths))
        paths["report"] = rp
        return paths

    # ------------------------------------------------------------------------------------------
    def _report_html(self, paths: dict[str, Path]) -> str:
        s = self.summary()
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
            for k, v in s.items()
        )
        imgs = f'<img src="{paths["overlay"].name}" alt="overlay" style="max-width:45%">'
        if "texture" in paths:
            imgs += f' <img src="{paths["texture"].name}" alt="texture" style="max-width:30%">'
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>facelab fit</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
            "text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
            f"<h1>facelab fit: {html.escape(self.source or 'photo')}</h1>{imgs}"
            f"<h2>Loss</h2>{loss_svg(self.history)}<h2>Summary</h2><table>{rows}</table>"
            "</body></html>"
        )


def loss_svg(history: dict[str, list[float]], width: int = 640, height: int = 220) -> str:
    """A small inline SVG plot of the photometric stages' loss curves (log scale)."""
    series = [(k, v) for k, v in history.items() if k != "landmarks" and v]
    vals = [x for _, v in series for x in v if x > 0 and math.isfinite(x)]
    if not vals:
        return "<p>(no photometric stages)</p>"
    lo, hi = math.log10(min(vals)), math.log10(max(vals))
    hi = hi if hi > lo else lo + 1
    n = sum(len(v) for _, v in series)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    parts, x0 = [], 0
    for i, (name, v) in enumerate(series):
        pts = []
        for j, y in enumerate(v):
            if y <= 0 or not math.isfinite(y):
                continue
            px = 40 + (x0 + j) / max(n - 1, 1) * (width - 50)
            py = 10 + (hi - math.log10(y)) / (hi - lo) * (height - 30)
            pts.append(f"{px:.1f},{py:.1f}")
        c = colours[i % len(colours)]
        parts.append(
            f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{" ".join(pts)}"/>'
        )
        parts.append(
            f'<text x="{40 + x0 / max(n - 1, 1) * (width - 50):.0f}" y="{height - 4}" '
            f'font-size="11" fill="{c}">{html.escape(name)}</text>'
        )
        x0 += len(v)
    axis = (
        f'<text x="2" y="16" font-size="10">{10**hi:.2g}</text>'
        f'<text x="2" y="{height - 20}" font-size="10">{10**lo:.2g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'style="border:1px solid #ccc">{axis}{"".join(parts)}</svg>'
    )


__all__ = ["FitResult", "loss_svg"]
