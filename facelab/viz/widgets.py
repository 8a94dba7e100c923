"""ipywidgets apps (need a running Python kernel; for static pages use
:func:`facelab.viz.slider_figure`).

:func:`model_explorer` builds sliders for the leading identity and expression components of a
morphable model and redraws a plotly mesh whenever one moves. It uses ``go.FigureWidget`` when
``anywidget`` is installed (plotly >= 6 needs it for FigureWidget), otherwise it re-displays a
``go.Figure`` inside an ``ipywidgets.Output``.

The model API used: ``model.mean (V, 3)``, ``model.faces (F, 3)``,
``model.forward(identity (B, K_id), expression (B, K_exp)) -> (B, V, 3)``, the counts
``model.n_identity`` / ``model.n_expression`` (or ``num_*``), optional ``expression_names``
and ``expression_kind`` (``"blendshapes"``: weights in [0, 1]; else N(0, 1) weights).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from ..errors import BackendUnavailable, InvalidInput
from .meshes import _component_label, _expression_is_blendshape, _model_count, mesh_figure

__all__ = ["ModelExplorer", "has_figure_widget", "model_explorer"]


def has_figure_widget() -> bool:
    """True when ``plotly.graph_objects.FigureWidget`` can be used (``anywidget`` installed)."""
    return importlib.util.find_spec("anywidget") is not None


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as e:
        raise BackendUnavailable(
            "model_explorer needs ipywidgets: pip install 'facelab[book]'"
        ) from e
    return ipywidgets


class ModelExplorer:
    """State of a :func:`model_explorer` app.

    Attributes:
        widget: the ``ipywidgets.HBox`` to display (the object itself also displays as it).
        identity_sliders, expression_sliders: lists of ``ipywidgets.FloatSlider``.
        figure: the plotly figure (``FigureWidget`` or ``Figure``) showing the current shape.
        verts: current vertices ``(V, 3)`` (a tensor).
    """

    def __init__(
        self,
        model: Any,
        n_identity: int = 5,
        n_expression: int = 5,
        identity_range: float = 3.0,
        shading: str = "smooth",
        height: int = 500,
        use_figure_widget: bool | None = None,
        color_by_displacement: bool = False,
    ) -> None:
        w = _ipywidgets()
        import plotly.graph_objects as go

        self.model = model
        self.color_by_displacement = color_by_displacement
        k_id = min(int(n_identity), _model_count(model, "identity"))
        k_exp = min(int(n_expression), _model_count(model, "expression"))
        if n_identity < 0 or n_expression < 0:
            raise InvalidInput("n_identity and n_expression must be >= 0")
        if k_id + k_exp == 0:
            raise InvalidInput("model_explorer needs at least one identity or expression component")
        layout = w.Layout(width="340px")
        style = {"description_width": "110px"}
        self.identity_sliders = [
            w.FloatSlider(
                value=0.0,
                min=-identity_range,
                max=identity_range,
                step=0.1,
                description=f"identity {i}",
                continuous_update=False,
                layout=layout,
                style=style,
            )
            for i in range(k_id)
        ]
        blend = _expression_is_blendshape(model)
        self.expression_sliders = [
            w.FloatSlider(
                value=0.0,
                min=0.0 if blend else -identity_range,
                max=1.0 if blend else identity_range,
                step=0.02 if blend else 0.1,
                description=_component_label(model, "expression", i)[:18],
                continuous_update=False,
                layout=layout,
                style=style,
            )
            for i in range(k_exp)
        ]
        reset = w.Button(description="reset", layout=w.Layout(width="120px"))
        reset.on_click(lambda _b: self.reset())
        self.verts = self._evaluate()
        fig = mesh_figure(
            self.verts,
            model.faces,
            intensity=self._intensity(self.verts),
            shading=shading,
            height=height,
            title=getattr(model, "name", None),
        )
        if use_figure_widget is None:
            use_figure_widget = has_figure_widget()
        self.output = None
        if use_figure_widget:
            self.figure = go.FigureWidget(fig)
            view = self.figure
        else:
            self.figure = fig
            self.output = w.Output()
            view = self.output
            self._redisplay()
        for s in self.identity_sliders + self.expression_sliders:
            s.observe(self._on_change, names="value")
        controls = []
        if self.identity_sliders:
            controls += [w.HTML("<b>identity</b> (std. dev.)"), *self.identity_sliders]
        if self.expression_sliders:
            controls += [w.HTML("<b>expression</b>"), *self.expression_sliders]
        controls.append(reset)
        self.widget = w.HBox([w.VBox(controls), view])

    # ------------------------------------------------------------------------------------------
    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current slider values as ``(identity (1, k_id), expression (1, k_exp))``."""
        ref = self.model.mean
        a = torch.tensor(
            [[s.value for s in self.identity_sliders]], dtype=ref.dtype, device=ref.device
        )
        b = torch.tensor(
            [[s.value for s in self.expression_sliders]], dtype=ref.dtype, device=ref.device
        )
        return a.reshape(1, -1), b.reshape(1, -1)

    def _evaluate(self) -> torch.Tensor:
        a, b = self.weights()
        with torch.no_grad():
            return self.model.forward(identity=a, expression=b)[0]

    def _intensity(self, verts: torch.Tensor):
        if not self.color_by_displacement:
            return None
        return (verts - self.model.mean.to(verts.dtype)).norm(dim=-1)

    def _redisplay(self) -> None:
        # Set the Output widget's outputs directly instead of capturing a display() call in
        # `with self.output:` — the capture routes through the kernel's message hooks, which
        # stalled notebook execution (nbclient waited for the cell's idle message) at random.
        self.output.outputs = ()
        self.output.append_display_data(self.figure)

    def update(self) -> None:
        """Recompute the shape from the sliders and redraw."""
        self.verts = self._evaluate()
        v = self.verts.detach().cpu().numpy().astype(np.float32)
        it = self._intensity(self.verts)
        if self.output is None:
            with self.figure.batch_update():
                tr = self.figure.data[0]
                tr.x, tr.y, tr.z = v[:, 0], v[:, 1], v[:, 2]
                if it is not None:
                    tr.intensity = it.cpu().numpy()
        else:
            tr = self.figure.data[0]
            tr.x, tr.y, tr.z = v[:, 0], v[:, 1], v[:, 2]
            if it is not None:
                tr.intensity = it.cpu().numpy()
            self._redisplay()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def reset(self) -> None:
        """All sliders to 0."""
        for s in self.identity_sliders + self.expression_sliders:
            s.unobserve(self._on_change, names="value")
            s.value = 0.0
            s.observe(self._on_change, names="value")
        self.update()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def model_explorer(
    model: Any,
    n_identity: int = 5,
    n_expression: int = 5,
    identity_range: float = 3.0,
    shading: str = "smooth",
    height: int = 500,
    use_figure_widget: bool | None = None,
    color_by_displacement: bool = False,
) -> Any:
    """An interactive morphable-model explorer: sliders for the first ``n_identity`` identity
    and ``n_expression`` expression weights driving a 3D view.

    Identity sliders span ``±identity_range`` standard deviations; blendshape expression
    sliders span ``[0, 1]`` (PCA expressions like identity). Returns an ``ipywidgets.HBox``
    (display it as the last line of a cell); its ``.explorer`` attribute is the
    :class:`ModelExplorer` holding the sliders, the figure and the current vertices.
    Needs a live kernel -- for a static page use :func:`facelab.viz.model_slider_figure`.
    """
    explorer = ModelExplorer(
        model,
        n_identity=n_identity,
        n_expression=n_expression,
        identity_range=identity_range,
        shading=shading,
        height=height,
        use_figure_widget=use_figure_widget,
        color_by_displacement=color_by_displacement,
    )
    explorer.widget.explorer = explorer
    return explorer.widget
