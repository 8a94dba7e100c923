"""Plotly slider figures that open on the frame you chose and never auto-play.

:func:`frame_slider` is the one way the book (and facelab) makes a figure whose plotly slider
steps through precomputed frames. Such figures need no Python kernel, so they work on a static
HTML page, in JupyterLab and in Colab.

Why a helper: plotly's ``fig.to_html()`` / ``fig.write_html()`` default to ``auto_play=True``,
which adds ``Plotly.animate(...)`` after the plot is drawn: the figure plays through every frame
on load and ends on the last one, whatever the slider's ``active`` step says (and mid-animation
the slider label and the picture disagree). The figures made here are ``SliderFigure``
objects (a ``go.Figure`` subclass), whose ``show``, ``to_html``, ``write_html`` and notebook display all pass
``auto_play=False``; the first picture is the ``active`` frame, and the slider agrees with it.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput

__all__ = ["frame_slider", "image_uri"]

_STEP_ANIM: dict[str, Any] = {
    "mode": "immediate",
    "frame": {"duration": 0, "redraw": True},
    "transition": {"duration": 0},
}


def image_uri(image: Any, fmt: str = "png", quality: int = 90) -> str:
    """A ``data:`` URI of an image: a PIL image, or a tensor/array ``(3, H, W)`` / ``(H, W, 3)``
    / ``(H, W)`` with values in ``[0, 1]`` (floats) or ``0..255`` (uint8). ``fmt``: png or jpeg."""
    from PIL import Image

    if isinstance(image, str):
        if not image.startswith("data:"):
            raise InvalidInput("image_uri: a string must already be a data: URI")
        return image
    if not isinstance(image, Image.Image):
        arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise InvalidInput(
                f"image_uri: expected (3, H, W), (H, W, 3) or (H, W), got {arr.shape}"
            )
        if arr.dtype != np.uint8:
            arr = (np.clip(np.nan_to_num(arr.astype(np.float64)), 0.0, 1.0) * 255 + 0.5).astype(
                np.uint8
            )
        image = Image.fromarray(arr)
    fmt = fmt.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise InvalidInput(f"image_uri: fmt must be png or jpeg, got {fmt!r}")
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG")
        mime = "png"
    else:
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
        mime = "jpeg"
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode()


@functools.cache
def _figure_class() -> type:
    import plotly.graph_objects as go

    class SliderFigure(go.Figure):
        """A ``go.Figure`` with animation frames that never auto-plays when it is shown or saved.

        ``show``, ``to_html``, ``write_html`` and the notebook display default to
        ``auto_play=False`` (plotly's own default for the last two is ``True``).
        """

        def show(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("auto_play", False)
            return super().show(*args, **kwargs)

        def to_html(self, *args: Any, **kwargs: Any) -> str:
            kwargs.setdefault("auto_play", False)
            return super().to_html(*args, **kwargs)

        def write_html(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("auto_play", False)
            return super().write_html(*args, **kwargs)

        def _repr_mimebundle_(self, include=None, exclude=None, validate=True, **kwargs):  # noqa: ANN001
            kwargs.setdefault("auto_play", False)
            return super()._repr_mimebundle_(include, exclude, validate, **kwargs)

        def _ipython_display_(self) -> None:
            import plotly.io as pio

            if pio.renderers.render_on_display and pio.renderers.default:
                pio.show(self, auto_play=False)
            else:
                print(repr(self))

    SliderFigure.__module__ = __name__
    SliderFigure.__qualname__ = "SliderFigure"
    return SliderFigure


def __getattr__(name: str) -> Any:
    if name == "SliderFigure":
        return _figure_class()
    raise AttributeError(name)


def _as_traces(frame: Any, fmt: str) -> list[Any]:
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType

    if isinstance(frame, BaseTraceType | dict):
        return [frame]
    if (
        isinstance(frame, list | tuple)
        and frame
        and all(isinstance(t, BaseTraceType | dict) for t in frame)
    ):
        return list(frame)
    return [go.Image(source=image_uri(frame, fmt))]  # an image (PIL, tensor, array, data URI)


def frame_slider(
    frames: Sequence[Any],
    labels: Sequence[Any] | None = None,
    *,
    active: int = 0,
    prefix: str = "",
    title: str | None = None,
    height: int | None = None,
    width: int | None = None,
    play: bool = False,
    play_duration_ms: int = 200,
    base: Sequence[Any] | None = None,
    traces: Sequence[int] | None = None,
    image_format: str = "png",
    layout: dict | None = None,
) -> Any:
    """A plotly figure whose slider steps through precomputed frames; it opens on ``active``.

    Args:
        frames: one entry per slider step: an image (PIL image, ``(3, H, W)``/``(H, W, 3)``
            tensor or array in ``[0, 1]``, or a ``data:`` URI), a plotly trace, or a list of
            traces (the same number and types in every frame).
        labels: one label per frame (shown on the slider; default ``"0"``, ``"1"``, ...).
        active: the frame shown first; the slider starts there too.
        prefix: text before the current label (e.g. ``"yaw "``).
        title, height, width: layout shortcuts; ``layout`` is merged last.
        play: add a ▶ button that plays the frames from the current one (never on load).
        base: the figure's initial traces, when ``frames`` hold partial updates of them
            (with ``traces``, the indices the updates apply to). Default: ``frames[active]``.
        image_format: ``"png"`` or ``"jpeg"`` for image frames.

    Returns:
        a ``SliderFigure`` (a ``go.Figure`` subclass): it never auto-plays when shown or saved.

    Image frames get hidden axes and tight margins; the top margin leaves room for the title
    and the plotly toolbar.
    """
    n = len(frames)
    if n == 0:
        raise InvalidInput("frame_slider needs at least one frame")
    labels = [str(i) for i in range(n)] if labels is None else [str(s) for s in labels]
    if len(labels) != n:
        raise InvalidInput(f"frame_slider: got {len(labels)} labels for {n} frames")
    if len(set(labels)) != n:
        raise InvalidInput("frame_slider: labels must be unique (they name the frames)")
    if not 0 <= active < n:
        raise InvalidInput(f"frame_slider: active must be in [0, {n}), got {active}")
    import plotly.graph_objects as go

    data = [_as_traces(f, image_format) for f in frames]
    counts = {len(d) for d in data}
    if base is None and len(counts) != 1:
        raise InvalidInput("frame_slider: every frame must have the same number of traces")
    is_image = all(
        isinstance(t, go.Image) or (isinstance(t, dict) and t.get("type") == "image")
        for d in data
        for t in d
    )
    go_frames = [
        go.Frame(data=d, name=lab, **({"traces": list(traces)} if traces is not None else {}))
        for d, lab in zip(data, labels)
    ]
    lay: dict[str, Any] = {}
    if is_image:
        lay.update(
            xaxis={"visible": False},
            yaxis={"visible": False},
            margin={"l": 0, "r": 0, "t": 60 if title else 30, "b": 0},
        )
    if title is not None:
        lay["title"] = {"text": title, "y": 0.98, "yanchor": "top"}
    if height is not None:
        lay["height"] = height
    if width is not None:
        lay["width"] = width
    steps = [{"label": lab, "method": "animate", "args": [[lab], _STEP_ANIM]} for lab in labels]
    slider: dict[str, Any] = {
        "active": active,
        "steps": steps,
        "currentvalue": {"prefix": prefix, "visible": True},
        "pad": {"t": 10, "b": 10},
    }
    if play:
        slider.update(x=0.12, len=0.88)
        lay["updatemenus"] = [
            {
                "type": "buttons",
                "showactive": False,
                "x": 0.0,
                "y": 0.0,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 10},
                "buttons": [
                    {
                        "label": "▶",
                        "method": "animate",
                        "args": [
                            None,
                            {
                                **_STEP_ANIM,
                                "frame": {"duration": play_duration_ms, "redraw": True},
                                "fromcurrent": True,
                            },
                        ],
                    }
                ],
            }
        ]
    lay["sliders"] = [slider]
    fig = _figure_class()(data=list(base) if base is not None else data[active], frames=go_frames)
    fig.update_layout(**lay)
    if layout:
        fig.update_layout(**layout)
    return fig
