"""The fit report: one self-contained HTML page per fit (and per comparison of two fits).

What a user sees after ``facelab fit PHOTO --out DIR`` (``DIR/report.html``), for any method
that returns a :class:`facelab.fit.FitResult`:

* a warnings box (or "no warnings");
* the photo, the fitted render blended over it in the face region only (not the model's neck
  or back of the head), and the per-pixel difference ``|photo - render|`` in that region;
* the fitted shape, grey-shaded, from yaw -90, -45, 0, +45, +90 degrees, and textured from the
  same five views (rendered with :class:`facelab.render.Renderer`);
* an interactive 3D view (plotly ``Mesh3d``, grey / textured), rotatable offline;
* detected vs fitted landmarks with the NME, the pose in degrees, the identity and expression
  coefficients as bar charts, the loss curves, and tables (seconds per stage, final losses).

The page opens from a ``file://`` URL with no network: the images are ``data:`` URIs and the
plotly.js that the installed ``plotly`` package ships is inlined once per page (about 5 MB).
Nothing is fetched from a server.

* :func:`fit_report_html` / :func:`save_report` -- one fit, or several photos of one person
  (``--shared-identity``: one row per photo and the shared shape).
* :func:`compare_report_html` -- two fits (e.g. two methods on one photo): both shapes from the
  same views and their per-vertex distance as a heat map on the mesh (``facelab compare``).
* :func:`load_fit_dir` -- a fit written by ``FitResult.save`` read back (mesh, texture,
  summary) for the comparison.
* Building blocks: :func:`shape_views`, :func:`face_pixel_mask`, :func:`face_overlay`,
  :func:`difference_image`, :func:`heat_colors`, :func:`loss_svg`, :func:`bar_svg`,
  :func:`html_table`, :func:`image_data_uri`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InvalidInput

if TYPE_CHECKING:  # fit sits below viz; imported only for type hints
    from ..fit.result import FitResult

__all__ = [
    "VIEW_YAWS",
    "SavedFit",
    "bar_svg",
    "compare_report_html",
    "difference_image",
    "face_overlay",
    "face_pixel_mask",
    "fit_report_html",
    "heat_colors",
    "html_table",
    "image_data_uri",
    "load_fit_dir",
    "loss_svg",
    "save_compare_report",
    "save_report",
    "shape_distance",
    "shape_views",
    "vertex_colors_from_texture",
]

#: The yaw angles (degrees) of the five shape views, left profile to right profile.
VIEW_YAWS: tuple[float, ...] = (-90.0, -45.0, 0.0, 45.0, 90.0)

_UNITS_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "dm": 100.0}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;
color:#222;max-width:1500px}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:.2em} h3{font-size:1em;margin:.6em 0 .3em}
figure{display:inline-block;margin:0 .6em .6em 0;vertical-align:top;text-align:center}
figure img,figure svg{display:block;border:1px solid #ccc;background:#fff}
figcaption{font-size:.85em;color:#555;margin-top:.2em}
table{border-collapse:collapse;margin:.4em 1.5em .8em 0;font-size:.9em;display:inline-table;
vertical-align:top} th,td{padding:3px 10px;text-align:left;border-bottom:1px solid #ddd}
thead th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.warnings{border:2px solid #d08a00;background:#fff6dd;padding:.6em 1em;margin:1em 0;
border-radius:4px} .warnings h2{margin:0 0 .3em 0;border:none;font-size:1.05em;color:#8a5a00}
.ok{border:1px solid #8bc48b;background:#eef8ee;padding:.4em 1em;margin:1em 0;border-radius:4px}
.row{border-top:1px solid #ccc;padding-top:.6em;margin-top:.6em}
.views img{width:%(view)dpx;height:%(view)dpx}
.plot3d{width:720px;height:560px;border:1px solid #ccc;display:inline-block}
code{background:#f5f5f5;padding:0 3px}
.note{color:#555;font-size:.85em}
"""


# ---------------------------------------------------------------------------------------------
# small helpers


