"""Visualisation: plotly 3D meshes (rotatable, also in static pages), image grids, ipywidgets apps.

* :func:`mesh_figure`, :func:`mesh_trace` -- one mesh (smooth/flat shading, colours, landmarks).
* :func:`slider_figure`, :func:`model_slider_figure` -- plotly-slider figures over shapes that
  work without a kernel (static HTML).
* :func:`image_grid` -- a matplotlib Figure or a tiled PIL image of a batch of images.
* :func:`model_explorer` -- an ipywidgets app with sliders for a morphable model (needs a kernel).
* :func:`interactive` -- controls driving any picture a function returns (every widget in the
  book; the initial state is set directly into the widget, no output capture).
"""

from __future__ import annotations

from .images import image_grid, to_hwc
from .meshes import (
    FRONT_CAMERA,
    mesh_figure,
    mesh_trace,
    model_component_shapes,
    model_slider_figure,
    slider_figure,
)
from .widgets import (
    InteractiveFigure,
    ModelExplorer,
    has_figure_widget,
    interactive,
    model_explorer,
    output_items,
)

__all__ = [
    "FRONT_CAMERA",
    "InteractiveFigure",
    "ModelExplorer",
    "has_figure_widget",
    "image_grid",
    "interactive",
    "mesh_figure",
    "mesh_trace",
    "model_component_shapes",
    "model_explorer",
    "model_slider_figure",
    "output_items",
    "slider_figure",
    "to_hwc",
]
