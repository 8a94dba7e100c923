"""Tests for facelab.geometry.io: OBJ (with seams, .gz, all face forms), PLY, GLB, dispatch."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from facelab.errors import InvalidInput, ModelFormatError
from facelab.geometry.io import (
    load_mesh,
    load_obj,
    load_obj_vertices,
    load_ply,
    save_glb,
    save_mesh,
    save_obj,
    save_ply,
)
from facelab.geometry.mesh import Mesh, icosphere

CUBE_OBJ = """# unit cube, 8 vertices, 6 quads, 14 uvs (a cross-shaped unwrap -> seams)
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0 0 1
v 1 0 1
v 1 1 1
v 0 1 1
vt 0.25 0
vt 0.5 0
vt 0.25 0.25
vt 0.5 0.25
vt 0.25 0.5
vt 0.5 0.5
vt 0.25 0.75
vt 0.5 0.75
vt 0.25 1
vt 0.5 1
vt 0 0.5
vt 0 0.75
vt 0.75 0.5
vt 0.75 0.75
vn 0 0 1
usemtl cube
f 5/5/1 6/6/1 7/8/1 8/7/1
f 1/3 4/1 3/2 2/4
f 1/3/1 2/4/1 6/6/1 5/5/1
f 4/9 8/7 7/8 3/10
f 1/11 5/5 8/7 4/12
f 2/13 3/14 7/8 6/6
"""


def _cube_path(tmp_path, text=CUBE_OBJ, name="cube.obj"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _naive_obj(text):
    """A tiny reference parser (one Python loop per line) for cross-checking."""
    v, vt, f, uf = [], [], [], []
    for ln in text.splitlines():
        t = ln.split()
        if not t:
            continue
        if t[0] == "v":
            v.append([float(x) for x in t[1:4]])
        elif t[0] == "vt":
            vt.append([float(x) for x in t[1:3]])
        elif t[0] == "f":
            idx = []
            for tok in t[1:]:
                p = tok.split("/")
                i = int(p[0])
                j = int(p[1]) if len(p) > 1 and p[1] else 0
                idx.append((i - 1 if i > 0 else len(v) + i, j - 1 if j > 0 else len(vt) + j))
            for k in range(1, len(idx) - 1):
                f.append([idx[0][0], idx[k][0], idx[k + 1][0]])
                uf.append([idx[0][1], idx[k][1], idx[k + 1][1]])
    return np.array(v), np.array(vt), np.array(f), np.array(uf)


def test_load_obj_cube_with_seams(tmp_path):
    m = load_obj(_cube_path(tmp_path))
    assert m.num_verts == 8 and m.num_faces == 12
    assert m.uvs.shape == (14, 2) and m.uv_faces.shape == (12, 3)
    v, vt, f, uf = _naive_obj(CUBE_OBJ)
    np.testing.assert_array_equal(m.faces.numpy(), f)
    np.testing.assert_array_equal(m.uv_faces.numpy(), uf)
    np.testing.assert_allclose(m.verts.numpy(), v)
    # outward normals on a closed cube: volume = 1 (divergence theorem, sum of signed tetra volumes)
    tri = m.verts[m.faces].double()
    vol = torch.linalg.det(tri).sum() / 6
    assert float(vol) == pytest.approx(1.0)
    assert float(m.face_areas().sum()) == pytest.approx(6.0)


@pytest.mark.parametrize("suffix", [".obj", ".obj.gz"])
def test_obj_round_trip_with_seams(tmp_path, suffix):
    m = load_obj(_cube_path(tmp_path))
    m.vertex_colors = torch.rand(8, 3, generator=torch.Generator().manual_seed(0))
    out = tmp_path / f"out{suffix}"
    save_obj(out, m)
    if suffix.endswith(".gz"):
        assert gzip.open(out).read().startswith(b"#")
    m2 = load_obj(out)
    torch.testing.assert_close(m2.verts, m.verts)
    assert torch.equal(m2.faces, m.faces) and torch.equal(m2.uv_faces, m.uv_faces)
    torch.testing.assert_close(m2.uvs, m.uvs)
    torch.testing.assert_close(m2.vertex_colors, m.vertex_colors, atol=1e-5, rtol=0)
    torch.testing.assert_close(load_obj_vertices(out), m.verts)
    m3 = load_mesh(out)
    assert torch.equal(m3.faces, m.faces)


def test_save_obj_with_texture_writes_mtl_and_png(tmp_path):
    from PIL import Image

    m = load_obj(_cube_path(tmp_path))
    tex = torch.zeros(3, 8, 16)
    tex[0] = 1.0  # red
    save_obj(tmp_path / "tex.obj", m, texture_image=tex)
    text = (tmp_path / "tex.obj").read_text()
    assert "mtllib tex.mtl" in text and "usemtl material0" in text
    assert "map_Kd tex.png" in (tmp_path / "tex.mtl").read_text()
    img = np.asarray(Image.open(tmp_path / "tex.png"))
    assert img.shape == (8, 16, 3) and (img[..., 0] == 255).all() and (img[..., 1:] == 0).all()
    assert load_obj(tmp_path / "tex.obj").uvs.shape == (14, 2)
    with pytest.raises(InvalidInput, match="uvs"):
        save_obj(tmp_path / "x.obj", Mesh(m.verts, m.faces), texture_image=tex)


def test_obj_face_forms_negative_indices_and_polygons(tmp_path):
    text = """v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 2 0 0  # trailing comment
