"""ArcFace (insightface) identity: onnxruntime evaluation and a differentiable PyTorch IResNet.

insightface's recognition models (e.g. ``buffalo_l/w600k_r50.onnx``, 512-D, trained on
WebFace600K) are ONNX exports of the *IResNet* of ``arcface_torch``. Their weights are for
**non-commercial research only** and are not bundled: download ``buffalo_l.zip`` from the
insightface model zoo (``https://github.com/deepinsight/insightface/releases``, also fetched
by ``insightface.app.FaceAnalysis(name="buffalo_l")``) and point facelab at the ``.onnx``
file (see :func:`find_arcface_onnx`).

IResNet (Duta et al. 2020 "improved ResNet", as used by ArcFace), for a 112x112 input:

* stem: ``conv3x3(3->64) - BN - PReLU``;
* 4 stages of ``IBasicBlock`` with 64, 128, 256, 512 channels, each starting with stride 2
  (blocks per stage: r18 = 2,2,2,2; r34 = 3,4,6,3; r50 = 3,4,14,3; r100 = 3,13,30,3);
  ``IBasicBlock(x) = BN(conv3x3_s(PReLU(BN(conv3x3(BN(x)))))) + shortcut(x)`` with
  ``shortcut = BN(conv1x1_s(x))`` when the shape changes, else identity;
* head: ``BN2d - flatten (512*7*7) - FC(512) - BN1d`` -> the embedding.

Input: RGB crop aligned to the ArcFace template (:func:`~facelab.vision.align.arcface_transform`),
normalised as :math:`(255 x - 127.5) / 127.5`.

Two ways to run the same ONNX file:

* :class:`ArcFaceONNXRuntime` -- evaluation with onnxruntime (reference, not differentiable);
* :func:`load_iresnet_from_onnx` -- builds an :class:`IResNet` and loads the ONNX
  initializers into it (handling exports where BN was folded into the preceding conv), then
  checks it against onnxruntime on a random input. Differentiable, exposes stage features.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import AssetMissing, BackendUnavailable, InvalidInput, ModelFormatError
from .identity import IdentityEncoder

ARCFACE_DOWNLOAD_HINT = (
    "ArcFace weights are not bundled (insightface's models are non-commercial). Download "
    "buffalo_l.zip from https://github.com/deepinsight/insightface/releases (model zoo), unzip "
    "it and either set FACELAB_ARCFACE_ONNX=/path/to/w600k_r50.onnx, or put w600k_r50.onnx in "
    "$FACELAB_DATA/insightface/ (insightface's own ~/.insightface/models/buffalo_l/ is also searched)."
)

_DEPTHS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}


def find_arcface_onnx() -> Path:
    """Locate an ArcFace ONNX file, or raise :class:`AssetMissing` saying what to download.

    Searched: ``$FACELAB_ARCFACE_ONNX``; ``<data dir>/insightface/{w600k_r50,glintr100}.onnx``
    and ``<data dir>/insightface/models/buffalo_l/w600k_r50.onnx`` for every facelab data
    directory; ``~/.insightface/models/buffalo_l/w600k_r50.onnx``.
    """
    env = os.environ.get("FACELAB_ARCFACE_ONNX")
    if env:
        p = Path(env).expanduser()
        if p.is_file():
            return p
        raise AssetMissing(f"FACELAB_ARCFACE_ONNX={env} does not exist. {ARCFACE_DOWNLOAD_HINT}")
    from ..data import data_dirs

    cands = []
    for d in data_dirs():
        for rel in ("w600k_r50.onnx", "glintr100.onnx", "models/buffalo_l/w600k_r50.onnx"):
            cands.append(d / "insightface" / rel)
    cands.append(Path.home() / ".insightface" / "models" / "buffalo_l" / "w600k_r50.onnx")
    for p in cands:
        if p.is_file():
            return p
    raise AssetMissing(ARCFACE_DOWNLOAD_HINT)


# --------------------------------------------------------------------------------------
# The network


class IBasicBlock(nn.Module):
    """``BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN`` plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, eps: float = 1e-5):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=eps)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=eps)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """ArcFace's IResNet (arcface_torch layout).

    Args:
        layers: blocks per stage, e.g. ``(3, 4, 14, 3)`` for r50.
        widths: channels per stage (default ``(64, 128, 256, 512)``).
        embedding_dim: output size (512 for insightface models).
        input_size: square input size (112); the head's FC sees ``widths[-1] * (S/16)^2``.

    ``forward(x)`` takes **normalised** ``(B, 3, S, S)`` input; :meth:`features` returns the
    stem, the four stage outputs and the embedding.
    """

    def __init__(
        self,
        layers=(3, 4, 14, 3),
        widths=(64, 128, 256, 512),
        embedding_dim: int = 512,
        input_size: int = 112,
        eps: float = 1e-5,
    ):
        super().__init__()
        if input_size % 16:
            raise InvalidInput(f"IResNet input_size must be a multiple of 16, got {input_size}")
        self.input_size = input_size
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=eps)
        self.prelu = nn.PReLU(widths[0])
        cin = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = [IBasicBlock(cin, w, 2, eps)] + [
                IBasicBlock(w, w, 1, eps) for _ in range(n - 1)
            ]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w
        self.bn2 = nn.BatchNorm2d(cin, eps=eps)
        s = input_size // 16
        self.fc = nn.Linear(cin * s * s, embedding_dim)
        self.features_bn = nn.BatchNorm1d(embedding_dim, eps=eps)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``stem (B, 64, S, S)``, ``layer1..layer4`` (S/2 ... S/16), ``embedding (B, D)``."""
        out = {}
        h = self.prelu(self.bn1(self.conv1(x)))
        out["stem"] = h
        for i in range(1, 5):
            h = getattr(self, f"layer{i}")(h)
            out[f"layer{i}"] = h
        h = self.bn2(h).flatten(1)
        out["embedding"] = self.features_bn(self.fc(h))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["embedding"]

    def slots(self) -> list[tuple[str, str, nn.Module]]:
        """Parametric modules in execution order: ``(kind, qualified name, module)``.

        ``bn_post`` marks a BN that directly follows a conv/FC (an exporter may fold it).
        """
        out = [
            ("conv", "conv1", self.conv1),
            ("bn_post", "bn1", self.bn1),
            ("prelu", "prelu", self.prelu),
        ]
        for i in range(1, 5):
            for j, b in enumerate(getattr(self, f"layer{i}")):
                p = f"layer{i}.{j}"
                out += [
                    ("bn", f"{p}.bn1", b.bn1),
                    ("conv", f"{p}.conv1", b.conv1),
                    ("bn_post", f"{p}.bn2", b.bn2),
                    ("prelu", f"{p}.prelu", b.prelu),
                    ("conv", f"{p}.conv2", b.conv2),
                    ("bn_post", f"{p}.bn3", b.bn3),
                ]
                if b.downsample is not None:
                    out += [
                        ("conv", f"{p}.downsample.0", b.downsample[0]),
                        ("bn_post", f"{p}.downsample.1", b.downsample[1]),
                    ]
        out += [
            ("bn", "bn2", self.bn2),
            ("fc", "fc", self.fc),
            ("bn_post", "features_bn", self.features_bn),
        ]
        return out


# --------------------------------------------------------------------------------------
# Loading ONNX initializers into an IResNet


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise BackendUnavailable("reading ArcFace ONNX files needs onnx: pip install onnx") from e
    return onnx, numpy_helper


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent = root
    parts = name.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], new)


_PARAM_OPS = {"Conv", "BatchNormalization", "PRelu", "Gemm", "MatMul"}


def load_iresnet_from_onnx(path: str | os.PathLike, verify: bool = True) -> tuple[IResNet, dict]:
    """Build an :class:`IResNet` and load an insightface/arcface_torch ONNX file's weights.

    The graph's parametric nodes (Conv, BatchNormalization, PRelu, Gemm/MatMul) are matched,
    in execution order, to the IResNet's modules; a BatchNormalization that the exporter
    folded into the preceding Conv (``W' = W \\gamma/\\sigma``, ``b' = \\beta - \\gamma\\mu/\\sigma``)
    is absent from the graph, so its slot becomes the identity and the conv gets the bias.
    A leading ``Sub``/``Mul``/``Div`` by constants (input normalisation inside the graph) is
    detected and reported in the returned info.

    Returns:
        ``(model, info)`` with ``info = {"layers", "input_mean", "input_std", "max_abs_diff"}``;
        ``max_abs_diff`` compares with onnxruntime on a random input when ``verify``.

    Raises:
        ModelFormatError: the graph is not an IResNet (e.g. MobileFaceNet) or the check fails.
    """
    onnx, numpy_helper = _import_onnx()
    p = Path(path)
    try:
        model = onnx.load(str(p))
    except Exception as e:
        raise ModelFormatError(f"{p}: not a readable ONNX file ({e})") from None
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:  # Constant nodes hold values too
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = numpy_helper.to_array(a.t)
    nodes = list(g.node)
    # constants reached through shape-only ops (e.g. PRelu slopes behind an Unsqueeze)
    for _ in range(4):
        for n in nodes:
            if (
                n.op_type in ("Unsqueeze", "Reshape", "Identity", "Squeeze", "Cast")
                and n.input
                and n.input[0] in inits
            ):
                inits.setdefault(n.output[0], inits[n.input[0]])
    inp_name = next(i.name for i in g.input if i.name not in inits)

    # input normalisation folded into the graph: x -> (x - sub) * mul
    mean, std = 127.5, 127.5
    cur = inp_name
    # per-channel (3,) offsets and scales of (x - sub) * mul, from scalars or (1, 3, 1, 1) constants
    sub_v, mul_v = np.zeros(3), np.ones(3)
    prefix = 0
    for n in nodes[:8]:
        if n.op_type in ("Sub", "Mul", "Div") and n.input[0] == cur and n.input[1] in inits:
            v = np.asarray(inits[n.input[1]], dtype=np.float64).reshape(-1)
            if v.size not in (1, 3):
                break
            v = np.broadcast_to(v, (3,))
            if n.op_type == "Sub":
                sub_v += v / mul_v
            elif n.op_type == "Mul":
                mul_v *= v
            else:
                mul_v /= v
            cur = n.output[0]
            prefix += 1
        elif n.op_type not in ("Identity", "Cast", "Transpose"):
            break
    if prefix:
        mean, std = 0.0, 1.0  # insightface feeds raw 0..255 pixels to such graphs

    pnodes = [n for n in nodes if n.op_type in _PARAM_OPS]
    convs3 = {}
    stem_w = None
    for n in pnodes:
        if n.op_type == "Conv":
            w = inits.get(n.input[1])
            if w is None:
                raise ModelFormatError(f"{p}: Conv {n.name!r} has no constant weight")
            if stem_w is None:
                stem_w = w
            if w.shape[2:] == (3, 3):
                convs3[w.shape[0]] = convs3.get(w.shape[0], 0) + 1
    if stem_w is None or stem_w.shape[1] != 3:
        raise ModelFormatError(f"{p}: no RGB stem convolution; not an IResNet")
    widths = tuple(sorted(convs3))
    if len(widths) != 4:
        raise ModelFormatError(
            f"{p}: expected 4 IResNet stages, found conv widths {widths} (MobileFaceNet is not supported)"
        )
    layers = tuple((convs3[w] - (1 if i == 0 else 0)) // 2 for i, w in enumerate(widths))
    fc_w = None
    for n in pnodes:
        if n.op_type in ("Gemm", "MatMul"):
            fc_w = inits[n.input[1]]
    if fc_w is None:
        raise ModelFormatError(f"{p}: no fully connected layer")
    # Gemm weight is (out, in) with transB=1 (torch export) or (in, out); MatMul is (in, out)
    dims = fc_w.shape
    feat_in = widths[-1]
    cand = [
        d
        for d in dims
        if d % feat_in == 0 and round((d // feat_in) ** 0.5) ** 2 == d // feat_in and d != min(dims)
    ]
    in_dim = cand[0] if cand else max(dims)
    emb = dims[0] if dims[1] == in_dim else dims[1]
    side = round((in_dim // feat_in) ** 0.5)
    net = IResNet(layers, widths, emb, side * 16)

    it = iter(pnodes)
    nxt = next(it, None)
    last_out = ""  # output of the last matched Conv / FC
    for kind, name, mod in net.slots():
        if kind == "conv":
            if nxt is None or nxt.op_type != "Conv":
                raise ModelFormatError(
                    f"{p}: expected a Conv for {name}, got {nxt and nxt.op_type}"
                )
            w = torch.from_numpy(inits[nxt.input[1]].astype(np.float32))
            if tuple(w.shape) != tuple(mod.weight.shape):
                raise ModelFormatError(
                    f"{p}: {name} weight {tuple(w.shape)} != {tuple(mod.weight.shape)}"
                )
            if len(nxt.input) > 2 and nxt.input[2]:
                new = nn.Conv2d(
                    mod.in_channels,
                    mod.out_channels,
                    mod.kernel_size,
                    mod.stride,
                    mod.padding,
                    bias=True,
                )
                new.bias.data.copy_(torch.from_numpy(inits[nxt.input[2]].astype(np.float32)))
                _set_module(net, name, new)
                mod = new
            mod.weight.data.copy_(w)
            last_out = nxt.output[0]
            nxt = next(it, None)
        elif kind in ("bn", "bn_post"):
            is_bn = (
                nxt is not None and nxt.op_type == "BatchNormalization" and nxt.input[1] in inits
            )
            if is_bn and kind == "bn_post" and nxt.input[0] != last_out:
                is_bn = False  # this BN belongs to a later slot: ours was folded away
            if is_bn:
                sc, b, m, v = (
                    torch.from_numpy(inits[nxt.input[k]].astype(np.float32)).reshape(-1)
                    for k in range(1, 5)
                )
                if sc.shape[0] != mod.num_features:
                    raise ModelFormatError(
                        f"{p}: {name} has {sc.shape[0]} channels, expected {mod.num_features}"
                    )
                eps = next((a.f for a in nxt.attribute if a.name == "epsilon"), 1e-5)
                mod.weight.data.copy_(sc)
                mod.bias.data.copy_(b)
                mod.running_mean.copy_(m)
                mod.running_var.copy_(v)
                mod.eps = float(eps)
                nxt = next(it, None)
            else:
                # folded into the previous conv/fc by the exporter
                _set_module(net, name, nn.Identity())
        elif kind == "prelu":
            if nxt is None or nxt.op_type != "PRelu":
                raise ModelFormatError(f"{p}: expected PRelu for {name}, got {nxt and nxt.op_type}")
            mod.weight.data.copy_(
                torch.from_numpy(inits[nxt.input[1]].astype(np.float32)).reshape(-1)
            )
            nxt = next(it, None)
        elif kind == "fc":
            if nxt is None or nxt.op_type not in ("Gemm", "MatMul"):
                raise ModelFormatError(f"{p}: expected the FC layer, got {nxt and nxt.op_type}")
            w = inits[nxt.input[1]].astype(np.float32)
            trans_b = next((a.i for a in nxt.attribute if a.name == "transB"), 0)
            W = w if (nxt.op_type == "Gemm" and trans_b) else w.T
            mod.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            bias = None
            if nxt.op_type == "Gemm" and len(nxt.input) > 2:
                bias = inits.get(nxt.input[2])
            else:  # MatMul followed by Add(bias)
                mm_out = nxt.output[0]
                add = next((n for n in nodes if n.op_type == "Add" and mm_out in n.input), None)
                if add is not None:
                    other = [i for i in add.input if i != mm_out][0]
                    bias = inits.get(other)
                    if bias is not None:
                        last_out = add.output[0]
            mod.bias.data.copy_(
                torch.from_numpy(bias.astype(np.float32)).reshape(-1)
                if bias is not None
                else torch.zeros(emb)
            )
            if nxt.op_type == "Gemm" or bias is None:
                last_out = nxt.output[0]
            nxt = next(it, None)
    if nxt is not None:
        raise ModelFormatError(
            f"{p}: unmatched layer {nxt.op_type} {nxt.name!r}; not an arcface_torch IResNet"
        )
    net.requires_grad_(False)
    net.eval()
    info = {
        "layers": layers,
        "widths": widths,
        "embedding_dim": emb,
        "input_size": side * 16,
        "input_mean": mean,
        "input_std": std,
        "max_abs_diff": None,
    }
    if verify:
        try:
            ort = ArcFaceONNXRuntime(p)
        except BackendUnavailable:
            return net, info
        gen = torch.Generator().manual_seed(0)
        raw = torch.rand(2, 3, side * 16, side * 16, generator=gen) * 255.0
        sub_t = torch.from_numpy(sub_v).float()[:, None, None]
        mul_t = torch.from_numpy(mul_v).float()[:, None, None]
        x = (raw - sub_t) * mul_t if prefix else (raw - mean) / std
        ref = ort.run_raw((raw if prefix else x).numpy())
        with torch.no_grad():
            got = net(x).numpy()
        diff = float(np.abs(got - ref).max())
        info["max_abs_diff"] = diff
        scale = float(np.abs(ref).max()) + 1e-6
        if diff > 1e-3 * scale:
            raise ModelFormatError(
                f"{p}: the PyTorch IResNet differs from onnxruntime by {diff:.3g} (max |ref| {scale:.3g}); "
                "the graph's layer order is not the arcface_torch one"
            )
    info["graph_sub"] = [float(v) for v in sub_v]
    info["graph_mul"] = [float(v) for v in mul_v]
    info["graph_normalises"] = bool(prefix)
    return net, info


# --------------------------------------------------------------------------------------
# onnxruntime reference and the identity encoder


class ArcFaceONNXRuntime:
    """Evaluate an ArcFace ONNX file with onnxruntime (CPU)."""

    def __init__(self, path: str | os.PathLike):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(
                "ArcFace evaluation needs onnxruntime: pip install onnxruntime"
            ) from e
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """Run the graph on ``x (B, 3, S, S)`` float32 exactly as given."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fixed_batch == 1 and x.shape[0] != 1:  # graphs exported with a fixed batch
            return np.concatenate([self.run_raw(x[i : i + 1]) for i in range(x.shape[0])])
        return self.session.run(None, {self.input_name: x})[0]