def _cpu(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach().to("cpu")


def _hwc(image: Any) -> np.ndarray:
    """``(3, H, W)`` / ``(H, W, 3)`` / ``(H, W)`` tensor or array in [0, 1] -> uint8 ``(H, W, 3)``."""
    a = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else image
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise InvalidInput(f"expected an image (3, H, W) or (H, W, 3), got shape {a.shape}")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    a = np.nan_to_num(a, nan=0.0)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_data_uri(image: Any, fmt: str = "png", max_side: int | None = None) -> str:
    """A ``data:image/...;base64,`` URI of an image (``(3, H, W)`` or ``(H, W, 3)`` in [0, 1]).

    ``fmt`` is ``"png"`` or ``"jpeg"``; ``max_side`` downsizes larger images (Lanczos).
    """
    from PIL import Image as PILImage

    if fmt not in ("png", "jpeg"):
        raise InvalidInput(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    pil = PILImage.fromarray(_hwc(image))
    if max_side is not None and max(pil.size) > max_side:
        s = max_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * s)), max(1, round(pil.height * s))), 1)
    buf = io.BytesIO()
    pil.save(buf, format=fmt.upper(), **({"quality": 90} if fmt == "jpeg" else {}))
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        a = abs(v)
        return f"{v:.4g}" if a < 1e-3 or a >= 1e5 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def html_table(
    header: Sequence[str] | None, rows: Sequence[Sequence[Any]], caption: str = ""
) -> str:
    """An HTML ``<table>`` (values escaped; numbers right-aligned and rounded)."""
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    if header:
        parts.append(
            "<thead><tr>"
            + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            + "</tr></thead>"
        )
    parts.append("<tbody>")
    for row in rows:
        cells = []
        for j, v in enumerate(row):
            num = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            tag = "th" if j == 0 and header is None else "td"
            cls = ' class="num"' if num else ""
            cells.append(f"<{tag}{cls}>{html.escape(_fmt(v))}</{tag}>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _figure(src: str, caption: str, width: int | None = None, alt: str | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return (
        f'<figure><img src="{src}" alt="{html.escape(alt or caption)}"{w}>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


# colour map: a perceptually ordered dark-blue -> teal -> yellow -> red ramp (no matplotlib)
_HEAT = np.array(
    [
        [0.05, 0.05, 0.35],
        [0.10, 0.35, 0.75],
        [0.10, 0.65, 0.65],
        [0.55, 0.80, 0.30],
        [0.98, 0.82, 0.15],
        [0.90, 0.35, 0.10],
        [0.65, 0.05, 0.10],
    ]
)
#: The same ramp as a plotly colorscale.
HEAT_COLORSCALE = [
    [i / (len(_HEAT) - 1), "rgb({:d},{:d},{:d})".format(*(int(c * 255) for c in rgb))]
    for i, rgb in enumerate(_HEAT)
]


def heat_colors(values: Any, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``(N,)`` values -> ``(N, 3)`` RGB in [0, 1] on a blue -> yellow -> red ramp over ``[lo, hi]``
    (default: the values' min and max)."""
    x = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, float)
    lo = float(np.nanmin(x)) if lo is None else float(lo)
    hi = float(np.nanmax(x)) if hi is None else float(hi)
    t = np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    t = np.nan_to_num(t, nan=0.0) * (len(_HEAT) - 1)
    i = np.minimum(np.floor(t).astype(int), len(_HEAT) - 2)
    f = (t - i)[..., None]
    return _HEAT[i] * (1 - f) + _HEAT[i + 1] * f


def _colorbar_svg(lo: float, hi: float, label: str, width: int = 260) -> str:
    stops = "".join(f'<stop offset="{o:.3f}" stop-color="{c}"/>' for o, c in HEAT_COLORSCALE)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="44" role="img">'
        f'<defs><linearGradient id="heatgrad">{stops}</linearGradient></defs>'
        f'<rect x="10" y="4" width="{width - 20}" height="14" fill="url(#heatgrad)"/>'
        f'<text x="10" y="32" font-size="11">{_fmt(lo)}</text>'
        f'<text x="{width - 10}" y="32" font-size="11" text-anchor="end">{_fmt(hi)}</text>'
        f'<text x="{width / 2}" y="42" font-size="11" text-anchor="middle">{html.escape(label)}</text>'
        "</svg>"
    )


# ---------------------------------------------------------------------------------------------
# SVG charts


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


def bar_svg(
    values: Any,
    title: str,
    labels: Sequence[str] | None = None,
    width: int = 720,
    height: int = 170,
    color: str = "#4c72b0",
) -> str:
    """A bar chart of ``values (K,)`` as inline SVG (zero line, symmetric range, a tooltip per bar)."""
    v = np.asarray(values.detach().cpu().double() if isinstance(values, torch.Tensor) else values)
    v = v.reshape(-1).astype(float)
    if v.size == 0:
        return f"<p>{html.escape(title)}: (none)</p>"
    m = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 1.0
    m = m if m > 0 else 1.0
    left, top, bottom = 44, 22, 20
    ph = height - top - bottom
    y0 = top + ph / 2
    bw = (width - left - 6) / v.size
    bars = []
    for k, x in enumerate(v):
        x = 0.0 if not math.isfinite(x) else x
        h = abs(x) / m * ph / 2
        y = y0 - h if x >= 0 else y0
        name = labels[k] if labels is not None and k < len(labels) else str(k)
        c = color if x >= 0 else "#c44e52"
        bars.append(
            f'<rect x="{left + k * bw:.2f}" y="{y:.2f}" width="{max(bw * 0.85, 0.5):.2f}" '
            f'height="{max(h, 0.3):.2f}" fill="{c}"><title>{html.escape(name)}: {x:+.4g}</title></rect>'
        )
    ticks = "".join(
        f'<text x="{left + k * bw:.1f}" y="{height - 6}" font-size="9">{k}</text>'
        for k in range(0, v.size, max(1, v.size // 10))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'style="border:1px solid #ccc"><text x="4" y="14" font-size="12">{html.escape(title)}'
        f"</text>"
        f'<line x1="{left}" y1="{y0}" x2="{width - 4}" y2="{y0}" stroke="#999" stroke-width="0.7"/>'
        f'<text x="2" y="{top + 8}" font-size="9">{m:+.3g}</text>'
        f'<text x="2" y="{top + ph}" font-size="9">{-m:+.3g}</text>'
        f"{''.join(bars)}{ticks}</svg>"
    )


def _landmark_svg(
    photo_uri: str,
    size_hw: tuple[int, int],
    detected: torch.Tensor,
    fitted: torch.Tensor,
    width: int = 360,
) -> str:
    """The photo zoomed on the face with the detected (green) and fitted (red) landmarks and a
    line from each detected point to its fitted partner."""
    H, W = size_hw
    d = detected.detach().cpu().double()
    f = fitted.detach().cpu().double()
    pts = torch.cat([d, f])[torch.isfinite(torch.cat([d, f])).all(1)]
    if len(pts) == 0:
        return "<p>(no landmarks)</p>"
    lo, hi = pts.amin(0), pts.amax(0)
    c = (lo + hi) / 2
    side = float((hi - lo).max()) * 1.35 + 4
    x0, y0 = float(c[0]) - side / 2, float(c[1]) - side / 2
    r = side / 160
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{width}" '
        f'viewBox="{x0:.2f} {y0:.2f} {side:.2f} {side:.2f}" role="img">'
        f'<image href="{photo_uri}" x="0" y="0" width="{W}" height="{H}"/>'
    ]
    for a, b in zip(d.tolist(), f.tolist()):
        if all(math.isfinite(t) for t in (*a, *b)):
            parts.append(
                f'<line x1="{a[0]:.2f}" y1="{a[1]:.2f}" x2="{b[0]:.2f}" y2="{b[1]:.2f}" '
                f'stroke="#ffe000" stroke-width="{r * 0.6:.3f}"/>'
            )
    for (x, y), col in [(p, "#20d020") for p in d.tolist()] + [(p, "#ff3020") for p in f.tolist()]:
        if math.isfinite(x) and math.isfinite(y):
            parts.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{r:.3f}" fill="{col}"/>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# rendering


def _face_triangles(faces: torch.Tensor, face_vertices: torch.Tensor | None) -> torch.Tensor:
    if face_vertices is None:
        return torch.ones(faces.shape[0], dtype=torch.bool, device=faces.device)
    return face_vertices.to(faces.device)[faces].all(-1)


@torch.no_grad()
def face_pixel_mask(result: FitResult) -> torch.Tensor:
    """``(H, W)`` bool: photo pixels where the fitted face region is the visible surface.

    The region is ``result.face_vertices`` (the model's front-face region; all vertices when
    None). The whole mesh is rasterized, so the neck or the back of the head still occlude.
    """
    from ..geometry.camera import project_depth
    from ..render import Renderer

    H, W = result.image.shape[-2:]
    posed = _cpu(result.posed_vertices)[None].float()
    faces = _cpu(result.faces).long()
    K = _cpu(result.K).float()[None]
    frags = Renderer(image_size=(int(H), int(W))).rasterize(project_depth(posed, K), faces)
    p2f = frags.pix_to_face[0]
    tri = _face_triangles(faces, _cpu(result.face_vertices))
    return (p2f >= 0) & tri[p2f.clamp_min(0)]


def face_overlay(
    result: FitResult, alpha: float = 0.6, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``(3, H, W)``: the render blended over the photo (``alpha`` render) in the face region."""
    m = face_pixel_mask(result) if mask is None else mask
    img = _cpu(result.image).float()
    ren = _cpu(result.render).float()
    return torch.where(m[None], (1 - alpha) * img + alpha * ren, img).clamp(0, 1)


def difference_image(
    result: FitResult, mask: torch.Tensor | None = None, vmax: float = 0.25
) -> tuple[torch.Tensor, float]:
    """``(3, H, W)`` heat map of ``|photo - render|`` (channel mean, 0 .. ``vmax``) in the face
    region over a dimmed photo, and the mean absolute difference there (in [0, 1] units)."""
    m = face_pixel_mask(result) if mask is None else mask
    img = _cpu(result.image).float()
    d = (img - _cpu(result.render).float()).abs().mean(0)
    heat = torch.from_numpy(heat_colors(d.reshape(-1).numpy(), 0.0, vmax)).float()
    heat = heat.reshape(*d.shape, 3).permute(2, 0, 1)
    base = 0.35 * img.mean(0, keepdim=True).expand(3, -1, -1)
    mean = float(d[m].mean()) if bool(m.any()) else float("nan")
    return torch.where(m[None], heat, base), mean


def _view_camera(
    verts: torch.Tensor, yaws: Sequence[float], size: int, center, radius
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    v = verts.detach().to("cpu", torch.float32)
    if center is None:
        center = (v.amin(0) + v.amax(0)) / 2
    center = torch.as_tensor(center, dtype=torch.float32)
    vc = v - center
    if radius is None:
        radius = float(vc.norm(dim=-1).max())
    radius = max(float(radius), 1e-6)
    n = len(yaws)
    dist = 8.0 * radius  # a long lens: little perspective, like a portrait photo
    f = 0.5 * size * dist / (1.08 * radius)
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    rot = torch.zeros(n, 3)
    rot[:, 1] = torch.tensor([math.radians(y) for y in yaws])
    tr = torch.zeros(n, 3)
    tr[:, 2] = dist
    return vc[None].expand(n, -1, -1), K, rot, tr


@torch.no_grad()
def shape_views(
    verts: torch.Tensor,
    faces: torch.Tensor,
    yaws: Sequence[float] = VIEW_YAWS,
    size: int = 256,
    style: str = "grey",
    vertex_colors: torch.Tensor | np.ndarray | None = None,
    texture: torch.Tensor | None = None,
    uvs: torch.Tensor | None = None,
    uv_faces: torch.Tensor | None = None,
    center: Any = None,
    radius: float | None = None,
    background: float = 1.0,
) -> torch.Tensor:
    """Render a model-space mesh ``verts (V, 3)`` from several yaw angles (degrees).

    The mesh is centred on its bounding box (or ``center``) and framed to ``radius`` (default:
    its own), seen by a long-lens camera on the model's +z axis (the front) turned by each yaw
    about the vertical axis. ``style``:

    * ``"grey"``: uniform grey, a directional light from the upper left of the camera plus
      ambient -- shape only, so a wrong nose or a flat cheek shows;
    * ``"texture"``: ``texture (3, S, S)`` (sRGB) through ``uvs`` / ``uv_faces``, unlit;
    * ``"colors"``: ``vertex_colors (V, 3)`` (e.g. :func:`heat_colors`), lightly shaded.

    Pass the same ``center`` and ``radius`` to compare two meshes at the same scale.

    Returns:
        ``(N, 3, size, size)`` in [0, 1] on a ``background`` grey level.
    """
    from ..render import Renderer
    from ..render.shading import sh_ambient

    if style not in ("grey", "texture", "colors"):
        raise InvalidInput(f"style must be 'grey', 'texture' or 'colors', got {style!r}")
    v, K, rot, tr = _view_camera(verts, yaws, size, center, radius)
    n = v.shape[0]
    faces = faces.detach().to("cpu").long()
    r = Renderer(image_size=size, background=background)
    light = torch.nn.functional.normalize(torch.tensor([[-0.45, -0.5, -1.0]]), dim=-1).expand(n, 3)
    if style == "texture":
        if texture is None or uvs is None:
            raise InvalidInput("style='texture' needs texture (3, S, S) and uvs")
        tex = texture.detach().to("cpu", torch.float32)
        tex = tex[None] if tex.dim() == 3 else tex
        out = r.render(
            v, faces, K=K, rotation=rot, translation=tr, texture=tex.expand(n, -1, -1, -1),
            uvs=uvs.detach().to("cpu", torch.float32),
            uv_faces=None if uv_faces is None else uv_faces.detach().to("cpu").long(),
        )  # fmt: skip
    else:
        if style == "grey":
            col = torch.full((v.shape[1], 3), 0.78)
            amb, lc = 0.28, 0.78
        else:
            if vertex_colors is None:
                raise InvalidInput("style='colors' needs vertex_colors (V, 3)")
            col = torch.as_tensor(np.asarray(vertex_colors), dtype=torch.float32)
            amb, lc = 0.55, 0.5
        out = r.render(
            v, faces, K=K, rotation=rot, translation=tr, vertex_colors=col[None].expand(n, -1, -1),
            sh=sh_ambient(amb, n, 3), light_dir=light, light_color=lc,
        )  # fmt: skip
    m = out.mask
    return (out.image * m + background * (1 - m)).clamp(0, 1)


@torch.no_grad()
def vertex_colors_from_texture(
    texture: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor, uv_faces: torch.Tensor | None
) -> torch.Tensor:
    """``(V, 3)`` per-vertex colours sampled from ``texture (3, S, S)`` (one UV per vertex: the
    last corner that uses it; ``v`` up)."""
    faces = faces.detach().cpu().long()
    uvf = faces if uv_faces is None else uv_faces.detach().cpu().long()
    uvs = uvs.detach().cpu().float()
    V = int(faces.max()) + 1
    vuv = torch.zeros(V, 2)
    vuv[faces.reshape(-1)] = uvs[uvf.reshape(-1)]
    grid = torch.stack([2 * vuv[:, 0] - 1, 1 - 2 * vuv[:, 1]], -1)[None, None]
    tex = texture.detach().cpu().float()[None]
    col = torch.nn.functional.grid_sample(
        tex, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return col[0, :, 0].T.clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# plotly


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _mesh3d_div(
    verts: torch.Tensor,
    faces: torch.Tensor,
    div_id: str,
    vertex_colors: torch.Tensor | None = None,
    intensity: np.ndarray | None = None,
    landmark_points: torch.Tensor | None = None,
    extra: Sequence[tuple[str, torch.Tensor]] = (),
    colorbar_title: str = "",
    base_name: str = "grey",
) -> str:
    """A plotly ``Mesh3d`` figure as a ``<div>`` + script (plotly.js itself not included).

    Traces: grey, then textured (``vertex_colors``), heat (``intensity``) and ``extra`` grey
    meshes ``(name, verts)`` of the same faces; buttons switch between them.
    """
    import plotly.graph_objects as go

    from .meshes import FRONT_CAMERA, mesh_trace

    v = verts.detach().cpu().double().numpy()
    f = faces.detach().cpu().numpy()
    traces = [(base_name, mesh_trace(v, f, color="rgb(200,200,200)", name=base_name))]
    if vertex_colors is not None:
        traces.append(("textured", mesh_trace(v, f, vertex_colors=vertex_colors, name="textured")))
    for name, ev in extra:
        traces.append((name, mesh_trace(ev.detach().cpu().double().numpy(), f, name=name,
                                        color="rgb(200,200,200)")))  # fmt: skip
    if intensity is not None:
        tr = mesh_trace(
            v, f, intensity=intensity, colorscale=HEAT_COLORSCALE, name="distance", cmin=0.0,
            cmax=max(float(np.max(intensity)), 1e-9),
        )  # fmt: skip
        tr.update(colorbar={"title": {"text": colorbar_title}})
        traces.append(("distance", tr))
    data = [t for _, t in traces]
    n_mesh = len(data)
    if landmark_points is not None:
        p = landmark_points.detach().cpu().double().numpy()
        data.append(
            go.Scatter3d(
                x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name="landmarks",
                marker={"size": 3, "color": "red"}, hoverinfo="skip",
            )
        )  # fmt: skip
    start = n_mesh - 1 if intensity is not None else 0
    for i, t in enumerate(data[:n_mesh]):
        t.visible = i == start
    axis = {"visible": False, "showbackground": False}
    layout: dict[str, Any] = {
        "height": 560, "width": 720, "margin": {"l": 0, "r": 0, "t": 10, "b": 0},
        "showlegend": False,
        "scene": {"aspectmode": "data", "camera": FRONT_CAMERA, "xaxis": axis, "yaxis": axis,
                  "zaxis": axis, "dragmode": "orbit"},
    }  # fmt: skip
    if n_mesh > 1:
        buttons = []
        for i, (name, _) in enumerate(traces):
            vis = [j == i for j in range(n_mesh)] + [True] * (len(data) - n_mesh)
            buttons.append({"label": name, "method": "restyle", "args": [{"visible": vis}]})
        layout["updatemenus"] = [
            {"type": "buttons", "direction": "right", "x": 0.0, "y": 1.0, "xanchor": "left",
             "yanchor": "top", "buttons": buttons, "active": start, "showactive": True}
        ]  # fmt: skip
    fig = go.Figure(data=data, layout=layout)
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


# ---------------------------------------------------------------------------------------------
# page assembly


def _page(title: str, body: str, view: int, plotly: bool = True) -> str:
    js = f'<script type="text/javascript">{_plotly_js()}</script>' if plotly else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS % {'view': view}}</style>{js}"
        f"</head><body>{body}</body></html>"
    )


def _warnings_box(warnings: Sequence[str]) -> str:
    if not warnings:
        return '<div class="ok">No warnings.</div>'
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<div class="warnings" role="alert"><h2>Warnings ({len(warnings)})</h2><ul>{items}</ul></div>'


def _units_to_mm(units: str) -> float:
    return _UNITS_TO_MM.get(str(units).lower(), 1.0)


def _views_html(images: torch.Tensor, yaws: Sequence[float], label: str) -> str:
    figs = "".join(
        _figure(image_data_uri(images[i]), f"{label}, yaw {y:+.0f}\N{DEGREE SIGN}")
        for i, y in enumerate(yaws)
    )
    return f'<div class="views">{figs}</div>'


def _shape_section(
    verts: torch.Tensor,
    faces: torch.Tensor,
    texture: torch.Tensor | None,
    uvs: torch.Tensor | None,
    uv_faces: torch.Tensor | None,
    view_size: int,
    div_id: str,
    landmark_points: torch.Tensor | None = None,
) -> str:
    grey = shape_views(verts, faces, VIEW_YAWS, view_size, "grey")
    out = ["<h3>Grey-shaded shape</h3>", _views_html(grey, VIEW_YAWS, "shape")]
    vcol = None
    if texture is not None and uvs is not None:
        tex = shape_views(
            verts, faces, VIEW_YAWS, view_size, "texture", texture=texture, uvs=uvs,
            uv_faces=uv_faces,
        )  # fmt: skip
        out += ["<h3>Textured (texture unwrapped from the photo)</h3>"]
        out.append(_views_html(tex, VIEW_YAWS, "textured"))
        vcol = vertex_colors_from_texture(texture, faces, uvs, uv_faces)
    out.append(
        "<h3>Interactive 3D view</h3><p class='note'>Drag to rotate, scroll to zoom; the buttons "
        "switch between grey and textured. Works offline.</p>"
    )
    out.append(
        f'<div class="plot3d">'
        f"{_mesh3d_div(verts, faces, div_id, vertex_colors=vcol, landmark_points=landmark_points)}"
        "</div>"
    )
    return "".join(out)


def _face_box(result: FitResult, mask: torch.Tensor, scale: float = 1.9) -> tuple[int, ...]:
    """Square ``(y0, y1, x0, x1)`` around the landmarks and the face pixels, inside the photo."""
    H, W = (int(n) for n in result.image.shape[-2:])
    pts = [_cpu(result.landmarks).double(), _cpu(result.projected_landmarks).double()]
    if bool(mask.any()):
        ij = torch.nonzero(mask).double()
        pts.append(torch.stack([ij[:, 1], ij[:, 0]], -1))
    p = torch.cat(pts)
    p = p[torch.isfinite(p).all(1)]
    if len(p) == 0:
        return 0, H, 0, W
    lo, hi = p.amin(0), p.amax(0)
    c = (lo + hi) / 2
    side = min(max(float((hi - lo).max()) * scale / 1.4, 16.0), float(min(H, W)))
    x0 = int(round(min(max(float(c[0]) - side / 2, 0.0), W - side)))
    y0 = int(round(min(max(float(c[1]) - side / 2, 0.0), H - side)))
    return y0, y0 + int(side), x0, x0 + int(side)


def _photo_figures(result: FitResult, width: int = 320) -> tuple[str, float]:
    mask = face_pixel_mask(result)
    H, W = result.image.shape[-2:]
    photo_uri = image_data_uri(result.image, "jpeg")
    diff, mad = difference_image(result, mask)
    y0, y1, x0, x1 = _face_box(result, mask)
    ov = face_overlay(result, 0.6, mask)[:, y0:y1, x0:x1]
    figs = [
        _figure(photo_uri, "photo", width),
        _figure(image_data_uri(ov, "jpeg"), "fit over the photo (face region, zoomed)", width),
        _figure(
            image_data_uri(diff[:, y0:y1, x0:x1], "jpeg"),
            f"|photo - render| in the face region, mean {mad:.3f}",
            width,
        ),
        "<figure>"
        + _landmark_svg(
            photo_uri, (int(H), int(W)), result.landmarks, result.projected_landmarks, width
        )
        + f"<figcaption>landmarks: detected (green) vs fitted (red), NME "
        f"{float(result.landmark_nme):.4f}</figcaption></figure>",
    ]
    bar = _colorbar_svg(0.0, 0.25, "|photo - render| (channel mean, 0..1)")
    return "".join(figs) + f"<div>{bar}</div>", mad


def _pose_table(result: FitResult) -> str:
    yaw, pitch, roll = (float(a) for a in result.ypr)
    t = _cpu(result.params.translation).reshape(-1).tolist()
    rows = [
        ["yaw (deg)", yaw], ["pitch (deg)", pitch], ["roll (deg)", roll],
        [f"translation ({result.units})", ", ".join(f"{x:.2f}" for x in t)],
        ["focal (px)", float(result.K[0, 0])],
    ]  # fmt: skip
    return html_table(["pose", "value"], rows)


def _summary_table(result: FitResult, mad: float | None = None) -> str:
    H, W = result.image.shape[-2:]
    rows = [
        ["source", result.source or "photo"],
        ["model", result.model_name],
        ["units", result.units],
        ["image size (H x W)", f"{int(H)} x {int(W)}"],
        ["vertices / triangles", f"{result.vertices.shape[0]} / {result.faces.shape[0]}"],
        ["landmark NME (landmark_nme, outer-eye)", float(result.landmark_nme)],
    ]
    if mad is not None:
        rows.append(["mean |photo - render| in the face region", mad])
    return html_table(["fit", "value"], rows)


def _timing_table(timings: dict[str, float]) -> str:
    if not timings:
        return "<p>(no timings)</p>"
    return html_table(["stage", "seconds"], [[k, float(v)] for k, v in timings.items()])


def _loss_table(history: dict[str, list[float]]) -> str:
    rows = [
        [k, (float(v[0]) if v else None), (float(v[-1]) if v else None), len(v)]
        for k, v in history.items()
    ]
    if not rows:
        return "<p>(no losses)</p>"
    return html_table(["stage", "first loss", "final loss", "steps"], rows)


def _coefficient_charts(
    result: FitResult, which: Sequence[str] = ("identity", "expression")
) -> str:
    out = []
    for name in which:
        t = getattr(result.params, name, None)
        if t is not None and t.numel():
            out.append(
                "<div>" + bar_svg(t.reshape(-1), f"{name} coefficients ({t.numel()})") + "</div>"
            )
    return "".join(out)


def _files_table(files: dict[str, Any] | None, base: Path | None) -> str:
    if not files:
        return ""
    rows = []
    for k, p in files.items():
        p = Path(p)
        name = p.name if base is None else str(_relative(p, base))
        rows.append(f'<tr><td>{html.escape(k)}</td><td><a href="{html.escape(name)}">'
                    f"{html.escape(name)}</a></td></tr>")  # fmt: skip
    return (
        "<table><thead><tr><th>file</th><th>path</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _relative(p: Path, base: Path) -> Path:
    try:
        return p.resolve().relative_to(base.resolve())
    except ValueError:
        return Path(p.name)


def _landmark_points_3d(result: FitResult) -> torch.Tensor | None:
    lv = result.landmark_vertices
    if lv is None or lv.numel() == 0:
        return None
    return _cpu(result.vertices)[_cpu(lv).long()]


def fit_report_html(
    result: FitResult | Sequence[FitResult],
    files: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    title: str | None = None,
    shared_vertices: torch.Tensor | None = None,
    view_size: int = 256,
    base_dir: str | Path | None = None,
) -> str:
    """The self-contained HTML report of one fit, or of several photos of one person.

    Args:
        result: a :class:`~facelab.fit.FitResult` (any method), or a list of them (one page,
            one row per photo, then the shared shape).
        files: ``{name: path}`` written beside the report (listed with relative links), or a
            list of them (one per result).
        title: page title (default from the source).
        shared_vertices: ``(V, 3)`` the shared shape of a multi-photo fit (e.g. the identity at a
            neutral expression); default: the first result's vertices.
        view_size: pixel size of each of the five shape views.
        base_dir: the folder the report is written to (for relative file links).

    Returns:
        The HTML text (plotly.js inlined once; images as ``data:`` URIs; no external URL).
    """
    base = None if base_dir is None else Path(base_dir)
    if isinstance(result, Sequence) and not isinstance(result, str):
        results = list(result)
        if not results:
            raise InvalidInput("fit_report_html needs at least one result")
        if len(results) > 1:
            return _multi_report_html(results, files, title, shared_vertices, view_size, base)
        result = results[0]
        if isinstance(files, Sequence) and not isinstance(files, dict):
            files = files[0] if files else None
    r = result
    name = r.source or "photo"
    photos, mad = _photo_figures(r)
    body = [
        f"<h1>facelab fit: {html.escape(name)}</h1>",
        f"<p class='note'>model <code>{html.escape(r.model_name)}</code>, units "
        f"{html.escape(r.units)}; yaw {r.ypr[0]:+.1f}\N{DEGREE SIGN}, pitch {r.ypr[1]:+.1f}"
        f"\N{DEGREE SIGN}, roll {r.ypr[2]:+.1f}\N{DEGREE SIGN}; landmark NME "
        f"{float(r.landmark_nme):.4f}</p>",
        _warnings_box(r.warnings),
        "<h2>Photo, fit and difference</h2>",
        photos,
        "<h2>The fitted 3D shape</h2>",
        _shape_section(
            r.vertices,
            r.faces,
            r.texture,
            r.uvs,
            r.uv_faces,
            view_size,
            "facelab-mesh3d",
            _landmark_points_3d(r),
        ),  # fmt: skip
        "<h2>Pose and fit summary</h2>",
        _summary_table(r, mad),
        _pose_table(r),
        "<h2>Coefficients</h2>",
        _coefficient_charts(r),
        "<h2>Time and losses</h2>",
        _timing_table(r.timings),
        _loss_table(r.history),
        f"<div>{loss_svg(r.history)}</div>",
    ]
    if r.texture is not None:
        body += [
            "<h2>Texture</h2>",
            _figure(image_data_uri(r.texture, "jpeg", max_side=512), "UV texture", 384),
        ]
    if files:
        body += ["<h2>Files</h2>", _files_table(files, base)]  # type: ignore[arg-type]
    return _page(title or f"facelab fit: {name}", "".join(body), view_size)


def _multi_report_html(
    results: list[FitResult],
    files: Any,
    title: str | None,
    shared_vertices: torch.Tensor | None,
    view_size: int,
    base: Path | None,
) -> str:
    r0 = results[0]
    warns = [
        f"photo {i + 1} ({r.source or 'photo'}): {w}"
        for i, r in enumerate(results)
        for w in r.warnings
    ]
    body = [
        f"<h1>facelab fit: {len(results)} photos of one person</h1>",
        f"<p class='note'>model <code>{html.escape(r0.model_name)}</code>; one identity shared by "
        "all photos, one pose, expression and light per photo.</p>",
        _warnings_box(warns),
        "<h2>Photos</h2>",
    ]
    pose_rows = []
    for i, r in enumerate(results):
        figs, mad = _photo_figures(r, width=300)
        link = ""
        if isinstance(files, Sequence) and i < len(files) and files[i] and "report" in files[i]:
            rel = Path(files[i]["report"])
            rel = rel.name if base is None else _relative(rel, base)
            link = f' (<a href="{html.escape(str(rel))}">its own report</a>)'
        body.append(
            f'<div class="row"><h3>{i + 1}. {html.escape(r.source or "photo")}{link}</h3>{figs}'
            f"{_coefficient_charts(r, ('expression',))}</div>"
        )
        pose_rows.append(
            [f"{i + 1}. {r.source or 'photo'}", float(r.ypr[0]), float(r.ypr[1]),
             float(r.ypr[2]), float(r.landmark_nme), mad, float(r.timings.get("total", float("nan")))]
        )  # fmt: skip
    body += [
        "<h2>Per photo</h2>",
        html_table(
            [
                "photo",
                "yaw (deg)",
                "pitch (deg)",
                "roll (deg)",
                "landmark NME",
                "mean |photo - render|",
                "seconds",
            ],
            pose_rows,
        ),  # fmt: skip
    ]
    shared = r0.vertices if shared_vertices is None else shared_vertices
    label = (
        "the shared identity at a neutral expression"
        if shared_vertices is not None
        else ("the shape of photo 1 (shared identity, photo 1's expression)")
    )
    body += [
        f"<h2>The shared shape ({html.escape(label)})</h2>",
        _shape_section(
            shared, r0.faces, r0.texture, r0.uvs, r0.uv_faces, view_size, "facelab-mesh3d"
        ),
        "<h2>Identity coefficients (shared)</h2>",
        _coefficient_charts(r0, ("identity",)),
        "<h2>Time and losses (photo 1)</h2>",
        _timing_table(r0.timings),
        _loss_table(r0.history),
    ]
    return _page(title or "facelab fit: shared identity", "".join(body), view_size)


def save_report(
    result: FitResult | Sequence[FitResult],
    path: str | Path,
    files: Any = None,
    shared_vertices: torch.Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`fit_report_html` to ``path`` (an ``.html`` file); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = fit_report_html(result, files, title, shared_vertices, base_dir=p.parent)
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------
# comparison of two fits


@dataclass
class SavedFit:
    """A fit as written to disk by ``FitResult.save``, read back by :func:`load_fit_dir`.

    Fields: ``label`` (display name), ``verts`` ``(V, 3)`` in model space, ``faces`` ``(F, 3)``,
    optional ``uvs``, ``uv_faces`` and ``texture`` ``(3, S, S)``, and ``summary`` (the
    ``params.json`` contents, or ``FitResult.summary()``).
    """

    label: str
    verts: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def units(self) -> str:
        return str(self.summary.get("units", "cm"))


def load_fit_dir(path: str | Path, label: str | None = None) -> SavedFit:
    """Read ``mesh.obj`` (+ ``mesh.png``) and ``params.json`` of a fit folder.

    Raises:
        InvalidInput: the folder or its ``mesh.obj`` does not exist.
    """
    from ..geometry.io import load_obj

    d = Path(path)
    mesh_path = d / "mesh.obj"
    if not d.is_dir():
        raise InvalidInput(f"{d}: no such folder (pass a folder written by `facelab fit --out`)")
    if not mesh_path.is_file():
        raise InvalidInput(f"{d}: no mesh.obj in it (is it the --out folder of `facelab fit`?)")
    mesh = load_obj(mesh_path)
    tex = None
    if (d / "mesh.png").is_file() and mesh.uvs is not None:
        from ..vision import load_image

        tex = load_image(d / "mesh.png").tensor[0]
    summary: dict[str, Any] = {}
    if (d / "params.json").is_file():
        try:
            summary = json.loads((d / "params.json").read_text())
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{d / 'params.json'}: not valid JSON ({e})") from None
    return SavedFit(
        label=label or d.name, verts=mesh.verts, faces=mesh.faces, uvs=mesh.uvs,
        uv_faces=mesh.uv_faces, texture=tex, summary=summary,
    )  # fmt: skip


def _as_saved(x: Any, label: str | None) -> SavedFit:
    if isinstance(x, SavedFit):
        return x if label is None else SavedFit(**{**x.__dict__, "label": label})
    if isinstance(x, str | Path):
        return load_fit_dir(x, label)
    if hasattr(x, "vertices") and hasattr(x, "summary"):
        return SavedFit(
            label=label or x.source or x.model_name or "fit", verts=_cpu(x.vertices),
            faces=_cpu(x.faces), uvs=_cpu(x.uvs), uv_faces=_cpu(x.uv_faces),
            texture=_cpu(x.texture), summary=x.summary(),
        )  # fmt: skip
    raise InvalidInput(f"expected a fit folder, a FitResult or a SavedFit, got {type(x).__name__}")


@torch.no_grad()
def shape_distance(a: SavedFit, b: SavedFit) -> tuple[np.ndarray, bool]:
    """Per-vertex distance (millimetres) from ``a``'s vertices to ``b``'s shape.

    Same topology (vertex count and triangles): the distance between corresponding vertices.
    Otherwise: the distance from each of ``a``'s vertices to the nearest vertex of ``b``.
    Both meshes are taken in model space as they are (no alignment: one model, one frame).

    Returns ``(distance (V_a,), same_topology)``.
    """
    s = _units_to_mm(a.units)
    va = a.verts.detach().cpu().double()
    vb = b.verts.detach().cpu().double() * (_units_to_mm(b.units) / s)
    same = (
        va.shape == vb.shape
        and a.faces.shape == b.faces.shape
        and bool(torch.equal(a.faces.cpu().long(), b.faces.cpu().long()))
    )
    if same:
        d = (va - vb).norm(dim=-1).numpy()
    else:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(vb.numpy()).query(va.numpy())
    return np.asarray(d) * s, same


def _summary_rows(fits: Sequence[SavedFit]) -> list[list[Any]]:
    def g(f: SavedFit, *keys, default=None):
        v: Any = f.summary
        for k in keys:
            if not isinstance(v, dict) or k not in v:
                return default
            v = v[k]
        return v

    rows = [["source"] + [str(g(f, "source", default="")) for f in fits]]
    rows.append(["model"] + [str(g(f, "model", default="")) for f in fits])
    for i, nm in enumerate(("yaw", "pitch", "roll")):
        rows.append([f"{nm} (deg)"] + [
            (float(g(f, "ypr_degrees")[i]) if g(f, "ypr_degrees") else None) for f in fits
        ])  # fmt: skip
    rows.append(["landmark NME"] + [g(f, "landmark_nme") for f in fits])
    rows.append(["seconds (total)"] + [g(f, "timings", "total") for f in fits])
    rows.append(["vertices"] + [int(f.verts.shape[0]) for f in fits])
    rows.append(["warnings"] + [len(g(f, "warnings", default=[]) or []) for f in fits])
    return rows


def compare_report_html(
    a: Any,
    b: Any,
    labels: Sequence[str] | None = None,
    view_size: int = 256,
    vmax_mm: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """A self-contained page comparing two fits (two methods on one photo, or two photos).

    ``a`` and ``b`` are fit folders (written by ``facelab fit --out``), ``FitResult`` objects or
    :class:`SavedFit` objects. The page shows both shapes grey-shaded (and textured) from the same
    five yaw angles at the same scale, and the per-vertex distance (:func:`shape_distance`, mm)
    as a heat map on ``a``'s mesh, from the same views and in a rotatable plotly view.

    Returns ``(html, stats)`` with ``stats = {"mean_mm", "median_mm", "p95_mm", "max_mm",
    "same_topology", "labels"}``.
    """
    if labels is not None and len(labels) != 2:
        raise InvalidInput(f"labels must be two names, got {list(labels)}")
    la, lb = labels if labels is not None else (None, None)
    A, B = _as_saved(a, la), _as_saved(b, lb)
    if A.label == B.label:
        A.label, B.label = f"A: {A.label}", f"B: {B.label}"
    d, same = shape_distance(A, B)
    stats = {
        "labels": [A.label, B.label],
        "same_topology": same,
        "mean_mm": float(np.mean(d)),
        "median_mm": float(np.median(d)),
        "p95_mm": float(np.percentile(d, 95)),
        "max_mm": float(np.max(d)),
    }
    hi = float(vmax_mm) if vmax_mm is not None else max(stats["p95_mm"], 1e-6)
    # the same framing for both shapes
    va = A.verts.detach().cpu().float()
    vb = B.verts.detach().cpu().float() * (_units_to_mm(B.units) / _units_to_mm(A.units))
    both = torch.cat([va, vb])
    center = (both.amin(0) + both.amax(0)) / 2
    radius = float((both - center).norm(dim=-1).max())
    kw = dict(center=center, radius=radius)
    body = [
        f"<h1>facelab compare: {html.escape(A.label)} vs {html.escape(B.label)}</h1>",
        "<p class='note'>Both shapes in the model's own frame (no alignment), framed alike. The "
        + (
            "distance is between corresponding vertices"
            if same
            else "meshes differ in topology: the distance is from each vertex of the first to the "
            "nearest vertex of the second"
        )
        + ".</p>",
        html_table(["", A.label, B.label], _summary_rows([A, B])),
        html_table(
            ["distance", "mm"],
            [
                ["mean", stats["mean_mm"]],
                ["median", stats["median_mm"]],
                ["95th percentile", stats["p95_mm"]],
                ["max", stats["max_mm"]],
            ],
        ),  # fmt: skip
        "<h2>Grey-shaded shapes from the same views</h2>",
    ]
    for F in (A, B):
        body.append(f"<h3>{html.escape(F.label)}</h3>")
        body.append(_views_html(shape_views(F.verts, F.faces, VIEW_YAWS, view_size, "grey", **kw),
                                VIEW_YAWS, F.label))  # fmt: skip
    if all(F.texture is not None and F.uvs is not None for F in (A, B)):
        body.append("<h2>Textured</h2>")
        for F in (A, B):
            img = shape_views(F.verts, F.faces, VIEW_YAWS, view_size, "texture", texture=F.texture,
                              uvs=F.uvs, uv_faces=F.uv_faces, **kw)  # fmt: skip
            body.append(f"<h3>{html.escape(F.label)}</h3>" + _views_html(img, VIEW_YAWS, F.label))
    heat = heat_colors(d, 0.0, hi)
    top = "the 95th percentile" if vmax_mm is None else f"{hi:g} mm"
    label = f"distance (mm); the top colour is {top} and above"
    body += [
        f"<h2>Distance on the mesh ({html.escape(A.label)} to {html.escape(B.label)}, mm)</h2>",
        _views_html(
            shape_views(A.verts, A.faces, VIEW_YAWS, view_size, "colors", vertex_colors=heat, **kw),
            VIEW_YAWS,
            "distance",
        ),  # fmt: skip
        f"<div>{_colorbar_svg(0.0, hi, label, 460)}</div>",
        "<h3>Interactive</h3><p class='note'>Buttons: the first shape, the second, the distance.</p>",
        '<div class="plot3d">'
        + _mesh3d_div(
            A.verts,
            A.faces,
            "facelab-compare3d",
            intensity=np.minimum(d, hi).astype(np.float32),
            extra=[(B.label, B.verts)] if same else (),
            colorbar_title="mm",
            base_name=A.label,
        )
        + "</div>",
    ]
    return _page(f"facelab compare: {A.label} vs {B.label}", "".join(body), view_size), stats


def save_compare_report(
    a: Any, b: Any, path: str | Path, labels: Sequence[str] | None = None, **kw: Any
) -> dict[str, Any]:
    """Write :func:`compare_report_html` to ``path``; returns its stats (plus ``"out"``)."""
    text, stats = compare_report_html(a, b, labels, **kw)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return {**stats, "out": str(p)}
