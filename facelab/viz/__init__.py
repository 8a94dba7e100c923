"""Visualisation: plotly 3D meshes (rotatable, also in static pages), image grids, ipywidgets apps.

* :func:`mesh_figure`, :func:`mesh_trace` -- one mesh (smooth/flat shading, colours, landmarks).
* :func:`frame_slider` -- THE way to make a plotly slider figure over precomputed frames
  (images or traces): it opens on the ``active`` frame and never auto-plays
  (a ``SliderFigure``); :func:`image_uri` encodes an image for it.
* :func:`slider_figure`, :func:`model_slider_figure` -- slider figures over shapes of one
  topology (built with :func:`frame_slider`); all work without a kernel (static HTML).
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
from .sliders import frame_slider, image_uri
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
    "frame_slider",
    "has_figure_widget",
    "image_grid",
    "image_uri",
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
