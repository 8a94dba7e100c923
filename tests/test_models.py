"""MorphableModel, FaceParams, the built-in model, restrict, save/load."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from fixtures_models import tiny_model

from facelab.errors import InvalidInput, ModelFormatError
from facelab.models import FaceParams, MorphableModel, available, load
from facelab.models.morphable import mirror_symmetry, pose_points


@pytest.fixture(scope="module")
def builtin() -> MorphableModel:
    return load("builtin")


# ----------------------------------------------------------------------------------------------
# forward


def test_forward_matches_hand_computation():
    m = tiny_model()
    a = torch.tensor([[0.5, -2.0], [0.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[0.25], [1.0]], dtype=torch.float64)
    out = m.forward(a, b)
    assert out.shape == (2, 5, 3)
    for i in range(2):
        want = m.mean.clone()
        for k in range(2):
            want = want + a[i, k] * m.identity_basis[k]
        want = want + b[i, 0] * m.expression_basis[0]
        torch.testing.assert_close(out[i], want, rtol=0, atol=1e-12)
    # einsum twin
    slow = (
        m.mean
        + torch.einsum("bk,kvc->bvc", a, m.identity_basis)
        + torch.einsum("bk,kvc->bvc", b, m.expression_basis)
    )
    torch.testing.assert_close(out, slow)


def test_forward_prefix_none_and_grad():
    m = tiny_model()
    a = torch.tensor([[1.0]], dtype=torch.float64, requires_grad=True)
    out = m.forward(a, None)
    torch.testing.assert_close(out[0], m.mean + m.identity_basis[0])
    out.sum().backward()
    torch.testing.assert_close(a.grad[0, 0], m.identity_basis[0].sum())
    with pytest.raises(InvalidInput, match="3 weights but model 'tiny' has 2"):
        m.forward(torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(InvalidInput, match=r"\(B, K\)"):
        m.forward(torch.zeros(3, dtype=torch.float64))
    assert torch.autograd.gradcheck(
        lambda w, e: m.forward(w, e),
        (
            torch.randn(2, 2, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 1, dtype=torch.float64, requires_grad=True),
        ),
    )


def test_posed_vertices_convention():
    m = tiny_model()
    p = FaceParams.zeros(m, 1)
    p.translation = torch.tensor([[1.0, 2.0, 30.0]], dtype=torch.float64)
    cam = m.posed_vertices(p)[0]
    want = m.mean * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64) + p.translation
    torch.testing.assert_close(cam, want)
    # yaw by 90 deg about the camera y axis: R @ (x, -y, -z) with R = Ry(pi/2)
    p.rotation = torch.tensor([[0.0, math.pi / 2, 0.0]], dtype=torch.float64)
    cam = m.posed_vertices(p)[0]
    x, y, z = m.mean.unbind(1)
    want = torch.stack([-z, -y, -x], 1) + p.translation  # Ry(90) (a, b, c) = (c, b, -a)
    torch.testing.assert_close(cam, want, atol=1e-12, rtol=0)
    v = pose_points(m.mean[None], p.rotation, p.translation)[0]
    torch.testing.assert_close(v, cam)
    # batched: each face gets its own pose
    q = FaceParams.zeros(m, 2)
    q.rotation = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.pi / 2, 0.0]], dtype=torch.float64)
    q.translation = p.translation.expand(2, 3).clone()
    both = m.posed_vertices(q)
    torch.testing.assert_close(both[1], cam)
    torch.testing.assert_close(
        both[0], m.mean * torch.tensor([1.0, -1.0, -1.0]).double() + q.translation[0]
    )


# ----------------------------------------------------------------------------------------------
# FaceParams


def test_faceparams_validation_errors():
    m = tiny_model()
    p = FaceParams.zeros(m, 3, focal=500.0)
    assert p.batch_size == 3 and p.light.shape == (3, 9, 3) and p.focal.tolist() == [500.0] * 3
    with pytest.raises(InvalidInput, match=r"rotation must have shape \(3, 3\)"):
        dataclasses.replace(p, rotation=torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(InvalidInput, match=r"light must have shape \(3, 9, 3\)"):
        dataclasses.replace(p, light=torch.zeros(3, 4, 3, dtype=torch.float64))
    with pytest.raises(InvalidInput, match="identity is required"):
        dataclasses.replace(p, identity=None)
    with pytest.raises(InvalidInput, match="floating"):
        dataclasses.replace(p, translation=torch.zeros(3, 3, dtype=torch.long))
    bad = dataclasses.replace(p, identity=torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(InvalidInput, match="identity has 5 components but model 'tiny' has 2"):
        m.vertices(bad)
    bad = dataclasses.replace(p, expression=torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(InvalidInput, match="expression has 4 components"):
        bad.validate(m)


def test_faceparams_plumbing_and_json_round_trip():
    m = tiny_model()
    p = m.sample(2, generator=torch.Generator().manual_seed(3))
    p.focal = torch.tensor([400.0, 410.0], dtype=torch.float64)
    p.validate(m)
    d = p.to_dict()
    s = json.dumps(d)  # JSON-safe
    q = FaceParams.from_dict(json.loads(s), dtype=torch.float64)
    for (n1, t1), (n2, t2) in zip(p.items(), q.items()):
        assert n1 == n2
        torch.testing.assert_close(t1, t2, rtol=0, atol=0)
    with pytest.raises(InvalidInput, match="unknown keys"):
        FaceParams.from_dict({**d, "pose": [1]})
    with pytest.raises(InvalidInput, match="missing keys"):
        FaceParams.from_dict({"identity": [[0.0]]})
    f = p.to(dtype=torch.float32)
    assert f.identity.dtype == torch.float32 and f.light.dtype == torch.float32
    c = p.clone().requires_grad_()
    assert all(t.requires_grad for t in c.tensors())
    assert not any(t.requires_grad for t in c.detach().tensors())
    assert p[1].batch_size == 1 and torch.equal(p[1].identity, p.identity[1:2])
    assert FaceParams.cat([p, p]).batch_size == 4


# ----------------------------------------------------------------------------------------------
# sampling


def test_sample_determinism_and_truncation(builtin):
    a = builtin.sample(4, generator=torch.Generator().manual_seed(11), truncation=0.5)
    b = builtin.sample(4, generator=torch.Generator().manual_seed(11), truncation=0.5)
    c = builtin.sample(4, generator=torch.Generator().manual_seed(12), truncation=0.5)
    assert torch.equal(a.identity, b.identity) and torch.equal(a.expression, b.expression)
    assert not torch.equal(a.identity, c.identity)
    assert float(a.identity.abs().max()) <= 1.5 + 1e-6
    big = builtin.sample(200, generator=torch.Generator().manual_seed(0))
    assert float(big.identity.abs().max()) <= 3.0 + 1e-6
    assert 0.8 < float(big.identity.std()) < 1.1
    e = big.expression
    assert float(e.min()) >= 0 and float(e.max()) <= 1
    frac = float((e > 0).float().mean())
    assert 0.08 < frac < 0.25  # sparse blendshapes
    zero = builtin.sample(2, generator=torch.Generator().manual_seed(0), truncation=0.0)
    torch.testing.assert_close(
        builtin.forward(zero.identity), builtin.mean.expand(2, -1, -1), rtol=0, atol=0
    )


# ----------------------------------------------------------------------------------------------
# restrict


def test_restrict_reindexes():
    m = tiny_model()
    sub = m.restrict("right")  # drops vertex 1
    assert sub.n_vertices == 4
    keep = [0, 2, 3, 4]
    torch.testing.assert_close(sub.mean, m.mean[keep])
    torch.testing.assert_close(sub.identity_basis, m.identity_basis[:, keep])
    # only triangles (0,3,4) and (2,0,4) survive; each maps to the same coordinates
    assert sub.n_faces == 2
    old = m.faces[[0, 3]]
    torch.testing.assert_close(sub.mean[sub.faces], m.mean[old])
    torch.testing.assert_close(sub.uvs[sub.uv_faces], m.uvs[m.uv_faces[[0, 3]]])
    assert sub.uvs.shape[0] == 4  # uvs compacted to those referenced
    torch.testing.assert_close(sub.mean[sub.landmarks], m.mean[m.landmarks])
    assert sub.contour_candidates["jaw"].tolist() == [0, 2]
    torch.testing.assert_close(m.mean[sub.parent_indices], sub.mean)
    assert sub.parent_indices.tolist() == keep
    with pytest.raises(InvalidInput, match=r"landmarks \[0\] .* fall outside"):
        m.restrict(torch.tensor([0, 1, 2, 3]))
    with pytest.raises(InvalidInput, match="no region 'nose'"):
        m.restrict("nose")


def test_restrict_builtin_face(builtin):
    sub = builtin.restrict("face")
    assert sub.n_vertices < builtin.n_vertices
    torch.testing.assert_close(sub.mean[sub.landmarks], builtin.mean[builtin.landmarks])
    s = sub.symmetry
    assert torch.equal(s[s], torch.arange(sub.n_vertices))
    w = torch.randn(1, builtin.n_identity)
    torch.testing.assert_close(sub.forward(w)[0], builtin.forward(w)[0][sub.parent_indices])


# ----------------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(tmp_path, builtin):
    for m in (tiny_model(), builtin):
        p = m.save(tmp_path / f"{m.name}.npz")
        r = MorphableModel.load(p)
        for k in ("mean", "faces", "identity_basis", "identity_std", "expression_basis", "uvs",
                  "uv_faces", "landmarks", "symmetry"):  # fmt: skip
            assert torch.equal(getattr(r, k), getattr(m, k)), k
            assert getattr(r, k).dtype == getattr(m, k).dtype
        assert r.regions.keys() == m.regions.keys()
        assert all(torch.equal(r.regions[k], m.regions[k]) for k in m.regions)
        assert all(torch.equal(r.contour_candidates[k], v) for k, v in m.contour_candidates.items())
        assert (r.name, r.units, r.expression_names, r.expression_kind) == (
            m.name, m.units, m.expression_names, m.expression_kind,
        )  # fmt: skip
        assert load(p).n_vertices == m.n_vertices  # load() dispatches .npz by content


def test_load_rejects_bad_files(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, mean=np.zeros((3, 3)))
    with pytest.raises(ModelFormatError, match="no __meta__"):
        MorphableModel.load(p)
    q = tmp_path / "y.npz"
    q.write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError, match="not a readable"):
        MorphableModel.load(q)
    with pytest.raises(InvalidInput, match="not a model name"):
        load("no-such-model")
    with pytest.raises(ModelFormatError, match="faces index"):
        MorphableModel(
            mean=np.zeros((3, 3)), faces=np.array([[0, 1, 5]]), identity_basis=None,
            expression_basis=None,
        )  # fmt: skip


def test_to_device_dtype(builtin):
    d = builtin.to(dtype=torch.float64)
    assert d.mean.dtype == torch.float64 and d.faces.dtype == torch.long
    assert d.identity_basis.dtype == torch.float64 and d.regions["face"].dtype == torch.bool
    p = FaceParams.zeros(d, 2)
    assert p.identity.dtype == torch.float64
    assert d.vertices(p).dtype == torch.float64


# ----------------------------------------------------------------------------------------------
# the built-in model


def test_builtin_is_a_plausible_face(builtin):
    m = builtin
    assert 2000 < m.n_vertices <= 6000 and m.units == "cm" and m.meta.get("synthetic")
    lm = m.mean[m.landmarks]
    assert len(set(m.landmarks.tolist())) == 68
    assert int(lm[:, 2].argmax()) == 30  # nose tip is the most forward landmark
    assert lm[36, 0] < 0 < lm[45, 0]  # subject's right eye outer corner at x < 0
    assert lm[8, 1] < lm[57, 1] < lm[33, 1] < lm[27, 1] < lm[19, 1]  # chin < lip < nose < brow
    # a face, not a sphere: the nose tip sticks out > 1 cm beyond the eye corners
    assert float(lm[30, 2] - lm[[36, 45], 2].mean()) > 1.5
    # identity std decreasing; basis rows at one std: ||basis_k|| == std_k
    std = m.identity_std
    assert bool((std[1:] <= std[:-1] + 1e-6).all())
    torch.testing.assert_close(m.identity_basis.flatten(1).norm(dim=1), std, rtol=1e-4, atol=0)
    # orthogonal components
    B = m.identity_basis.flatten(1).double() / std[:, None].double()
    torch.testing.assert_close(
        B @ B.T, torch.eye(m.n_identity, dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert "jawOpen" in m.expression_names and "eyeBlink_L" in m.expression_names
    # eyeBlink_L moves the subject's left (+x) eyelid down
    d = m.expression_basis[m.expression_names.index("eyeBlink_L")]
    i = int(d.norm(dim=1).argmax())
    assert m.mean[i, 0] > 0 and d[i, 1] < 0
    # UV seam: more UV vertices than vertices, all in [0, 1]
    assert m.uvs.shape[0] > m.n_vertices and 0 <= float(m.uvs.min()) and float(m.uvs.max()) <= 1


def test_builtin_deterministic(builtin):
    from facelab.models.builtin import build_builtin

    again = build_builtin()
    assert torch.equal(again.mean, builtin.mean) and torch.equal(again.faces, builtin.faces)
    torch.testing.assert_close(again.identity_basis, builtin.identity_basis, rtol=0, atol=1e-6)


def test_builtin_symmetry_exact(builtin):
    s = builtin.symmetry
    assert torch.equal(s[s], torch.arange(builtin.n_vertices))
    mirrored = builtin.mean[s] * torch.tensor([-1.0, 1.0, 1.0])
    assert float((mirrored - builtin.mean).abs().max()) < 1e-4
    # the kd-tree construction agrees with the exact map on this symmetric mesh
    assert np.array_equal(mirror_symmetry(builtin.mean.double().numpy()), s.numpy())
    # landmarks: 36 <-> 45 and 0 <-> 16 are mirror partners
    lm = builtin.landmarks
    assert int(s[lm[36]]) == int(lm[45]) and int(s[lm[0]]) == int(lm[16])


def test_mirror_symmetry_is_involution_on_asymmetric_points():
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((300, 3))
    s = mirror_symmetry(pts)
    assert np.array_equal(s[s], np.arange(300))


def test_available_lists_models():
    names = {a["name"]: a for a in available()}
    assert names["builtin"]["present"] is True
    assert {"ict", "ict-face", "sfm", "bfm2009", "bfm2017", "flame"} <= set(names)
    assert all(a["license"] and a["source"] for a in names.values())


def test_subset_components(builtin):
    sub = builtin.subset(10, ["jawOpen", "eyeBlink_L"])
    assert sub.n_identity == 10 and sub.expression_names == ["jawOpen", "eyeBlink_L"]
    torch.testing.assert_close(sub.identity_std, builtin.identity_std[:10])
    a = torch.randn(2, 10)
    e = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    full_e = torch.zeros(2, builtin.n_expression)
    full_e[:, builtin.expression_names.index("jawOpen")] = e[:, 0]
    full_e[:, builtin.expression_names.index("eyeBlink_L")] = e[:, 1]
    torch.testing.assert_close(sub.forward(a, e), builtin.forward(a, full_e), atol=1e-5, rtol=0)
    assert builtin.subset(expressions=3).n_expression == 3
    with pytest.raises(InvalidInput, match="unknown expression names"):
        builtin.subset(expressions=["nope"])
    with pytest.raises(InvalidInput, match="n_identity"):
        builtin.subset(999)


def test_top_level_package_exposes_subpackages_lazily():
    import subprocess
    import sys

    code = (
        "import sys, facelab; assert 'facelab.fit' not in sys.modules; "
        "m = facelab.models.load('builtin'); print(m.n_vertices > 0, 'models' in dir(facelab))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
    import facelab

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        facelab.nope  # noqa: B018
