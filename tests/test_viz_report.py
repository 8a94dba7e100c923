"""The fit report (facelab.viz.report), the GLB beside the OBJ, and `facelab compare`.

The FitResults here are packaged from known parameters (no optimisation: the report must take
whatever any method returns), so the tests run in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import re
from html.parser import HTMLParser

import pytest
import torch

from facelab.cli import main
from facelab.fit.api import package_result
from facelab.fit.result import FitResult, face_region, loss_svg
from facelab.geometry.camera import intrinsics, project
from facelab.models import FaceParams, load
from facelab.models.morphable import pose_points
from facelab.render.shading import sh_ambient
from facelab.viz import report as rep

torch.set_num_threads(1)

SIZE = 128
HAS_TRIMESH = importlib.util.find_spec("trimesh") is not None


class _Page(HTMLParser):
    """Collects tags with their attributes, and the text of every <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        elif tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        elif self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    return p


def _no_scripts(text: str) -> str:
    return re.sub(r"<script.*?</script>", "", text, flags=re.S)


def _assert_offline(page: _Page) -> None:
    """No element loads or links anything from a server (src / href / xlink:href)."""
    for tag, attrs in page.tags:
        for k in ("src", "href", "xlink:href", "data"):
            v = attrs.get(k, "").strip().lower()
            assert not re.match(r"^(https?:)?//", v), f"<{tag} {k}={v[:60]}> is an external URL"


@pytest.fixture(scope="module")
def model():
    return load("builtin")


def _result(model, shift: float = 0.0, warnings=None) -> FitResult:
    """A FitResult packaged from known parameters: the mean face, 8 degrees of yaw, at 60 cm."""
    g = torch.Generator().manual_seed(0)
    dt = model.dtype
    p = FaceParams.zeros(model, light=True)
    p.identity = 0.5 * torch.randn(1, p.identity.shape[1], generator=g, dtype=dt)
    p.expression = torch.zeros_like(p.expression)
    p.rotation = torch.tensor([[0.0, 0.14, 0.0]], dtype=dt)
    p.translation = torch.tensor([[shift, 0.0, 60.0]], dtype=dt)
    p.light = sh_ambient(0.9, 1, 3, dtype=dt)
    verts = model.forward(p.identity, p.expression)
    extent = float((verts[0].amax(0) - verts[0].amin(0))[:2].max())
    f = 0.8 * SIZE * 60.0 / extent
    K = intrinsics(f, f, SIZE / 2, SIZE / 2)[0].to(dt)
    p.focal = torch.tensor([f], dtype=dt)
    lv = model.landmarks
    lm = project(pose_points(verts, p.rotation, p.translation)[:, lv], K[None])[0]
    lm = lm + 0.5 * torch.randn(lm.shape, generator=g, dtype=dt)  # "detected": off by ~0.5 px
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    image = torch.stack([xx, yy, 0.5 * (xx + yy)])[None].to(dt)
    history = {"landmarks": [3.0, 1.0], "coarse": [0.5, 0.2, 0.1], "fine": [0.09, 0.05]}
    timings = {"detect": 0.5, "landmarks": 0.25, "photometric": 2.0, "total": 3.0}
    res = package_result(
        model, image, lm, p, K, lv, torch.full((model.n_vertices, 3), 0.6, dtype=dt),
        history, timings, list(warnings or []), "synthetic.png", texture_size=64,
    )  # fmt: skip
    res.face_vertices = face_region(model)
    return res


@pytest.fixture(scope="module")
def result(model):
    return _result(model, warnings=["extreme pose: test warning <b>escaped</b>"])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, result):
    d = tmp_path_factory.mktemp("fit")
    return d, result.save(d, glb=HAS_TRIMESH)


# ---------------------------------------------------------------------------------------------
# the report page


