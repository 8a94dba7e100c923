"""ICT-FaceKit loader on the real shared data (skipped when absent)."""

from __future__ import annotations

import os

import pytest
import torch

from facelab.models import MorphableModel, load
from facelab.models.ict import ICT_LANDMARKS, cache_path


@pytest.fixture(scope="module")
def ict(shared_data, tmp_path_factory):
    """The full ICT model, parsed once for this module into a private cache."""
    if not (shared_data / "ict-facekit" / "FaceXModel").is_dir():
        pytest.skip("ict-facekit not in the shared data")
    cache = tmp_path_factory.mktemp("ict-cache")
    old = {k: os.environ.get(k) for k in ("FACELAB_DATA", "FACELAB_CACHE")}
    os.environ["FACELAB_DATA"] = str(shared_data)
    os.environ["FACELAB_CACHE"] = str(cache)
    try:
        model = load("ict")
        yield model
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_ict_sizes_and_semantics(ict):
    assert ict.n_vertices == 26719 and ict.n_identity == 100 and ict.n_expression == 53
    assert ict.expression_kind == "blendshapes" and ict.expression_names[0] == "browDown_L"
    assert "jawOpen" in ict.expression_names and "PupilDilate_L" not in ict.expression_names
    assert ict.units == "cm" and "MIT" in ict.license
    assert ict.uvs.shape == (28911, 2) and ict.uv_faces.shape == ict.faces.shape
    # 548 triangles + 25,836 quads (2 triangles each) in the neutral mesh
    assert ict.n_faces == 548 + 2 * 25836
    ext = ict.mean[:11248].max(0).values - ict.mean[:11248].min(0).values
    assert 12 < float(ext[0]) < 25  # head width in cm
    assert ict.landmarks.tolist() == ICT_LANDMARKS
    torch.testing.assert_close(ict.identity_std, torch.ones(100))


def test_ict_identity_is_file_minus_neutral(ict, shared_data):
    from facelab.models._files import read_obj_vertices

    fx = shared_data / "ict-facekit" / "FaceXModel"
    p = next(fx.glob("identity007.obj*"))
    v = torch.from_numpy(read_obj_vertices(p)).float()
    torch.testing.assert_close(ict.mean + ict.identity_basis[7], v, atol=2e-5, rtol=0)
    q = next(fx.glob("jawOpen.obj*"))
    v = torch.from_numpy(read_obj_vertices(q)).float()
    j = ict.expression_names.index("jawOpen")
    torch.testing.assert_close(ict.mean + ict.expression_basis[j], v, atol=2e-5, rtol=0)


def test_ict_landmarks_on_features(ict):
    lm = ict.mean[ict.landmarks]
    # nose tip (30) is the most forward (+z) of the 68
    assert int(lm[:, 2].argmax()) == 30
    # the subject's right eye outer corner (36) is at x < 0, the left one (45) at x > 0:
    # +x is the face's left in model space
    assert float(lm[36, 0]) < -3 and float(lm[45, 0]) > 3
    assert float(lm[0, 0]) < 0 < float(lm[16, 0])
    # eye corners left to right in the image of a frontal face: 36 < 39 < 0 < 42 < 45 in x,
    # all four at eye height (above the nose tip); jaw and brow contours run left to right
    eyes = lm[[36, 39, 42, 45], 0]
    assert bool((eyes.diff() > 0).all()) and float(eyes[1]) < 0 < float(eyes[2])
    assert bool((lm[[36, 39, 42, 45], 1] > lm[30, 1]).all())
    assert bool((lm[0:17, 0].diff() > 0).all()) and bool((lm[17:27, 0].diff() > 0).all())
    assert float(lm[48, 0]) < float(lm[51, 0]) < float(lm[54, 0])
    assert float(lm[8, 1]) < float(lm[57, 1]) < float(lm[33, 1]) < float(lm[27, 1])
    # ARKit-style _L is the subject's left (+x): eyeBlink_L moves the +x eyelid down
    d = ict.expression_basis[ict.expression_names.index("eyeBlink_L")]
    i = int(d.norm(dim=1).argmax())
    assert float(ict.mean[i, 0]) > 0 and float(d[i, 1]) < 0