class ArcFaceIdentity(IdentityEncoder):
    """ArcFace embeddings (512-D, cosine) from an insightface ONNX file, in PyTorch.

    ``crop_features`` runs the differentiable :class:`IResNet` loaded from the ONNX file;
    :meth:`embed_crops_onnxruntime` runs the same file with onnxruntime for reference.
    Same person iff cosine distance :math:`1 - \\cos` is below ``threshold`` (0.72, i.e.
    cosine similarity above 0.28, a common operating point for w600k_r50).
    """

    name = "arcface"
    template = "arcface"
    input_size = 112
    metric = "cosine"
    threshold = 0.72

    def __init__(self, path: str | os.PathLike | None = None, verify: bool = True):
        super().__init__()
        self.path = Path(path) if path is not None else find_arcface_onnx()
        self.net, self.info = load_iresnet_from_onnx(self.path, verify=verify)
        self.input_size = int(self.info["input_size"])
        self._ort: ArcFaceONNXRuntime | None = None

    def _normalise(self, crops: torch.Tensor) -> torch.Tensor:
        if self.info.get("graph_normalises"):
            sub = torch.tensor(self.info["graph_sub"], dtype=crops.dtype, device=crops.device)
            mul = torch.tensor(self.info["graph_mul"], dtype=crops.dtype, device=crops.device)
            return (crops * 255.0 - sub[:, None, None]) * mul[:, None, None]
        return (crops * 255.0 - self.info["input_mean"]) / self.info["input_std"]

    def crop_features(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        if crops.dim() != 4 or crops.shape[1:] != (3, self.input_size, self.input_size):
            raise InvalidInput(
                f"ArcFace crops must be (B, 3, {self.input_size}, {self.input_size}), got {tuple(crops.shape)}"
            )
        return self.net.features(self._normalise(crops))

    def embed_crops_onnxruntime(self, crops: torch.Tensor) -> torch.Tensor:
        """Reference embeddings from onnxruntime for crops ``(B, 3, S, S)`` in [0, 1]."""
        if self._ort is None:
            self._ort = ArcFaceONNXRuntime(self.path)
        x = crops.detach().float().cpu() * 255.0
        if not self.info.get("graph_normalises"):
            x = (x - self.info["input_mean"]) / self.info["input_std"]
        return torch.from_numpy(self._ort.run_raw(x.numpy()))


__all__ = [
    "ARCFACE_DOWNLOAD_HINT",
    "ArcFaceIdentity",
    "ArcFaceONNXRuntime",
    "IBasicBlock",
    "IResNet",
    "find_arcface_onnx",
    "load_iresnet_from_onnx",
]