def test_report_is_one_offline_page_with_images_3d_data_and_tables(saved, result):
    d, paths = saved
    text = (d / "report.html").read_text(encoding="utf-8")
    page = _parse(text)
    _assert_offline(page)
    # plotly.js inlined exactly once, and a Mesh3d with the fitted mesh's data
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert sum(js[:500] in s for s in page.scripts) == 1 and text.count(js[:500]) == 1
    fig_scripts = [s for s in page.scripts if "Plotly.newPlot" in s and "facelab-mesh3d" in s]
    assert len(fig_scripts) == 1 and '"type":"mesh3d"' in fig_scripts[0]
    assert any(t == "div" and a.get("id") == "facelab-mesh3d" for t, a in page.tags)
    # the mesh's triangle count is in the figure: i/j/k arrays of F int32 (base64 typed arrays)
    m = re.search(r'"i":\{"dtype":"i4","bdata":"([^"]+)"', fig_scripts[0])
    import base64

    assert m is not None
    i = torch.frombuffer(
        bytearray(base64.b64decode(json.loads(f'"{m.group(1)}"'))), dtype=torch.int32
    )
    assert torch.equal(i.long(), result.faces[:, 0].cpu())
    # images: photo, overlay, difference, 5 grey + 5 textured views, texture -- all data: URIs
    imgs = [a["src"] for t, a in page.tags if t == "img"]
    assert len(imgs) >= 14 and all(s.startswith("data:image/") for s in imgs)
    caps = re.findall(r"<figcaption>([^<]*)</figcaption>", text)
    for y in ("-90", "-45", "+0", "+45", "+90"):
        assert sum(f"yaw {y}" in c for c in caps) == 2, y  # grey and textured
    # landmarks drawn as SVG over the photo: 68 detected + 68 fitted points
    body = _no_scripts(text)
    assert body.count("<circle") == 2 * 68
    # warnings in a visible box, escaped
    assert 'class="warnings"' in text and "&lt;b&gt;escaped&lt;/b&gt;" in text
    # real tables: seconds per stage, final losses; no Python/JSON dict strings
    tables = {tuple(t[0]): t[1:] for t in page.tables if t}
    assert {r[0]: float(r[1]) for r in tables[("stage", "seconds")]} == result.timings
    losses = {r[0]: float(r[2]) for r in tables[("stage", "first loss", "final loss", "steps")]}
    assert losses == {k: v[-1] for k, v in result.history.items()}
    assert "{'" not in body and '{"detect"' not in body
    # pose in degrees
    pose = {r[0]: r[1] for r in tables[("pose", "value")]}
    assert abs(float(pose["yaw (deg)"]) - result.ypr[0]) < 1e-3
    assert abs(result.ypr[0] - 8.02) < 0.05  # 0.14 rad
    # the coefficient bar charts: one bar per coefficient
    assert body.count("<rect") >= result.params.identity.numel() + result.params.expression.numel()
    # files listed with relative links
    hrefs = [a["href"] for t, a in page.tags if t == "a"]
    assert "mesh.obj" in hrefs and ("mesh.glb" in hrefs) == HAS_TRIMESH


def test_old_import_of_loss_svg_still_works():
    assert loss_svg({"a": [1.0, 0.5]}) == rep.loss_svg({"a": [1.0, 0.5]})
    assert "no photometric" in loss_svg({"landmarks": [1.0]})


def test_overlay_and_difference_cover_the_face_region_only(result, model):
    full = result.mask
    face = rep.face_pixel_mask(result)
    assert bool(face.any()) and bool((face & ~full).sum() == 0)
    assert int(face.sum()) < 0.9 * int(full.sum())  # the neck / back of the head are left out
    ov = rep.face_overlay(result, 0.6, face)
    img = result.image.float()
    assert torch.equal(ov[:, ~face], img[:, ~face].clamp(0, 1))
    want = (0.4 * img + 0.6 * result.render.float())[:, face]
    torch.testing.assert_close(ov[:, face], want.clamp(0, 1))
    diff, mad = rep.difference_image(result, face)
    ref = (img - result.render.float()).abs().mean(0)[face].mean()
    assert abs(mad - float(ref)) < 1e-6 and diff.shape == img.shape
    # every region pixel shows a triangle whose corners are all in the face region
    tri = model.regions["face"][model.faces].all(-1)
    assert face_region(model) is model.regions["face"]
    from facelab.geometry.camera import project_depth
    from facelab.render import rasterize

    fr = rasterize(project_depth(result.posed_vertices[None], result.K[None]), model.faces,
                   (SIZE, SIZE), cull_backfaces=True)  # fmt: skip
    p2f = fr.pix_to_face[0]
    assert torch.equal(face, (p2f >= 0) & tri[p2f.clamp_min(0)])


