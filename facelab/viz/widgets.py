"""ipywidgets apps (need a running Python kernel; for static pages use
:func:`facelab.viz.slider_figure`).

:func:`interactive` is the one way the book builds an interactive picture: controls plus an
``ipywidgets.Output`` whose outputs are *set directly* from what a render function returns, for
the initial state and on every change. Nothing is captured with ``with out:`` or
``widgets.interact`` (both route ``display()`` through the kernel's output hooks, which races
with nbclient and stalled book builds for the 900 s timeout: nbclient issue 312).

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

import base64
import importlib.util
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..errors import BackendUnavailable, InvalidInput
from .meshes import _component_label, _expression_is_blendshape, _model_count, mesh_figure

__all__ = [
    "InteractiveFigure",
    "ModelExplorer",
    "WidgetApp",
    "has_figure_widget",
    "interactive",
    "model_explorer",
    "output_items",
]


def has_figure_widget() -> bool:
    """True when ``plotly.graph_objects.FigureWidget`` can be used (``anywidget`` installed)."""
    return importlib.util.find_spec("anywidget") is not None


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as e:
        raise BackendUnavailable(
            "facelab's widgets need ipywidgets: pip install 'facelab[book]'"
        ) from e
    return ipywidgets


def _formatter():
    """The running kernel's display formatter (so its registered formatters apply), else the
    formatter of a plain IPython shell instance (what ``Output.append_display_data`` uses)."""
    from IPython import get_ipython
    from IPython.core.interactiveshell import InteractiveShell

    shell = get_ipython() or InteractiveShell.instance()
    return shell.display_formatter.format


def output_items(result: Any) -> tuple[dict, ...]:
    """Notebook output dicts (nbformat ``display_data`` / ``stream``) for a render result.

    ``None`` gives no output; a ``str`` a stdout text; a ``tuple``/``list`` one output per item,
    in order; anything else (a PIL image, a plotly or matplotlib figure, an IPython display
    object) one ``display_data`` formatted as ``display(obj)`` would format it.
    """
    items = result if isinstance(result, (tuple, list)) else (result,)
    fmt = None
    out = []
    for obj in items:
        if obj is None:
            continue
        if isinstance(obj, str):
            text = obj if obj.endswith("\n") else obj + "\n"
            out.append({"output_type": "stream", "name": "stdout", "text": text})
            continue
        fmt = fmt or _formatter()
        data, metadata = fmt(obj)
        out.append({"output_type": "display_data", "data": _text_data(data), "metadata": metadata})
    return tuple(out)


def _text_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The mime bundle as nbformat stores it: binary values (a PNG's or JPEG's bytes)
    base64-encoded into ``str``.

    IPython's formatter returns raw ``bytes`` for images. Set into an ``Output`` widget's
    ``outputs`` as they are, they travel as binary buffers of the widget state, which the static
    page's widget manager hands to its image renderer undecoded: a broken image on the site.
    """
    return {
        k: base64.b64encode(bytes(v)).decode("ascii")
        if isinstance(v, (bytes, bytearray, memoryview))
        else v
        for k, v in data.items()
    }


