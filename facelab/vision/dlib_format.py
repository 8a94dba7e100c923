"""A reader for dlib's DNN serialization (``.dat`` files written by ``dlib::serialize(net)``).

facelab's own parser (no dlib needed), written from dlib's documented serialization rules:

**Primitives.**

* Integers: one control byte ``n | 0x80*negative`` (``n`` = number of bytes, 0-8)
  followed by ``n`` little-endian magnitude bytes. ``0`` is the single byte ``00``.
* ``bool``: the ASCII character ``'1'`` or ``'0'``.
* ``float``/``double``: two integers, a 64-bit mantissa :math:`m` and a 16-bit exponent
  :math:`e`, with value :math:`m \\cdot 2^{e}`.
* ``std::string``: its length (integer) then the bytes.
* ``tensor`` (resizable_tensor): version ``2``, then ``num_samples, k, nr, nc`` (integers),
  then ``num_samples*k*nr*nc`` raw little-endian IEEE float32 values (row-major, NCHW).
* ``alias_tensor``: version ``1`` and the four dimensions (no data).

**Networks.** ``add_loss_layer`` writes ``version(1), loss details, subnet``. Every
``add_layer`` writes ``version(2), subnet, details, 3 bools, x_grad, cached_output,
params_grad``; the bottom one (whose subnet is the input layer) writes ``version(3), input
layer, details, 3 bools, x_grad, cached_output, grad_final, sample_expansion_factor``;
``add_tag_layer`` / ``add_skip_layer`` write ``version(1), subnet``. Because the subnet is
written *before* a layer's own details, a file is: all version numbers from the top of
the network down, the input layer, then each computational layer's details from the bottom
up. Tags and skips leave only a ``1`` in the version chain, so the wiring of a residual
network is not in the file: :mod:`facelab.vision.dlib_resnet` states it and checks the
parsed layer sequence against it.

Layer details (by their version string): ``con_4`` (params, num_filters, nr, nc, stride_y,
stride_x, padding_y, padding_x, filters alias, biases alias, 4 multipliers; ``con_5`` adds
a ``use_bias`` bool), ``affine_``
(params = [gamma; beta], gamma alias, beta alias, mode), ``bn_con2``/``bn_fc2``,
``relu_``, ``max_pool_2``/``avg_pool_2`` (nr, nc, stride_y, stride_x, padding_y,
padding_x), ``add_prev_``, ``fc_2`` (num_outputs, num_inputs, params, weights alias,
biases alias, bias_mode, 4 multipliers), ``input_rgb_image_sized`` (avg_red, avg_green,
avg_blue, NR, NC).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError


class DlibReader:
    """Sequential reader of dlib-serialized primitives over a bytes buffer."""

    def __init__(self, data: bytes, name: str = "<bytes>"):
        self.data = memoryview(data)
        self.pos = 0
        self.name = name

    def _fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.name}: bad dlib serialization at byte {self.pos}: {what}")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self._fail(f"unexpected end of file (needed {n} more bytes)")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def int(self) -> int:
        """A dlib integer (signed or unsigned; the sign bit is 0x80 of the control byte)."""
        ctrl = self._take(1)[0]
        n = ctrl & 0x0F
        if n > 8 or ctrl & 0x70:
            raise self._fail(f"invalid integer control byte 0x{ctrl:02x}")
        v = int.from_bytes(bytes(self._take(n)), "little") if n else 0
        return -v if ctrl & 0x80 else v

    def float(self) -> float:
        """A dlib float/double: mantissa * 2**exponent."""
        ctrl = self.data[self.pos] if self.pos < len(self.data) else 0
        if ctrl & 0x70:
            raise self._fail("old ASCII float format is not supported")
        m = self.int()
        e = self.int()
        if e >= 32000:  # dlib's markers for inf / nan
            return float("nan") if e == 32002 else (float("inf") if m >= 0 else float("-inf"))
        return float(np.ldexp(np.float64(m), e))

    def bool(self) -> bool:
        c = bytes(self._take(1))
        if c not in (b"0", b"1"):
            raise self._fail(f"expected a bool ('0'/'1'), got {c!r}")
        return c == b"1"

    def string(self) -> str:
        n = self.int()
        if n < 0 or n > 1 << 20:
            raise self._fail(f"implausible string length {n}")
        return bytes(self._take(n)).decode("latin-1")

    def peek_string(self, max_len: int = 64) -> str | None:
        """The string at the current position if one plausibly starts here (no advance)."""
        pos = self.pos
        try:
            n = self.int()
            if not 0 < n <= max_len:
                return None
            s = bytes(self._take(n))
            if not all(32 <= c < 127 for c in s):
                return None
            return s.decode("ascii")
        except ModelFormatError:
            return None
        finally:
            self.pos = pos

    def tensor(self) -> np.ndarray:
        """A resizable_tensor -> float32 array of shape (num_samples, k, nr, nc)."""
        v = self.int()
        if v != 2:
            raise self._fail(f"unsupported tensor version {v}")
        shape = tuple(self.int() for _ in range(4))
        if any(s < 0 for s in shape):
            raise self._fail(f"negative tensor shape {shape}")
        n = int(np.prod(shape))
        raw = self._take(4 * n)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        v = self.int()
        if v != 1:
            raise self._fail(f"unsupported alias_tensor version {v}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


@dataclass
class DlibLayer:
    """One computational layer: its dlib version string and parameters (numpy)."""

    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    version: str
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        shapes = {k: (v.shape if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}
        return f"DlibLayer({self.kind}, {shapes})"


@dataclass
class DlibNet:
    """A parsed network.

    Attributes:
        loss: ``(version, {param: value})`` of the loss layer (e.g. ``loss_metric_2`` with
            ``margin`` and ``distance_threshold``).
        input: ``(version, {param: value})`` of the input layer (``avg_red`` ...).
        chain: version numbers from the top of the network down (2/3: add_layer,
            1: tag or skip layer).
        layers: computational layers from the **bottom** (input side) up.
    """

    loss: tuple[str, dict]
    input: tuple[str, dict]
    chain: list[int]
    layers: list[DlibLayer]


def _read_input(r: DlibReader) -> tuple[str, dict]:
    name = r.string()
    if name in ("input_rgb_image_sized", "input_rgb_image"):
        p = {"avg_red": r.float(), "avg_green": r.float(), "avg_blue": r.float()}
        if name == "input_rgb_image_sized":
            p["nr"] = r.int()
            p["nc"] = r.int()
        return name, p
    raise ModelFormatError(f"{r.name}: unsupported dlib input layer {name!r}")


def _read_multipliers(r: DlibReader, p: dict) -> None:
    for k in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        p[k] = r.float()


def _read_details(r: DlibReader) -> DlibLayer:
    v = r.string()
    if v in ("con_4", "con_5"):
        params = r.tensor().reshape(-1)
        p: dict = {"num_filters": r.int(), "nr": r.int(), "nc": r.int()}
        p["stride_y"], p["stride_x"] = r.int(), r.int()
        p["padding_y"], p["padding_x"] = r.int(), r.int()
        fshape = r.alias_tensor()
        bshape = r.alias_tensor()
        _read_multipliers(r, p)
        use_bias = r.bool() if v == "con_5" else True  # con_5 (dlib >= 19.22) can drop the bias
        nf = int(np.prod(fshape))
        nb = int(np.prod(bshape)) if use_bias else 0
        if nf + nb != params.size:
            raise r._fail(f"{v} params size {params.size} != filters {fshape} + biases {bshape}")
        p["weight"] = params[:nf].reshape(fshape)
        p["bias"] = params[nf:].reshape(-1) if use_bias else np.zeros(fshape[0], np.float32)
        return DlibLayer("con", v, p)
    if v == "affine_":
        params = r.tensor().reshape(-1)
        g = r.alias_tensor()
        b = r.alias_tensor()
        mode = r.int()
        ng, nb = int(np.prod(g)), int(np.prod(b))
        if ng + nb != params.size:
            raise r._fail("affine_ params do not match gamma/beta sizes")
        return DlibLayer(
            "affine",
            v,
            {
                "gamma": params[:ng].reshape(g),
                "beta": params[ng:].reshape(b),
                "mode": "conv" if mode == 0 else "fc",
            },
        )
    if v in ("bn_con2", "bn_fc2"):
        params = r.tensor().reshape(-1)
        g = r.alias_tensor()
        r.alias_tensor()
        r.tensor()  # means (training batch)
        r.tensor()  # invstds
        rm = r.tensor().reshape(-1)
        rv = r.tensor().reshape(-1)
        r.int()  # num_updates
        r.int()  # running_stats_window_size
        p = {}
        _read_multipliers(r, p)
        eps = r.float()
        ng = int(np.prod(g))
        gamma, beta = params[:ng], params[ng:]
        # inference-time batch norm == affine: g' = g / sqrt(var + eps), b' = b - g' * mean
        scale = (gamma / np.sqrt(rv + eps)).astype(np.float32)
        return DlibLayer(
            "affine",
            v,
            {
                "gamma": scale.reshape(g),
                "beta": (beta - scale * rm).astype(np.float32).reshape(g),
                "mode": "conv" if v == "bn_con2" else "fc",
            },
        )
    if v == "relu_":
        return DlibLayer("relu", v)
    if v in ("max_pool_2", "avg_pool_2"):
        p = {"nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int()}
        p["padding_y"], p["padding_x"] = r.int(), r.int()
        return DlibLayer(v[:-2], v, p)
    if v == "add_prev_":
        return DlibLayer("add_prev", v)
    if v == "fc_2":
        p = {"num_outputs": r.int(), "num_inputs": r.int()}
        params = r.tensor().reshape(-1)
        w = r.alias_tensor()
        b = r.alias_tensor()
        p["bias_mode"] = "no_bias" if r.int() == 1 else "bias"
        _read_multipliers(r, p)
        nw = int(np.prod(w))
        p["weight"] = params[:nw].reshape(p["num_inputs"], p["num_outputs"])  # y = x @ W
        p["bias"] = params[nw:].reshape(-1) if p["bias_mode"] == "bias" else None
        return DlibLayer("fc", v, p)
    raise ModelFormatError(f"{r.name}: unsupported dlib layer {v!r} at byte {r.pos}")


def _read_loss(r: DlibReader) -> tuple[str, dict]:
    v = r.string()
    if v == "loss_metric_2":
        return v, {"margin": r.float(), "distance_threshold": r.float()}
    if v == "loss_metric_":
        return v, {}
    raise ModelFormatError(f"{r.name}: unsupported dlib loss layer {v!r} (expected loss_metric)")


def parse_dlib_net(data: bytes, name: str = "<bytes>") -> DlibNet:
    """Parse a serialized dlib network (loss layer on top) into a :class:`DlibNet`."""
    r = DlibReader(data, name)
    v = r.int()
    if v != 1:
        raise r._fail(f"expected an add_loss_layer (version 1), got {v}")
    loss = _read_loss(r)
    chain: list[int] = []
    while True:
        v = r.int()
        chain.append(v)
        nxt = r.peek_string()
        if v in (2, 3) and nxt is not None and nxt.startswith("input"):
            break
        if v not in (1, 2) or len(chain) > 100_000:
            raise r._fail(f"unexpected layer version {v} in the network chain")
    inp = _read_input(r)
    n_layers = sum(1 for c in chain if c in (2, 3))
    layers: list[DlibLayer] = []
    for i in range(n_layers):
        layers.append(_read_details(r))
        for _ in range(3):
            r.bool()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        r.tensor()  # params_grad (or grad_final for the input-side layer)
        if i == 0 and chain[-1] == 3:
            r.int()  # sample_expansion_factor
    if r.pos != len(r.data):
        raise r._fail(f"{len(r.data) - r.pos} trailing bytes after the network")
    return DlibNet(loss=loss, input=inp, chain=chain, layers=layers)


def read_dlib_net(path: str | os.PathLike) -> DlibNet:
    """Read and parse a dlib ``.dat`` network file (``.bz2`` / ``.gz`` accepted)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such file")
    raw = p.read_bytes()
    if p.suffix == ".bz2":
        import bz2

        raw = bz2.decompress(raw)
    elif p.suffix == ".gz":
        import gzip

        raw = gzip.decompress(raw)
    return parse_dlib_net(raw, str(p))


__all__ = ["DlibLayer", "DlibNet", "DlibReader", "parse_dlib_net", "read_dlib_net"]