def test_shape_views_turn_the_head():
    # a unit square facing +z (the model's front): covered from the front, edge-on at 90 deg
    verts = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    v = rep.shape_views(verts, faces, (0.0, 45.0, 90.0, 180.0), size=64)
    assert v.shape == (4, 3, 64, 64)
    covered = (v < 0.999).any(1).flatten(1).sum(1).tolist()
    assert covered[0] > 1500  # the square fills most of the view
    assert 0.55 < covered[1] / covered[0] < 0.85  # foreshortened by cos 45 = 0.71
    assert covered[2] < 0.05 * covered[0] and covered[3] == 0  # edge-on; back-face culled
    # textured: a texture of one colour comes back unlit
    tex = torch.tensor([0.2, 0.5, 0.9])[:, None, None].expand(3, 8, 8)
    uvs = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    t = rep.shape_views(verts, faces, (0.0,), 32, "texture", texture=tex, uvs=uvs)
    torch.testing.assert_close(t[0, :, 16, 16], torch.tensor([0.2, 0.5, 0.9]), atol=1e-4, rtol=0)
    with pytest.raises(Exception, match="style"):
        rep.shape_views(verts, faces, style="wire")


def test_heat_colors_ramp_and_vertex_colors_from_texture():
    c = rep.heat_colors([0.0, 0.5, 1.0, 2.0], 0.0, 1.0)
    torch.testing.assert_close(torch.tensor(c[0]), torch.tensor(rep._HEAT[0]))
    torch.testing.assert_close(torch.tensor(c[3]), torch.tensor(rep._HEAT[-1]))  # clipped
    tex = torch.zeros(3, 4, 4)
    tex[0, 0, :] = 1.0  # top row red: v = 1
    faces = torch.tensor([[0, 1, 2]])
    uvs = torch.tensor([[0.5, 0.99], [0.5, 0.01], [0.1, 0.5]])
    col = rep.vertex_colors_from_texture(tex, faces, uvs, None)
    assert col[0, 0] > 0.9 and col[1, 0] < 0.1


def test_multi_photo_report_has_a_row_per_photo_and_the_shared_shape(model, result):
    r2 = _result(model, shift=1.0)
    text = rep.fit_report_html([result, r2], shared_vertices=result.vertices, view_size=96)
    page = _parse(text)
    _assert_offline(page)
    assert text.count('class="row"') == 2 and "shared shape" in text
    assert text.count("Plotly.newPlot") == 1
    assert _no_scripts(text).count("<circle") == 4 * 68
    assert "photo 1 (synthetic.png): extreme pose" in text


# ---------------------------------------------------------------------------------------------
# GLB


def test_glb_opens_with_trimesh_and_matches_the_mesh(saved, result):
    trimesh = pytest.importorskip("trimesh")

    d, paths = saved
    assert paths["glb"] == d / "mesh.glb"
    scene = trimesh.load(d / "mesh.glb", force="scene")
    (geom,) = scene.geometry.values()
    assert len(geom.faces) == result.faces.shape[0]
    v = torch.as_tensor(geom.vertices, dtype=torch.float64)
    f = torch.as_tensor(geom.faces, dtype=torch.long)
    # UV seams unwelded: maybe more vertices, but the same triangle corners
    torch.testing.assert_close(v[f], result.vertices.double()[result.faces], atol=1e-5, rtol=0)
    assert geom.visual.uv is not None and geom.visual.material is not None


# ---------------------------------------------------------------------------------------------
# facelab compare