vn 0 0 1
f 1 2 3
f 1//1 3//1 4//1
f -4 -1 -3
f 1 2 5 3 4
"""
    m = load_obj(_cube_path(tmp_path, text, "forms.obj"))
    v, _, f, _ = _naive_obj(text.replace("  # trailing comment", ""))
    np.testing.assert_array_equal(m.faces.numpy(), f)
    assert m.uvs is None
    # negative indices with uvs (relative to the vt defined so far)
    text2 = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf -3/-3 -2/-2 -1/-1\n"
    m2 = load_obj(_cube_path(tmp_path, text2, "neg.obj"))
    assert m2.faces.tolist() == [[0, 1, 2]] and m2.uv_faces.tolist() == [[0, 1, 2]]


def test_obj_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_obj(tmp_path / "missing.obj")
    with pytest.raises(ModelFormatError, match="no `v` lines"):
        load_obj(_cube_path(tmp_path, "hello\n", "bad.obj"))
    with pytest.raises(ModelFormatError, match="out of range"):
        load_obj(_cube_path(tmp_path, "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "oob.obj"))
    with pytest.raises(ModelFormatError, match="no `f` lines"):
        load_obj(_cube_path(tmp_path, "v 0 0 0\n", "pts.obj"))


def _sphere_mesh(colors=True):
    v, f = icosphere(2)
    c = (v * 0.5 + 0.5) if colors else None
    return Mesh(v, f, vertex_colors=c)


@pytest.mark.parametrize("binary", [False, True])
def test_ply_round_trip(tmp_path, binary):
    m = _sphere_mesh()
    p = tmp_path / "s.ply"
    save_ply(p, m, binary=binary)
    head = p.read_bytes()[:60]
    assert (b"binary_little_endian" in head) == binary
    m2 = load_ply(p)
    torch.testing.assert_close(m2.verts, m.verts)
    assert torch.equal(m2.faces, m.faces)
    torch.testing.assert_close(m2.vertex_colors, m.vertex_colors, atol=1 / 255, rtol=0)
    m3 = load_mesh(p)
    assert torch.equal(m3.faces, m.faces)


def test_ply_polygons_and_other_elements(tmp_path):
    text = (
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\n"
        "property float z\nelement face 2\nproperty list uchar int vertex_indices\n"
        "element edge 1\nproperty int vertex1\nproperty int vertex2\nend_header\n"
        "0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 0 0\n4 0 1 2 3\n3 1 4 2\n0 1\n"
    )
    (tmp_path / "q.ply").write_text(text)
    m = load_ply(tmp_path / "q.ply")
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    # binary with mixed polygon sizes (record-by-record path)
    import struct

    hdr = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\n"
        b"property float y\nproperty float z\nelement face 2\n"
        b"property list uchar int vertex_indices\nend_header\n"
    )
    body = b"".join(
        struct.pack("<3f", *r) for r in [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 0, 0)]
    )
    body += struct.pack("<B4i", 4, 0, 1, 2, 3) + struct.pack("<B3i", 3, 1, 4, 2)
    (tmp_path / "b.ply").write_bytes(hdr + body)
    assert load_ply(tmp_path / "b.ply").faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    (tmp_path / "nope.ply").write_bytes(b"plx\n")
    with pytest.raises(ModelFormatError, match="PLY"):
        load_ply(tmp_path / "nope.ply")


def test_glb_export_readable_by_trimesh(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    m = _sphere_mesh()
    p = tmp_path / "s.glb"
    save_glb(p, m)
    tm = trimesh.load(str(p), force="mesh", process=False)
    np.testing.assert_allclose(np.asarray(tm.vertices), m.verts.numpy(), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(tm.faces), m.faces.numpy())
    # textured cube: seams are split so glTF has one uv per vertex
    cube = load_obj(_cube_path(tmp_path))
    save_mesh(tmp_path / "c.glb", cube, texture_image=np.full((4, 4, 3), 0.5))
    back = load_mesh(tmp_path / "c.glb")
    assert back.num_faces == 12 and back.num_verts > 8 and back.uvs.shape == (back.num_verts, 2)
    # positions of each triangle corner survive the unwelding
    np.testing.assert_allclose(
        back.verts[back.faces].numpy(), cube.verts[cube.faces].numpy(), atol=1e-6
    )


def test_dispatch_errors(tmp_path):
    m = _sphere_mesh(colors=False)
    with pytest.raises(InvalidInput, match="unsupported mesh format"):
        save_mesh(tmp_path / "x.stl", m)
    with pytest.raises(InvalidInput, match="unsupported mesh format"):
        load_mesh(tmp_path / "x.off")
    with pytest.raises(InvalidInput, match="textures"):
        save_mesh(tmp_path / "x.ply", m, texture_image=np.zeros((2, 2, 3)))


def test_ict_neutral_mesh(shared_data):
    p = shared_data / "ict-facekit" / "FaceXModel" / "generic_neutral_mesh.obj.gz"
    if not p.exists():
        pytest.skip("ICT neutral mesh not in shared data")
    m = load_obj(p)
    assert m.num_verts == 26719 and m.uvs.shape == (28911, 2)
    # 26,384 polygons, mostly quads -> fan triangles
    assert 26384 < m.num_faces <= 2 * 26384
    torch.testing.assert_close(load_obj_vertices(p), m.verts)
    face, old_to_new = m.submesh(torch.arange(9409))
    assert face.num_verts == 9409 and int(old_to_new.max()) == 9408
    assert torch.isfinite(face.vertex_normals()).all()


@pytest.mark.parametrize(
    "text",
    [
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",  # one contiguous block
        "v 0 0 0\r\nv 1 0 0\r\nv 0 1 0\r\nf 1 2 3\r\n",  # CRLF
        "v 0 0 0\nvt 0 0\nv 1 0 0\n# c\nv 0 1 0 # comment\nf 1 2 3\n",  # interleaved, comments
        "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1",  # colours, no final newline
    ],
)
def test_load_obj_vertices_paths_agree(tmp_path, text):
    p = _cube_path(tmp_path, text, "t.obj")
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]])
    torch.testing.assert_close(load_obj_vertices(p), expected)
    if "f " in text:
        torch.testing.assert_close(load_obj(p).verts, expected)
