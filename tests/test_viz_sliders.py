"""facelab.viz.frame_slider: slider figures open on their active frame and never auto-play."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.mesh import icosphere
from facelab.viz import frame_slider, image_uri, slider_figure


def _images(n: int) -> list[torch.Tensor]:
    return [torch.full((3, 4, 5), i / max(n - 1, 1)) for i in range(n)]


def test_plotly_default_to_html_autoplays_frames():
    # The failure this helper exists for: a plain go.Figure with frames animates on load.
    fig = go.Figure(go.Scatter(x=[0], y=[0]), frames=[go.Frame(data=[go.Scatter(x=[1], y=[1])])])
    assert "Plotly.animate" in fig.to_html(include_plotlyjs=False)


def test_frame_slider_never_autoplays_in_html():
    fig = frame_slider(_images(3), ["a", "b", "c"], active=1, prefix="x ", play=True)
    for html in (
        fig.to_html(include_plotlyjs=False),
        pio.to_html(fig, include_plotlyjs=False, auto_play=False),
    ):
        assert "Plotly.animate" not in html
    # notebook display: every HTML renderer gets auto_play=False through the mime bundle
    bundle = fig._repr_mimebundle_()
    assert all("Plotly.animate" not in str(v) for v in bundle.values())


def test_frame_slider_opens_on_active_frame():
    imgs = _images(4)
    fig = frame_slider(imgs, ["-1", "0", "+1", "+2"], active=2, prefix="yaw ")
    assert fig.layout.sliders[0].active == 2
    assert fig.data[0].source == image_uri(imgs[2])  # the picture shown first is frame 2
    assert [f.name for f in fig.frames] == ["-1", "0", "+1", "+2"]
    assert [list(s.args[0]) for s in fig.layout.sliders[0].steps] == [["-1"], ["0"], ["+1"], ["+2"]]
    assert all(s.method == "animate" for s in fig.layout.sliders[0].steps)
    assert fig.layout.xaxis.visible is False  # image frames: no axes


def test_frame_slider_trace_frames_and_errors():
    frames = [[go.Scatter(x=[i], y=[i]), go.Scatter(x=[-i], y=[i])] for i in range(3)]
    fig = frame_slider(frames, active=0, title="t")
    assert len(fig.data) == 2 and tuple(fig.data[1].x) == (0,)
    assert fig.layout.title.text == "t"
    with pytest.raises(InvalidInput):
        frame_slider([], [])
    with pytest.raises(InvalidInput):
        frame_slider(_images(2), ["a"])
    with pytest.raises(InvalidInput):
        frame_slider(_images(2), ["a", "a"])
    with pytest.raises(InvalidInput):
        frame_slider(_images(2), active=2)
    with pytest.raises(InvalidInput):
        frame_slider([[go.Scatter()], [go.Scatter(), go.Scatter()]])


def test_image_uri_round_trip():
    from PIL import Image

    img = np.zeros((6, 7, 3), np.uint8)
    img[2, 3] = (255, 10, 20)
    uri = image_uri(img)
    import base64
    import io

    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert back.shape == (6, 7, 3) and (back == img).all()
    chw = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    assert image_uri(chw) == uri
    assert image_uri(uri) is uri
    assert image_uri(img, "jpeg").startswith("data:image/jpeg;base64,")
    with pytest.raises(InvalidInput):
        image_uri(np.zeros((2, 2, 2, 2)))


def test_mesh_slider_figure_uses_frame_slider():
    v, f = icosphere(1)
    fig = slider_figure([v, v * 2], f, labels=["1x", "2x"], active=1, play_button=True)
    html = fig.to_html(include_plotlyjs=False)
    assert "Plotly.animate" not in html
    assert fig.layout.sliders[0].active == 1
    spec = json.loads(fig.to_json())
    assert spec["frames"][0]["traces"] == [0]
    np.testing.assert_allclose(np.asarray(fig.data[0].x), (v * 2)[:, 0].numpy(), rtol=1e-6)
