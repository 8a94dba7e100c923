"""Interactive 3D mesh figures with plotly (rotatable in a notebook *and* in a static HTML page).

* :func:`mesh_figure` -- one mesh as a ``go.Mesh3d`` (smooth or flat shading, per-vertex colours
  or a scalar ``intensity`` with a colour bar) plus optional landmarks as a ``go.Scatter3d``.
* :func:`slider_figure` -- several shapes of one topology as plotly animation *frames* driven by
  a plotly slider: the slider runs in the browser, so it works in a static book page without a
  Python kernel (unlike ipywidgets).
* :func:`model_slider_figure` -- a slider over the weight of one component of a morphable model.

The default camera looks at the face from the front: model space has +y up and the face looks
down +z, so the eye is on the +z axis with ``up = (0, 1, 0)``; ``aspectmode="data"`` keeps the
true proportions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput
from .sliders import frame_slider

__all__ = [
    "FRONT_CAMERA",
    "mesh_figure",
    "mesh_trace",
    "model_component_shapes",
    "model_slider_figure",
    "slider_figure",
]

FRONT_CAMERA: dict[str, Any] = {
    "eye": {"x": 0.0, "y": 0.0, "z": 2.0},
    "up": {"x": 0.0, "y": 1.0, "z": 0.0},
    "center": {"x": 0.0, "y": 0.0, "z": 0.0},
}

SKIN = "rgb(222, 190, 170)"

_LIGHTING = {
    "smooth": {"ambient": 0.35, "diffuse": 0.8, "specular": 0.15, "roughness": 0.6, "fresnel": 0.1},
    "flat": {"ambient": 0.35, "diffuse": 0.9, "specular": 0.05, "roughness": 0.9, "fresnel": 0.0},
}
_LIGHT_POSITION = {"x": 0.0, "y": 5e4, "z": 1e5}  # above-front, far away (directional-like)


def _np(x: Any, name: str, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{name} must be array-like, got {type(x).__name__}") from e


def _verts_faces(verts: Any, faces: Any) -> tuple[np.ndarray, np.ndarray]:
    from ..geometry.mesh import Mesh

    if isinstance(verts, Mesh):
        verts, faces = verts.verts, verts.faces if faces is None else faces
    v = _np(verts, "verts", np.float32)
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise InvalidInput(f"verts must have shape (V, 3) (or (1, V, 3)), got {v.shape}")
    if faces is None:
        raise InvalidInput("faces (F, 3) are required (or pass a Mesh)")
    f = _np(faces, "faces", np.int64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise InvalidInput(f"faces must have shape (F, 3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise InvalidInput(f"faces index out of range for {len(v)} vertices")
    return v, f


def _rgb_strings(colors: np.ndarray) -> list[str]:
    c = (np.clip(colors, 0.0, 1.0) * 255.0 + 0.5).astype(np.int64)
    return [f"rgb({r},{g},{b})" for r, g, b in c]


def mesh_trace(
    verts: Any,
    faces: Any = None,
    vertex_colors: Any = None,
    intensity: Any = None,
    shading: str = "smooth",
    color: str = SKIN,
    colorscale: str = "Viridis",
    opacity: float = 1.0,
    name: str = "mesh",
    showscale: bool | None = None,
    cmin: float | None = None,
    cmax: float | None = None,
):
    """A ``plotly.graph_objects.Mesh3d`` for ``verts (V, 3)``, ``faces (F, 3)``.

    Args:
        vertex_colors: optional ``(V, 3)`` RGB in ``[0, 1]``.
        intensity: optional ``(V,)`` scalar per vertex, drawn with ``colorscale`` and a colour bar.
        shading: ``"smooth"`` (interpolated vertex normals) or ``"flat"`` (one normal per face).
    """
    import plotly.graph_objects as go

    if shading not in _LIGHTING:
        raise InvalidInput(f"shading must be 'smooth' or 'flat', got {shading!r}")
    v, f = _verts_faces(verts, faces)
    kw: dict[str, Any] = {}
    if vertex_colors is not None:
        c = _np(vertex_colors, "vertex_colors")
        if c.shape != (len(v), 3):
            raise InvalidInput(f"vertex_colors must have shape ({len(v)}, 3), got {c.shape}")
        kw["vertexcolor"] = _rgb_strings(c)
    elif intensity is not None:
        it = _np(intensity, "intensity").reshape(-1)
        if it.shape != (len(v),):
            raise InvalidInput(f"intensity must have shape ({len(v)},), got {it.shape}")
        kw.update(
            intensity=it.astype(np.float32),
            colorscale=colorscale,
            showscale=True if showscale is None else showscale,
            cmin=float(it.min()) if cmin is None else cmin,
            cmax=float(it.max()) if cmax is None else cmax,
        )
    else:
        kw["color"] = color
    return go.Mesh3d(
        x=v[:, 0],
        y=v[:, 1],
        z=v[:, 2],
        i=f[:, 0].astype(np.int32),
        j=f[:, 1].astype(np.int32),
        k=f[:, 2].astype(np.int32),
        flatshading=shading == "flat",
        lighting=_LIGHTING[shading],
        lightposition=_LIGHT_POSITION,
        opacity=opacity,
        name=name,
        hoverinfo="skip",
        **kw,
    )


def _layout(title: str | None, height: int, width: int | None, show_axes: bool, camera) -> dict:
    axis = {"visible": show_axes, "showbackground": show_axes}
    return {
        "title": {"text": title} if title else None,
        "height": height,
        "width": width,
        "margin": {"l": 0, "r": 0, "t": 40 if title else 10, "b": 0},
        "scene": {
            "aspectmode": "data",
            "camera": camera or FRONT_CAMERA,
            "xaxis": axis,
            "yaxis": axis,
            "zaxis": axis,
            "dragmode": "orbit",
        },
        "showlegend": False,
    }


def mesh_figure(
    verts: Any,
    faces: Any = None,
    vertex_colors: Any = None,
    intensity: Any = None,
    landmarks: Any = None,
    title: str | None = None,
    shading: str = "smooth",
    color: str = SKIN,
    colorscale: str = "Viridis",
    landmark_color: str = "red",
    landmark_size: float = 3.0,
    height: int = 500,
    width: int | None = None,
    show_axes: bool = False,
    camera: dict | None = None,
):
    """A rotatable plotly figure of one mesh; returns ``plotly.graph_objects.Figure``.

    Args:
        verts: ``(V, 3)`` (tensor or array) or a :class:`facelab.geometry.Mesh` (then ``faces``
            may be omitted).
        faces: ``(F, 3)`` triangle indices.
        vertex_colors: ``(V, 3)`` RGB in ``[0, 1]``; or ``intensity (V,)`` for a scalar field.
        landmarks: ``(L,)`` integer vertex indices or ``(L, 3)`` points, drawn as markers.
        shading: ``"smooth"`` or ``"flat"``.
        camera: a plotly ``scene.camera`` dict; default :data:`FRONT_CAMERA` (frontal view).

    Traces: the mesh, then (if given) the landmarks.
    """
    import plotly.graph_objects as go

    from ..geometry.mesh import Mesh

    if isinstance(verts, Mesh) and vertex_colors is None and intensity is None:
        vertex_colors = verts.vertex_colors
    v, f = _verts_faces(verts, faces)
    data = [mesh_trace(v, f, vertex_colors, intensity, shading, color, colorscale)]
    if landmarks is not None:
        lm = _np(landmarks, "landmarks")
        if lm.ndim == 1:
            idx = lm.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= len(v)):
                raise InvalidInput(f"landmark indices out of range for {len(v)} vertices")
            pts = v[idx]
        elif lm.ndim == 2 and lm.shape[1] == 3:
            pts = lm
        else:
            raise InvalidInput(f"landmarks must be (L,) indices or (L, 3) points, got {lm.shape}")
        data.append(
            go.Scatter3d(
                x=pts[:, 0],
                y=pts[:, 1],
                z=pts[:, 2],
                mode="markers",
                marker={"size": landmark_size, "color": landmark_color},
                name="landmarks",
                text=[str(i) for i in range(len(pts))],
                hoverinfo="text",
            )
        )
    return go.Figure(data=data, layout=_layout(title, height, width, show_axes, camera))


def slider_figure(
    frames_verts: Sequence[Any] | torch.Tensor | np.ndarray,
    faces: Any,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    intensities: Sequence[Any] | None = None,
    shading: str = "smooth",
    color: str = SKIN,
    colorscale: str = "Viridis",
    slider_prefix: str = "",
    active: int = 0,
    height: int = 500,
    width: int | None = None,
    camera: dict | None = None,
    play_button: bool = False,
):
    """A figure whose plotly slider switches between shapes of one topology.

    Built from plotly animation frames (one ``go.Frame`` per shape, updating the mesh's x, y, z
    and optionally its ``intensity``), so it needs no Python kernel: it works in a static HTML
    page. Coordinates are stored as float32 to keep pages small.

    Args:
        frames_verts: list of ``(V, 3)`` (or a ``(N, V, 3)`` tensor/array).
        faces: ``(F, 3)``.
        labels: one label per frame (default ``"0"``, ``"1"``, ...), shown on the slider.
        intensities: optional per-frame ``(V,)`` scalars (shared colour range).
        active: index of the frame shown first.
    """
    import plotly.graph_objects as go

    if isinstance(frames_verts, torch.Tensor | np.ndarray):
        arr = _np(frames_verts, "frames_verts", np.float32)
        if arr.ndim != 3:
            raise InvalidInput(f"frames_verts must be (N, V, 3), got {arr.shape}")
        frames = list(arr)
    else:
        frames = [_np(x, "frames_verts", np.float32) for x in frames_verts]
    if not frames:
        raise InvalidInput("slider_figure needs at least one frame")
    v0, f = _verts_faces(frames[0], faces)
    for i, fr in enumerate(frames):
        if fr.shape != v0.shape:
            raise InvalidInput(
                f"frame {i} has shape {fr.shape}, expected {v0.shape} (same topology)"
            )
    n = len(frames)
    labels = [str(i) for i in range(n)] if labels is None else [str(s) for s in labels]
    if len(labels) != n:
        raise InvalidInput(f"got {len(labels)} labels for {n} frames")
    if not 0 <= active < n:
        raise InvalidInput(f"active must be in [0, {n}), got {active}")
    its = None
    cmin = cmax = None
    if intensities is not None:
        its = [_np(x, "intensities", np.float32).reshape(-1) for x in intensities]
        if len(its) != n or any(x.shape != (len(v0),) for x in its):
            raise InvalidInput(f"intensities must be {n} arrays of shape ({len(v0)},)")
        cmin = float(min(x.min() for x in its))
        cmax = float(max(x.max() for x in its))
    base = mesh_trace(
        frames[active],
        f,
        intensity=None if its is None else its[active],
        shading=shading,
        color=color,
        colorscale=colorscale,
        cmin=cmin,
        cmax=cmax,
    )
    updates = []
    for i, fr in enumerate(frames):
        upd: dict[str, Any] = {"x": fr[:, 0], "y": fr[:, 1], "z": fr[:, 2]}
        if its is not None:
            upd["intensity"] = its[i]
        updates.append(go.Mesh3d(**upd))
    return frame_slider(
        updates,
        labels,
        active=active,
        prefix=slider_prefix,
        play=play_button,
        base=[base],
        traces=[0],
        layout=_layout(title, height, width, False, camera),
    )


def _model_count(model: Any, which: str) -> int:
    for attr in (f"n_{which}", f"num_{which}"):
        val = getattr(model, attr, None)
        if val is not None:
            return int(val() if callable(val) else val)
    return int(getattr(model, f"{which}_basis").shape[0])


def _expression_is_blendshape(model: Any) -> bool:
    return getattr(model, "expression_kind", "blendshapes") == "blendshapes"


def _component_label(model: Any, component: str, index: int) -> str:
    if component == "expression":
        names = list(getattr(model, "expression_names", []) or [])
        if index < len(names):
            return names[index]
    return f"{component} {index}"


def model_component_shapes(
    model: Any, component: str, index: int, values: Sequence[float]
) -> torch.Tensor:
    """Shapes ``(N, V, 3)`` = ``model.forward`` with one weight set to each of ``values``.

    ``component`` is ``"identity"`` or ``"expression"``; all other weights are 0.
    """
    if component not in ("identity", "expression"):
        raise InvalidInput(f"component must be 'identity' or 'expression', got {component!r}")
    k = _model_count(model, component)
    if not 0 <= index < k:
        raise InvalidInput(f"model has {k} {component} components; index {index} is out of range")
    vals = torch.as_tensor(list(values), dtype=model.mean.dtype, device=model.mean.device)
    w = torch.zeros(len(vals), index + 1, dtype=vals.dtype, device=vals.device)
    w[:, index] = vals
    kw = {component: w}
    with torch.no_grad():
        return model.forward(**kw)


def model_slider_figure(
    model: Any,
    component: str = "identity",
    index: int = 0,
    values: Sequence[float] | None = None,
    color_by_displacement: bool = True,
    title: str | None = None,
    **kwargs: Any,
):
    """A :func:`slider_figure` sweeping the weight of one model component.

    Default ``values``: ``-3 .. 3`` (standard deviations) for identity and PCA expressions,
    ``0 .. 1`` for blendshape expressions. With ``color_by_displacement`` each frame is coloured
    by its per-vertex distance from the mean shape (in model units).
    """
    if values is None:
        if component == "expression" and _expression_is_blendshape(model):
            values = [0.0, 0.25, 0.5, 0.75, 1.0]
        else:
            values = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    values = [float(x) for x in values]
    shapes = model_component_shapes(model, component, index, values)
    its = None
    if color_by_displacement:
        its = list((shapes - model.mean[None].to(shapes.dtype)).norm(dim=-1))
    label = _component_label(model, component, index)
    active = int(np.argmin(np.abs(np.asarray(values))))
    return slider_figure(
        shapes,
        model.faces,
        labels=[f"{x:+.2f}" for x in values],
        title=title or f"{getattr(model, 'name', 'model')}: {label}",
        intensities=its,
        slider_prefix=f"{label} = ",
        active=active,
        **kwargs,
    )
