"""Tests for facelab.viz: plotly mesh figures, slider figures, image grids, the model explorer."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.mesh import Mesh, icosphere
from facelab.viz import (
    image_grid,
    mesh_figure,
    model_component_shapes,
    model_explorer,
    model_slider_figure,
    slider_figure,
    to_hwc,
)


class FakeModel:
    """The MorphableModel API surface viz relies on, on a small icosphere."""

    def __init__(self, k_id=4, k_exp=3):
        v, f = icosphere(1)
        g = torch.Generator().manual_seed(0)
        self.mean = v
        self.faces = f
        self.identity_basis = 0.1 * torch.randn(k_id, len(v), 3, generator=g)
        self.expression_basis = 0.1 * torch.randn(k_exp, len(v), 3, generator=g)
        self.expression_names = [f"exp{i}" for i in range(k_exp)]
        self.expression_kind = "blendshapes"
        self.name = "fake"

    @property
    def n_identity(self):
        return self.identity_basis.shape[0]

    @property
    def n_expression(self):
        return self.expression_basis.shape[0]

    def forward(self, identity=None, expression=None):
        ref = identity if identity is not None else expression
        out = self.mean.expand(ref.shape[0], -1, -1).clone()
        if identity is not None and identity.shape[1]:
            out = out + torch.einsum(
                "bk,kvc->bvc", identity, self.identity_basis[: identity.shape[1]]
            )
        if expression is not None and expression.shape[1]:
            out = out + torch.einsum(
                "bk,kvc->bvc", expression, self.expression_basis[: expression.shape[1]]
            )
        return out


def test_mesh_figure_traces_and_camera():
    v, f = icosphere(1)
    fig = mesh_figure(v, f, title="sphere")
    assert isinstance(fig, go.Figure) and len(fig.data) == 1
    tr = fig.data[0]
    assert tr.type == "mesh3d" and len(tr.i) == len(f) and len(tr.x) == len(v)
    np.testing.assert_array_equal(np.asarray(tr.j), f[:, 1].numpy())
    assert fig.layout.scene.aspectmode == "data"
    assert fig.layout.scene.camera.up.y == 1 and fig.layout.scene.camera.eye.z > 0
    assert tr.flatshading is False
    fig2 = mesh_figure(v, f, landmarks=torch.tensor([0, 5, 7]), shading="flat")
    assert len(fig2.data) == 2 and fig2.data[1].type == "scatter3d"
    np.testing.assert_allclose(np.asarray(fig2.data[1].x), v[[0, 5, 7], 0].numpy(), rtol=1e-6)
    assert fig2.data[0].flatshading is True


def test_mesh_figure_colours_and_mesh_input():
    v, f = icosphere(1)
    colors = (v * 0.5 + 0.5).clamp(0, 1)
    fig = mesh_figure(v, f, vertex_colors=colors)
    assert len(fig.data[0].vertexcolor) == len(v) and fig.data[0].vertexcolor[0].startswith("rgb(")
    fig = mesh_figure(v, f, intensity=v[:, 2])
    assert fig.data[0].showscale and fig.data[0].cmin == pytest.approx(float(v[:, 2].min()))
    fig = mesh_figure(Mesh(v, f, vertex_colors=colors), landmarks=v[:2])
    assert len(fig.data) == 2 and fig.data[0].vertexcolor is not None
    # renders to HTML without a kernel
    assert "plotly" in fig.to_html(include_plotlyjs=False, full_html=False)


def test_mesh_figure_errors():
    v, f = icosphere(0)
    with pytest.raises(InvalidInput, match="out of range"):
        mesh_figure(v, f + 1)
    with pytest.raises(InvalidInput, match="vertex_colors"):
        mesh_figure(v, f, vertex_colors=torch.zeros(3, 3))
    with pytest.raises(InvalidInput, match="shading"):
        mesh_figure(v, f, shading="phong")
    with pytest.raises(InvalidInput, match="landmark"):
        mesh_figure(v, f, landmarks=torch.tensor([100]))


def test_slider_figure_frames_and_steps():
    v, f = icosphere(1)
    frames = [v * s for s in (0.5, 1.0, 1.5, 2.0)]
    fig = slider_figure(frames, f, labels=["a", "b", "c", "d"], active=1)
    assert len(fig.frames) == 4 and len(fig.data) == 1
    assert [fr.name for fr in fig.frames] == ["a", "b", "c", "d"]
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 4 and steps[2].method == "animate" and list(steps[2].args[0]) == ["c"]
    np.testing.assert_allclose(
        np.asarray(fig.frames[3].data[0].x), (v[:, 0] * 2).numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(fig.data[0].x), v[:, 0].numpy(), rtol=1e-6
    )  # active frame
    html = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "sliders" in html and "frames" in html.lower()
    with pytest.raises(InvalidInput, match="labels"):
        slider_figure(frames, f, labels=["a"])
    with pytest.raises(InvalidInput, match="same topology"):
        slider_figure([v, v[:-1]], f)


def test_model_slider_figure():
    m = FakeModel()
    fig = model_slider_figure(m, "identity", 2, values=[-2.0, 0.0, 2.0])
    assert len(fig.frames) == 3 and fig.layout.sliders[0].active == 1
    # frame values = mean +/- 2 * basis[2]
    x = np.asarray(fig.frames[0].data[0].x)
    np.testing.assert_allclose(
        x, (m.mean - 2 * m.identity_basis[2])[:, 0].numpy(), rtol=1e-5, atol=1e-6
    )
    its = np.asarray(fig.frames[2].data[0].intensity)
    np.testing.assert_allclose(its, (2 * m.identity_basis[2]).norm(dim=-1).numpy(), rtol=1e-5)
    fig = model_slider_figure(m, "expression", 1)
    assert len(fig.frames) == 5 and "exp1" in fig.layout.title.text
    shapes = model_component_shapes(m, "expression", 0, [1.0])
    torch.testing.assert_close(shapes[0], m.mean + m.expression_basis[0])
    with pytest.raises(InvalidInput, match="out of range"):
        model_slider_figure(m, "identity", 10)
    with pytest.raises(InvalidInput, match="component"):
        model_slider_figure(m, "albedo", 0)


def test_image_grid_matplotlib_and_pil():
    pytest.importorskip("matplotlib")
    imgs = torch.rand(5, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    fig = image_grid(imgs, nrow=3, titles=[f"im{i}" for i in range(5)])
    axes = fig.get_axes()
    assert len(axes) == 6  # 2 rows x 3, the spare one hidden
    assert [a.get_title() for a in axes[:5]] == [f"im{i}" for i in range(5)]
    assert len(axes[5].get_images()) == 0
    png = fig._repr_png_()  # notebooks show it without pyplot
    assert png.startswith(b"\x89PNG")
    np.testing.assert_allclose(
        axes[1].get_images()[0].get_array(), imgs[1].permute(1, 2, 0).numpy()
    )
    pil = image_grid(imgs, nrow=3, as_pil=True, padding=2)
    assert pil.size == (3 * 12 + 4 * 2, 2 * 8 + 3 * 2)
    arr = np.asarray(pil).astype(np.float32) / 255
    np.testing.assert_allclose(arr[2:10, 2:14], imgs[0].permute(1, 2, 0).numpy(), atol=1 / 255)
    # list input with mixed layouts, uint8 and grey
    from PIL import Image

    mixed = [
        np.zeros((8, 12, 3)),
        torch.ones(3, 8, 12),
        np.full((8, 12), 128, np.uint8),
        Image.new("RGB", (12, 8)),
    ]
    fig = image_grid(mixed)
    assert len([a for a in fig.get_axes() if a.get_images()]) == 4


def test_image_grid_errors():
    with pytest.raises(InvalidInput, match="titles"):
        image_grid(torch.rand(2, 3, 4, 4), titles=["a"], as_pil=True)
    with pytest.raises(InvalidInput, match="shape"):
        to_hwc(np.zeros((2, 5, 5, 5)))
    with pytest.raises(InvalidInput, match="NaN"):
        image_grid(torch.full((1, 3, 2, 2), float("nan")), as_pil=True)


@pytest.mark.parametrize("use_figure_widget", [False])
def test_model_explorer_updates_with_sliders(use_figure_widget, monkeypatch):
    ipywidgets = pytest.importorskip("ipywidgets")
    import facelab.viz.widgets as vw

    shown = []
    monkeypatch.setattr(vw, "output_items", lambda obj: (shown.append(obj), ())[1])
    m = FakeModel()
    w = model_explorer(m, n_identity=2, n_expression=5, use_figure_widget=use_figure_widget)
    assert isinstance(w, ipywidgets.Widget)
    ex = w.explorer
    assert len(ex.identity_sliders) == 2 and len(ex.expression_sliders) == 3  # clipped to model
    assert ex.expression_sliders[0].min == 0.0 and ex.expression_sliders[0].max == 1.0
    assert ex.identity_sliders[0].min == -3.0
    torch.testing.assert_close(ex.verts, m.mean)
    ex.identity_sliders[1].value = 1.5
    ex.expression_sliders[2].value = 0.5
    expected = m.mean + 1.5 * m.identity_basis[1] + 0.5 * m.expression_basis[2]
    torch.testing.assert_close(ex.verts, expected)
    np.testing.assert_allclose(
        np.asarray(ex.figure.data[0].x), expected[:, 0].numpy(), rtol=1e-5, atol=1e-6
    )
    ex.reset()
    torch.testing.assert_close(ex.verts, m.mean)
    # the Output widget holds exactly the current figure as its state (set directly, not by
    # capturing display(): that capture stalled notebook execution with large meshes), so a
    # static page shows the figure and each update replaces it
    assert len(shown) == 4 and all(f is ex.figure for f in shown)  # built + 3 updates
    assert ex.output.outputs == ()  # replaced on each update (the stub returns nothing)
    np.testing.assert_allclose(np.asarray(shown[-1].data[0].x), m.mean[:, 0].numpy(), atol=1e-6)
    with pytest.raises(InvalidInput, match="at least one"):
        model_explorer(m, n_identity=0, n_expression=0)


def test_viz_with_real_morphable_model_class():
    morph = pytest.importorskip("facelab.models.morphable")
    pytest.importorskip("ipywidgets")
    fake = FakeModel()
    m = morph.MorphableModel(
        mean=fake.mean,
        faces=fake.faces,
        identity_basis=fake.identity_basis,
        expression_basis=fake.expression_basis,
        expression_names=fake.expression_names,
        name="tiny",
    )
    fig = model_slider_figure(m, "expression", 2, values=[0.0, 1.0])
    np.testing.assert_allclose(
        np.asarray(fig.frames[1].data[0].y),
        (fake.mean + fake.expression_basis[2])[:, 1].numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    ex = model_explorer(m, n_identity=3, n_expression=2, use_figure_widget=False).explorer
    ex.identity_sliders[0].value = -1.0
    torch.testing.assert_close(ex.verts, fake.mean - fake.identity_basis[0])


def test_interactive_renders_initial_state_without_a_kernel_and_updates_on_change():
    ipywidgets = pytest.importorskip("ipywidgets")
    from PIL import Image

    from facelab.viz import interactive

    calls = []

    def render(size, label):
        calls.append((size, label))
        return Image.new("RGB", (size, size), (255, 0, 0)), f"{label} at {size} px"

    w = interactive(
        render,
        size=ipywidgets.IntSlider(value=4, min=2, max=16),
        label=ipywidgets.Dropdown(options=["a", "b"], value="a"),
    )
    app = w.interactive
    # no kernel and no comm here: the initial picture is already the Output widget's state
    assert calls == [(4, "a")]
    kinds = [o["output_type"] for o in app.output.outputs]
    assert kinds == ["display_data", "stream"]
    png = app.output.outputs[0]["data"]["image/png"]
    # nbformat's form: base64 text, so the saved widget state carries no binary buffer (a
    # static page's widget manager shows a buffer as a broken image)
    assert isinstance(png, str) and base64.b64decode(png).startswith(b"\x89PNG")
    from ipywidgets.widgets.widget import _remove_buffers

    _, buffer_paths, _ = _remove_buffers(app.output.get_state())
    assert buffer_paths == []
    assert app.output.outputs[1]["text"] == "a at 4 px\n"
    assert app.controls["size"].description == "size"  # named after its keyword
    # a control change re-renders and replaces (does not append to) the outputs
    app.controls["size"].value = 8
    app.controls["label"].value = "b"
    assert calls[-1] == (8, "b") and app.calls == 3
    assert len(app.output.outputs) == 2 and app.output.outputs[1]["text"] == "b at 8 px\n"
    data = app.output.outputs[0]["data"]["image/png"]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (8, 8)
    # the app never went through display() capture: the Output widget has no msg_id set
    assert app.output.msg_id == ""


def test_interactive_errors():
    ipywidgets = pytest.importorskip("ipywidgets")
    from facelab.viz import interactive

    with pytest.raises(InvalidInput, match="callable"):
        interactive(42, x=ipywidgets.IntSlider())
    with pytest.raises(InvalidInput, match="not an ipywidgets control"):
        interactive(lambda x: None, x=3)

    def bad(x):
        if x > 1:
            raise ValueError("too big")
        return "ok"

    with pytest.raises(ValueError, match="too big"):  # the initial state fails the cell
        interactive(bad, x=ipywidgets.IntSlider(value=2))
    w = interactive(bad, x=ipywidgets.IntSlider(value=0))
    w.interactive.controls["x"].value = 5  # a callback error is shown, not lost
    (out,) = w.interactive.output.outputs
    assert out["name"] == "stderr" and "too big" in out["text"]


def test_apps_display_as_their_widget():
    ipywidgets = pytest.importorskip("ipywidgets")
    from facelab.viz import interactive
    from facelab.viz.widgets import WidgetApp

    app = interactive(lambda n: f"{n}", n=ipywidgets.IntSlider(value=1)).interactive
    ex = model_explorer(FakeModel(), n_identity=1, n_expression=1).explorer
    for a in (app, ex):
        assert isinstance(a, WidgetApp)
        bundle = a._repr_mimebundle_()
        assert bundle == a.widget._repr_mimebundle_()
        assert a.widget.model_id in str(bundle)  # the box itself, not the app's repr