def test_ict_symmetry(ict):
    s = ict.symmetry
    assert torch.equal(s[s], torch.arange(ict.n_vertices))
    err = (ict.mean[s] * torch.tensor([-1.0, 1.0, 1.0]) - ict.mean).norm(dim=1)
    assert float(err.mean()) < 0.01  # cm
    lm = ict.landmarks
    assert int(s[lm[36]]) == int(lm[45]) and int(s[lm[30]]) == int(lm[30])


def test_ict_face_variants(ict, with_shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("FACELAB_CACHE", os.environ.get("FACELAB_CACHE", str(tmp_path)))
    face = ict.restrict("skin", name="ict-face")
    assert face.n_vertices == 11248 and face.n_faces < ict.n_faces
    torch.testing.assert_close(face.mean[face.landmarks], ict.mean[ict.landmarks])
    assert int(face.faces.max()) < 11248
    torch.testing.assert_close(face.mean[face.faces[:5]], ict.mean[ict.faces[:5]])
    s = face.symmetry
    assert torch.equal(s[s], torch.arange(face.n_vertices))
    narrow = ict.restrict("face")
    assert narrow.n_vertices == 9409
    assert {"right", "left"} <= set(face.contour_candidates)
    jaw = face.contour_candidates["right"]
    assert bool((face.mean[jaw, 0] < 0.5).all())


def test_ict_cache_round_trip(ict, with_shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    ict.save(tmp_path / "direct.npz")
    from facelab.models.ict import _source_files

    n, i, e, _ = _source_files()
    cp = cache_path([n, *i, *e])
    assert cp.parent == tmp_path / "models"
    cp.parent.mkdir(parents=True)
    os.replace(tmp_path / "direct.npz", cp)
    m = load("ict-face")  # served from the cache file
    assert m.name == "ict-face" and m.n_vertices == 11248
    r = MorphableModel.load(cp)
    assert torch.equal(r.identity_basis, ict.identity_basis)


def test_cache_key_tracks_size_and_mtime(tmp_path):
    from facelab.models.ict import cache_key

    a, b = tmp_path / "a.obj", tmp_path / "b.obj"
    a.write_text("v 0 0 0\n")
    b.write_text("v 1 1 1\n")
    k0 = cache_key([a, b])
    assert k0 == cache_key([a, b]) and len(k0) == 16
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))
    k1 = cache_key([a, b])
    assert k1 != k0
    b.write_text("v 1 1 1 \n")  # size change
    assert cache_key([a, b]) != k1


def test_read_obj_vertices_plain_gz_and_errors(tmp_path):
    import gzip

    import numpy as np

    from facelab.errors import ModelFormatError
    from facelab.models._files import read_obj_vertices

    text = "# c\nmtllib x.mtl\nv 1 2 3\nv -4.5 5e-1 6\nvt 0 0\nf 1/1 2/1 1/1\n"
    p = tmp_path / "m.obj"
    p.write_text(text)
    q = tmp_path / "m.obj.gz"
    q.write_bytes(gzip.compress(text.encode()))
    want = np.array([[1, 2, 3], [-4.5, 0.5, 6]])
    np.testing.assert_array_equal(read_obj_vertices(p), want)
    np.testing.assert_array_equal(read_obj_vertices(q), want)
    bad = tmp_path / "bad.obj"
    bad.write_text("v 1 2 3 0.5 0.5 0.5\nv 1 2 3 0.5 0.5 0.5\n")
    with pytest.raises(ModelFormatError, match="expected 3 numbers"):
        read_obj_vertices(bad)
    none = tmp_path / "none.obj"
    none.write_text("# nothing\n")
    with pytest.raises(ModelFormatError, match="no vertices"):
        read_obj_vertices(none)


def test_read_obj_vertices_interleaved(tmp_path):
    import numpy as np

    from facelab.models._files import read_obj_vertices

    p = tmp_path / "two_objects.obj"
    p.write_text("o a\nv 1 2 3\nvt 0 0\nf 1/1 1/1 1/1\no b\nv 4 5 6\nv 7 8 9\n")
    np.testing.assert_array_equal(read_obj_vertices(p), [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    q = tmp_path / "single.obj"
    q.write_text("v 1 2 3")  # no trailing newline
    np.testing.assert_array_equal(read_obj_vertices(q), [[1, 2, 3]])
