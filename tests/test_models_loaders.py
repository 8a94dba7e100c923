"""Loaders on tiny fixture files in the published layouts (BFM 2009/2017, FLAME) and the
real Surrey Face Model (skipped when absent)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from fixtures_models import (
    write_bfm2009,
    write_bfm2017,
    write_flame_npz,
    write_flame_pkl,
    write_malicious_pkl,
)

from facelab.errors import AssetMissing, InvalidInput, ModelFormatError
from facelab.models import load
from facelab.models.flame import RestrictedUnpickler, restricted_load


def test_bfm2009_fixture(tmp_path):
    p = tmp_path / "01_MorphableModel.mat"
    ref = write_bfm2009(p)
    m = load(p)
    assert m.name == "bfm2009" and m.units == "mm"
    np.testing.assert_allclose(m.mean.numpy(), ref["verts_mm"], rtol=1e-5, atol=1e-4)
    assert torch.equal(m.faces, torch.from_numpy(ref["faces"]))
    # component k at one std = shapePC[:, k] * shapeEV[k] (micrometres -> mm), interleaved xyz
    want = (ref["pc"][:, 1] * ref["ev"][1] * 1e-3).reshape(-1, 3)
    np.testing.assert_allclose(m.identity_basis[1].numpy(), want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.identity_std.numpy(), ref["ev"] * 1e-3, rtol=1e-6)
    assert m.n_expression == 0 and m.albedo_basis.shape == (2, m.n_vertices, 3)
    torch.testing.assert_close(m.albedo_mean, torch.full((m.n_vertices, 3), 128 / 255))
    assert "segment_1" in m.regions
    w = torch.tensor([[1.0, -0.5]])
    want = m.albedo_mean + w[0, 0] * m.albedo_basis[0] + w[0, 1] * m.albedo_basis[1]
    torch.testing.assert_close(m.albedo(w)[0], want)
    torch.testing.assert_close(m.albedo(batch=2)[1], m.albedo_mean)
    with pytest.raises(InvalidInput, match="k <= 2"):
        m.albedo(torch.zeros(1, 3))
    s = m.symmetry
    assert torch.equal(s[s], torch.arange(m.n_vertices))
    # forward works on the converted model
    assert m.forward(torch.ones(2, 3)).shape == (2, m.n_vertices, 3)


def test_bfm2009_bad_file(tmp_path):
    from scipy.io import savemat

    p = tmp_path / "bad.mat"
    savemat(p, {"shapeMU": np.zeros((6, 1))})
    with pytest.raises(ModelFormatError, match="missing .*shapePC"):
        load(p)


@pytest.mark.parametrize("prescaled", [False, True])
def test_bfm2017_fixture(tmp_path, prescaled):
    p = tmp_path / "model2017-1_bfm_nomouth.h5"
    ref = write_bfm2017(p, prescaled=prescaled)
    m = load(p)
    assert m.name == "bfm2017" and m.expression_kind == "pca" and m.n_expression == 2
    np.testing.assert_allclose(m.mean.numpy(), ref["verts"], rtol=1e-5, atol=1e-4)
    assert torch.equal(m.faces, torch.from_numpy(ref["faces"]))
    std = np.sqrt(ref["var"])
    np.testing.assert_allclose(m.identity_std.numpy(), std, rtol=1e-6)
    want = (ref["pc"][:, 2] * std[2]).reshape(-1, 3)
    np.testing.assert_allclose(m.identity_basis[2].numpy(), want, rtol=1e-4, atol=1e-5)
    want = (ref["epc"][:, 0] * 3.0).reshape(-1, 3)
    np.testing.assert_allclose(m.expression_basis[0].numpy(), want, rtol=1e-4, atol=1e-5)
    assert m.albedo_mean is not None and float(m.albedo_mean.mean()) == pytest.approx(0.5)


@pytest.mark.parametrize("style", ["reconstructor", "newobj"])
def test_flame_pkl_and_npz_fixtures(tmp_path, style):
    p = tmp_path / "generic_model.pkl"
    ref = write_flame_pkl(p, n_shape=3, n_expr=2, style=style)
    raw = p.read_bytes()
    assert b"chumpy.ch" in raw and (b"_reconstructor" in raw) == (style == "reconstructor")
    m = load(p, n_shape=3)
    assert m.name == "flame" and m.units == "m" and m.n_identity == 3 and m.n_expression == 2
    np.testing.assert_allclose(m.mean.numpy(), ref["v_template"], rtol=1e-6, atol=1e-7)
    sd = ref["shapedirs"]
    np.testing.assert_allclose(m.identity_basis.numpy(), sd[:, :, :3].transpose(2, 0, 1), rtol=1e-5)
    np.testing.assert_allclose(
        m.expression_basis.numpy(), sd[:, :, 3:].transpose(2, 0, 1), rtol=1e-5
    )
    # the sparse joint regressor is rebuilt (kept in extras, articulation not applied)
    np.testing.assert_allclose(m.extras["J_regressor"].numpy(), ref["J_regressor"].toarray())
    assert m.extras["posedirs"].shape == (m.n_vertices, 3, 36)
    q = tmp_path / "flame.npz"
    write_flame_npz(q, n_shape=3, n_expr=2)
    n = load(q, n_shape=3)
    torch.testing.assert_close(n.mean, m.mean)
    torch.testing.assert_close(n.identity_basis, m.identity_basis)
    torch.testing.assert_close(n.extras["J_regressor"], m.extras["J_regressor"])
    with pytest.raises(InvalidInput, match="n_shape"):
        load(q)  # 5 components: the split must be given
    # save/load keeps the extras
    r = load(m.save(tmp_path / "flame_cache.npz"))
    torch.testing.assert_close(r.extras["weights"], m.extras["weights"])


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    import os

    p = tmp_path / "evil.pkl"
    write_malicious_pkl(p)
    assert b"system" in p.read_bytes()
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a) or 0)
    with pytest.raises(ModelFormatError, match="refusing to load (posix|os|nt).system"):
        load(p)
    assert called == []
    # other escapes are refused too
    for payload in (
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"c__builtin__\ngetattr\n(c__builtin__\nobject\nS'__subclasses__'\ntR.",
        b"ccopy_reg\n_reconstructor\n(cos\nsystem\nc__builtin__\nobject\nNtR.",
    ):
        with pytest.raises(ModelFormatError):
            restricted_load(payload)
    with pytest.raises(ModelFormatError, match="not a readable model pickle"):
        restricted_load(b"\x80\x02garbage")
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


def test_unknown_suffix_and_missing_named_model(tmp_path, monkeypatch):
    p = tmp_path / "x.stl"
    p.write_text("solid")
    with pytest.raises(ModelFormatError, match="unknown model file type"):
        load(p)
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path))
    with pytest.raises(AssetMissing, match="bfm2009.*register and download"):
        load("bfm2009")


# ----------------------------------------------------------------------------------------------
# Surrey Face Model (real data)


@pytest.fixture(scope="module")
def sfm(shared_data):
    pytest.importorskip("eos")
    if not (shared_data / "sfm-eos" / "sfm_shape_3448.bin").is_file():
        pytest.skip("sfm-eos not in the shared data")
    from facelab.models.sfm import load_sfm

    return load_sfm(shared_data / "sfm-eos" / "sfm_shape_3448.bin")


def test_sfm_real(sfm):
    m = sfm
    assert m.n_vertices == 3448 and m.n_identity == 63 and m.n_expression == 6
    assert m.expression_names == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert m.units == "mm" and "non-commercial" in m.license
    lm = m.mean[m.landmarks]
    assert m.landmarks.shape == (68,)
    assert int(lm[:, 2].argmax()) == 30  # nose tip most forward: +z out of the face
    assert float(lm[36, 0]) < 0 < float(lm[45, 0])  # +x = face's left
    assert float(lm[8, 1]) < float(lm[33, 1]) < float(lm[27, 1])  # y up
    assert int(m.landmarks[30]) == 114 and int(m.landmarks[36]) == 177  # ibug_to_sfm.txt
    assert m.meta["landmarks_filled"][:8] == list(range(8))
    # basis at one std: ||basis_k|| = sqrt(eigenvalue_k)
    torch.testing.assert_close(
        m.identity_basis.flatten(1).norm(dim=1), m.identity_std, rtol=1e-4, atol=0
    )
    assert {"right", "left"} == set(m.contour_candidates)
    assert int(m.contour_candidates["right"][0]) == 380
    # symmetry: the file's map on the 845 reference vertices, an involution overall
    s = m.symmetry
    assert torch.equal(s[s], torch.arange(m.n_vertices))
    assert int(s[0]) == 444  # line 1 of sfm_reference_symmetry.txt: 445 (1-based)
    err = (m.mean[s] * torch.tensor([-1.0, 1.0, 1.0]) - m.mean).norm(dim=1)
    assert float(err.mean()) < 1.0 and float((err < 5).float().mean()) > 0.99
    # UVs flipped to v up: the forehead is above the chin in UV space
    assert float(m.uvs[m.landmarks[27], 1]) > float(m.uvs[m.landmarks[8], 1])


def test_sfm_via_load(with_shared_data):
    pytest.importorskip("eos")
    if not (with_shared_data / "sfm-eos").is_dir():
        pytest.skip("no sfm-eos")
    m = load("sfm")
    assert m.name == "sfm" and m.n_vertices == 3448


def test_load_places_model_on_device_and_dtype(tmp_path):
    import torch

    from facelab.models import load

    m = load("builtin", device="cpu", dtype=torch.float64)
    assert m.dtype == torch.float64 and m.device.type == "cpu"
    assert m.faces.dtype == torch.long  # index tensors keep their integer type
    assert load("builtin").dtype == torch.float32
    # a file path takes the same keywords
    path = tmp_path / "m.npz"
    load("builtin").save(path)
    m2 = load(path, device=torch.device("cpu"), dtype=torch.float64)
    assert m2.dtype == torch.float64
    assert torch.equal(m2.mean, load("builtin").mean.double())