class WidgetApp:
    """The base of facelab's notebook apps (:class:`InteractiveFigure`,
    :class:`ModelExplorer`): the object displays as its ``widget`` (a notebook shows the box
    when the object is the last line of a cell) and redraws, ``update()``, whenever a control
    it observes with ``_on_change`` changes."""

    widget: Any

    def update(self) -> None:  # pragma: no cover - every app defines it
        raise NotImplementedError

    def _on_change(self, _change: dict) -> None:
        self.update()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class InteractiveFigure(WidgetApp):
    """State of an :func:`interactive` app.

    Attributes:
        render: the function called with the controls' values as keyword arguments.
        controls: name -> ipywidgets control (anything with a ``value`` trait).
        output: the ``ipywidgets.Output`` whose ``outputs`` hold the current picture.
        widget: the box to display (controls above or beside the output; ``None`` with
            ``layout=None``, when the caller lays out ``output`` and the controls itself).
        calls: how many times ``render`` ran (1 after construction).
    """

    def __init__(
        self,
        render: Callable[..., Any],
        controls: Mapping[str, Any],
        layout: str | None = "vertical",
    ) -> None:
        w = _ipywidgets()
        if not callable(render):
            raise InvalidInput(f"interactive: render must be callable, got {type(render).__name__}")
        if layout not in ("vertical", "horizontal", None):
            raise InvalidInput(
                f"interactive: layout must be 'vertical' or 'horizontal', got {layout!r}"
            )
        for name, c in controls.items():
            if not hasattr(c, "value") or not hasattr(c, "observe"):
                raise InvalidInput(
                    f"interactive: control {name!r} is not an ipywidgets control "
                    f"(got {type(c).__name__})"
                )
            if hasattr(c, "description") and not c.description:
                c.description = name
        self.render = render
        self.controls = dict(controls)
        self.calls = 0
        self.output = w.Output()
        self.update(raise_errors=True)  # the initial state, set directly (an error fails the cell)
        for c in self.controls.values():
            c.observe(self._on_change, names="value")
        self.widget = None  # layout=None: the caller places self.output and the controls
        if layout is not None:
            box = w.VBox if layout == "vertical" else w.HBox
            inner = w.HBox if layout == "vertical" else w.VBox
            self.widget = box([inner(list(self.controls.values())), self.output])
            self.widget.interactive = self

    def values(self) -> dict[str, Any]:
        """The controls' current values by name."""
        return {name: c.value for name, c in self.controls.items()}

    def update(self, raise_errors: bool = False) -> None:
        """Call ``render`` with the current values and set the output to what it returns.

        An exception in a callback (``raise_errors=False``) is shown as the output (stderr text),
        as ``widgets.interact`` would show it, instead of vanishing into the kernel log.
        """
        self.calls += 1
        try:
            items = output_items(self.render(**self.values()))
        except Exception:
            if raise_errors:
                raise
            text = traceback.format_exc()
            items = ({"output_type": "stream", "name": "stderr", "text": text},)
        self.output.outputs = items


def interactive(render: Callable[..., Any], /, layout: str = "vertical", **controls: Any) -> Any:
    """An interactive picture: ``render(**values)`` redrawn whenever a control moves.

    Args:
        render: called with one keyword argument per control; it *returns* what to show
            (a PIL image, a figure, a string, or a tuple of these shown in order) instead of
            calling ``display``/``print``.
        layout: ``"vertical"`` (controls in a row above the picture) or ``"horizontal"``.
        **controls: name -> ipywidgets control (``FloatSlider``, ``Dropdown``, ...); a control
            without a description gets its name.

    Returns:
        an ``ipywidgets.VBox``/``HBox`` (display it as the last line of a cell); its
        ``.interactive`` attribute is the :class:`InteractiveFigure` (``.output``, ``.update``).

    The initial state is rendered before the function returns and written straight into the
    Output widget's ``outputs``, so the saved widget state of a static page shows it and no
    kernel output capture is involved (the stall of ``widgets.interact`` under nbclient).
    Use it instead of ``widgets.interact`` / ``interactive_output`` / ``with out:``.
    """
    return InteractiveFigure(render, controls, layout=layout).widget


class ModelExplorer(WidgetApp):
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
            # the one widget helper owns the Output widget and writes the figure into it
            self.app = InteractiveFigure(lambda: self.figure, {}, layout=None)
            self.output = self.app.output
            view = self.output
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
        # The Output widget's outputs are set directly (InteractiveFigure.update) instead of
        # capturing a display() call in `with self.output:` — the capture routes through the
        # kernel's message hooks, which stalled notebook execution at random.
        self.app.update(raise_errors=True)

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

    def reset(self) -> None:
        """All sliders to 0."""
        for s in self.identity_sliders + self.expression_sliders:
            s.unobserve(self._on_change, names="value")
            s.value = 0.0
            s.observe(self._on_change, names="value")
        self.update()


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