def test_compare_command_writes_the_page_and_the_distance(tmp_path, capsys, model, saved):
    d_a, _ = saved
    b = _result(model)
    b.vertices = b.vertices + torch.tensor([0.1, 0.0, 0.0], dtype=b.vertices.dtype)  # 1 mm in x
    d_b = tmp_path / "b"
    b.save(d_b, report=False)
    out = tmp_path / "cmp" / "compare.html"
    rc = main(["compare", str(d_a), str(d_b), "--out", str(out), "--labels", "ours", "shifted", "--size", "64",
               "--json"])  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and out.is_file() and r["same_topology"] is True
    assert r["labels"] == ["ours", "shifted"]
    for k in ("mean", "median", "p95", "max"):
        assert abs(r["distance_mm"][k] - 1.0) < 1e-3, k  # exactly the 1 mm shift
    text = out.read_text(encoding="utf-8")
    page = _parse(text)
    _assert_offline(page)
    imgs = [a["src"] for t, a in page.tags if t == "img"]
    assert len(imgs) == 5 * 5 and all(s.startswith("data:image/") for s in imgs)  # 2 grey,
    # 2 textured, 1 heat map row
    fig = [s for s in page.scripts if "facelab-compare3d" in s]
    assert len(fig) == 1 and '"intensity"' in fig[0] and "shifted" in fig[0]
    # text output and errors
    rc = main(["compare", str(d_a), str(d_b), "--out", str(out), "--size", "64"])
    assert rc == 0 and "distance mean 1.00 mm" in capsys.readouterr().out
    rc = main(["compare", str(d_a), str(tmp_path / "nope"), "--out", str(out)])
    assert rc == 1 and "no such folder" in capsys.readouterr().err
    rc = main(["compare", str(d_a), str(d_b), "--out", str(tmp_path / "x.png")])
    assert rc == 1 and ".html" in capsys.readouterr().err


def test_compare_different_topologies_uses_nearest_vertices(model, result):
    a = rep._as_saved(result, "a")
    keep = torch.arange(0, result.vertices.shape[0], 2)
    b = rep.SavedFit("b", result.vertices[keep], torch.tensor([[0, 1, 2]]), summary=a.summary)
    d, same = rep.shape_distance(a, b)
    assert not same and d.shape == (result.vertices.shape[0],)
    assert float(d[keep.numpy()].max()) == 0.0 and float(d.max()) > 0


# ---------------------------------------------------------------------------------------------
# facelab fit: --glb and the shared-identity page (the fit itself is stubbed: known results)


def test_fit_cli_glb_and_shared_identity_page(tmp_path, capsys, model, monkeypatch):
    import facelab.fit as fit_pkg

    made: list[FitResult] = []

    def fake_multi(photos, **kw):
        for k in range(len(photos)):
            r = _result(model, shift=float(k))
            r.face_vertices = None  # the CLI fills in the model's face region
            made.append(r)
        return list(made)

    monkeypatch.setattr(fit_pkg, "fit_multi", fake_multi)
    photos = []
    for k in range(2):
        p = tmp_path / f"p{k}.png"
        p.write_bytes(b"not read: the fit is stubbed")
        photos.append(str(p))
    out = tmp_path / "out"
    pytest.importorskip("trimesh")
    rc = main(["fit", *photos, "--shared-identity", "--out", str(out), "--model", "builtin",
               "--glb", "--json", "--quiet"])  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(r["results"]) == 2
    for row in r["results"]:
        assert (tmp_path / row["files"]["glb"]).is_file()
        assert (tmp_path / row["files"]["report"]).is_file()
    assert all(torch.equal(m.face_vertices, model.regions["face"]) for m in made)
    text = (out / "report.html").read_text(encoding="utf-8")
    page = _parse(text)
    _assert_offline(page)
    assert text.count('class="row"') == 2 and "the shared identity at a neutral expression" in text
    # each row links to its photo's own report, relative to the page
    hrefs = [a["href"] for t, a in page.tags if t == "a"]
    assert sorted(h for h in hrefs if h.endswith("report.html")) == [
        "00_p0/report.html", "01_p1/report.html"
    ]  # fmt: skip


def test_report_of_a_result_without_texture_or_history(result):
    from dataclasses import replace

    bare = replace(result, texture=None, texture_mask=None, uvs=None, uv_faces=None, history={},
                   timings={}, warnings=[])  # fmt: skip
    text = rep.fit_report_html(bare, view_size=96)
    page = _parse(text)
    _assert_offline(page)
    caps = re.findall(r"<figcaption>([^<]*)</figcaption>", text)
    assert sum("shape, yaw" in c for c in caps) == 5 and not any("textured" in c for c in caps)
    assert "No warnings." in text and "(no timings)" in text and "(no losses)" in text
    assert text.count("Plotly.newPlot") == 1
    with pytest.raises(Exception, match="two names"):
        rep.compare_report_html(bare, result, labels=["only one"])
