"""Read dlib's serialized face recognition network (``dlib_face_recognition_resnet_model_v1.dat``) in pure Python.

The file layout (verified against dlib's source and the file; see models/README.md): a ``loss_metric_2`` record,
130 nested version integers, the ``input_rgb_image_sized`` layer, then 108 layer records input side first, each
followed by a trailer of 3 bools and 3 empty tensors (the bottom one: 4 tensors and an integer). The file stores
no tag ids or skip targets, so the wiring is dlib's ``anet_type`` (see ``backbones/dlib_resnet.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .backbones.dlib_resnet import (
    DLIB_BLOCKS, DLIB_MEAN_RGB, DLIB_STD, DlibDenseBackbone, DlibStem, make_blocks,
)
from .errors import ModelFileError

DLIB_CHIP_SIZE = 150


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.pos = 0
        self.name = name

    def fail(self, what: str):
        raise ModelFileError(f"{self.name} is not a dlib face recognition network file: {what} at byte {self.pos}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            self.fail("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self) -> int:
        ctrl = self.byte()
        n = ctrl & 0x0F
        if n > 8:
            self.fail("bad integer")
        if self.pos + n > len(self.data):
            self.fail("unexpected end of file")
        val = int.from_bytes(self.data[self.pos:self.pos + n], "little")
        self.pos += n
        return -val if ctrl & 0x80 else val

    def string(self) -> str:
        n = self.int()
        if n < 0 or n > 256 or self.pos + n > len(self.data):
            self.fail("bad string")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        try:
            return s.decode("ascii")
        except UnicodeDecodeError:
            self.fail("bad string")

    def bool(self) -> bool:
        b = self.byte()
        if b not in (0x30, 0x31):
            self.fail("bad bool")
        return b == 0x31

    def double(self) -> float:
        m = self.int()
        e = self.int()
        return float(m) * 2.0 ** e

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            self.fail(f"unsupported tensor version {version}")
        dims = [self.int() for _ in range(4)]
        if any(d < 0 for d in dims):
            self.fail("bad tensor shape")
        count = int(np.prod(dims))
        nbytes = 4 * count
        if self.pos + nbytes > len(self.data):
            self.fail("unexpected end of file inside a tensor")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(dims).copy()
        self.pos += nbytes
        return arr

    def alias(self) -> tuple[int, ...]:
        version = self.int()
        if version != 1:
            self.fail(f"unsupported alias tensor version {version}")
        return tuple(self.int() for _ in range(4))


@dataclass
class DlibLayer:
    kind: str
    params: np.ndarray | None = None
    ints: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)


def _read_layer(r: _Reader) -> DlibLayer:
    name = r.string()
    if name == "con_4":
        params = r.tensor()
        ints = tuple(r.int() for _ in range(7))  # num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x
        r.alias()
        r.alias()
        for _ in range(4):
            r.double()
        return DlibLayer("con", params, ints)
    if name == "affine_":
        params = r.tensor()
        r.alias()
        r.alias()
        mode = r.int()
        if mode != 0:
            r.fail(f"affine mode {mode} is not per-channel")
        return DlibLayer("affine", params)
    if name in ("relu_", "add_prev_"):
        return DlibLayer(name.rstrip("_"))
    if name in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(name[:-2], None, tuple(r.int() for _ in range(6)))
    if name == "fc_2":
        n_out = r.int()
        n_in = r.int()
        params = r.tensor()
        return DlibLayer("fc", params, (n_out, n_in))  # what follows the fc is not needed
    r.fail(f"unsupported layer {name!r}")


def read_dlib_layers(path: str | os.PathLike) -> tuple[dict, list[DlibLayer]]:
    """Parse the file -> (header info, the 108 layer records input side first)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"dlib network file not found: {path}")
    data = path.read_bytes()
    r = _Reader(data, str(path))
    r.int()  # loss layer version
    if r.string() != "loss_metric_2":
        r.fail("no loss_metric_2 header")
    info = {"margin": r.double(), "distance_threshold": r.double()}
    versions = []
    while True:
        v = r.int()
        if v == 3 and versions:  # the bottom layer (wraps the input layer)
            break
        if v not in (1, 2) or len(versions) > 1000:
            r.fail("bad layer nesting")
        versions.append(v)
    if r.string() != "input_rgb_image_sized":
        r.fail("no input_rgb_image_sized layer")
    info["mean_rgb"] = (r.double(), r.double(), r.double())
    info["chip_size"] = (r.int(), r.int())
    n_layers = versions.count(2) + 1
    layers = [_read_layer(r)]
    _skip_trailer(r)
    r.int()  # the bottom layer's sample expansion factor
    while len(layers) < n_layers:
        layers.append(_read_layer(r))
        if layers[-1].kind == "fc":
            break
        _skip_trailer(r)
    return info, layers


def _skip_trailer(r: _Reader) -> None:
    """3 bools and the (empty) gradient/output tensors dlib writes after every layer."""
    for _ in range(3):
        r.bool()
    while r.data[r.pos:r.pos + 2] == b"\x01\x02":
        r.tensor()


class DlibResNet(nn.Module):
    """dlib's original network: (N,3,150,150) in dlib normalization -> (N,128) descriptor (not normalized)."""

    def __init__(self):
        super().__init__()
        self.stem = DlibStem()
        self.blocks = make_blocks(dense=False)
        self.fc = nn.Linear(256, 128, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for blk in self.blocks:
            x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def dlib_state_dict(path: str | os.PathLike) -> tuple[dict, dict]:
    """The file's weights as a :class:`DlibResNet` state dict, plus header info."""
    info, layers = read_dlib_layers(path)
    cons = [l for l in layers if l.kind == "con"]
    affs = [l for l in layers if l.kind == "affine"]
    fcs = [l for l in layers if l.kind == "fc"]
    if len(cons) != 29 or len(affs) != 29 or len(fcs) != 1:
        raise ModelFileError(
            f"{path}: expected 29 convolutions, 29 affine layers and 1 fc (dlib's face ResNet); "
            f"found {len(cons)}, {len(affs)}, {len(fcs)}")
    ref = DlibResNet()
    names = ["stem.conv"] + [f"blocks.{i}.conv{j}" for i in range(len(DLIB_BLOCKS)) for j in (1, 2)]
    aff_names = ["stem.aff"] + [f"blocks.{i}.aff{j}" for i in range(len(DLIB_BLOCKS)) for j in (1, 2)]
    own = ref.state_dict()
    sd = {}
    for name, layer in zip(names, cons):
        w_shape = tuple(own[name + ".weight"].shape)
        n_w = int(np.prod(w_shape))
        flat = layer.params.reshape(-1)
        if flat.size != n_w + w_shape[0] or layer.ints[:3] != (w_shape[0], w_shape[2], w_shape[3]):
            raise ModelFileError(f"{path}: convolution {name} has an unexpected shape {layer.ints[:3]}")
        sd[name + ".weight"] = torch.from_numpy(flat[:n_w].reshape(w_shape).copy())
        sd[name + ".bias"] = torch.from_numpy(flat[n_w:].copy())
    for name, layer in zip(aff_names, affs):
        c = own[name + ".weight"].shape[0]
        flat = layer.params.reshape(-1)
        if flat.size != 2 * c:
            raise ModelFileError(f"{path}: affine layer {name} has {flat.size // 2} channels, expected {c}")
        sd[name + ".weight"] = torch.from_numpy(flat[:c].copy())
        sd[name + ".bias"] = torch.from_numpy(flat[c:].copy())
    fc = fcs[0].params.reshape(-1)
    if fc.size != 256 * 128:
        raise ModelFileError(f"{path}: fc layer has {fc.size} weights, expected {256 * 128}")
    sd["fc.weight"] = torch.from_numpy(fc.reshape(256, 128).T.copy())
    return sd, info


def load_dlib_resnet(path: str | os.PathLike) -> DlibResNet:
    sd, _ = dlib_state_dict(path)
    net = DlibResNet()
    net.load_state_dict(sd)
    return net.eval()


def dense_backbone_state(ref_sd: dict) -> dict:
    """The original weights in the dense backbone's layout: fc (128x256) becomes the 1x1 head conv."""
    sd = {k: v for k, v in ref_sd.items() if not k.startswith("fc.")}
    sd["head.weight"] = ref_sd["fc.weight"].reshape(128, 256, 1, 1).clone()
    sd["head.bias"] = torch.zeros(128)
    return sd


def dlib_dense_backbone(path: str | os.PathLike) -> DlibDenseBackbone:
    sd, _ = dlib_state_dict(path)
    bb = DlibDenseBackbone()
    bb.load_state_dict(dense_backbone_state(sd))
    return bb


def normalize_chips(chips_rgb_uint8: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) uint8 RGB -> (N,3,H,W) in dlib's normalization ((x - mean) / 256)."""
    t = torch.from_numpy(np.ascontiguousarray(chips_rgb_uint8)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
    return (t - mean) / DLIB_STD[0]


# YuNet's five landmarks (right eye, left eye, nose tip, right and left mouth corner) in dlib's 150 px chip
# (HOG detector + shape_predictor_5 + get_face_chip(size=150, padding=0.25)), fitted on training images only
# by training/dlib_joint/prepare.py and made left-right symmetric.
DLIB_YUNET_TEMPLATE_150 = [[47.655, 44.921], [101.345, 44.921], [74.5, 76.598], [51.677, 100.464], [97.323, 100.464]]


def dlib_decoder_spec(channels=(128, 128, 64, 32, 3)) -> dict:
    """Four transposed convs taking the 8x8 map C to exactly 150x150: 8 -> 19 -> 38 -> 75 -> 150."""
    geometry = [(5, 2, 0), (4, 2, 1), (3, 2, 1), (4, 2, 1)]  # kernel, stride, padding
    layers = [
        {"in": a, "out": b, "kernel": k, "stride": s, "padding": p, "output_padding": 0}
        for (a, b), (k, s, p) in zip(zip(channels[:-1], channels[1:]), geometry)
    ]
    return {"layers": layers, "hidden_activation": "relu", "final_activation": "tanh"}


def dlib_joint_spec(threshold: float = 0.5, provenance: dict | None = None, **overrides) -> dict:
    """Spec of the joint model built on dlib's network (family ``dlib-resnet``, C = 128x8x8 on a 150 chip)."""
    spec = {
        "name": "dlib-resnet-maxpool-joint",
        "family": "dlib-resnet",
        "input_size": [DLIB_CHIP_SIZE, DLIB_CHIP_SIZE],
        "template": [list(p) for p in DLIB_YUNET_TEMPLATE_150],
        "landmark_weights": [2.0, 2.0, 1.0, 1.0, 1.0],
        "normalization": {"mean": list(DLIB_MEAN_RGB), "std": list(DLIB_STD)},
        "channels": 128,
        "threshold": float(threshold),
        "decoder": dlib_decoder_spec(),
        "provenance": provenance or {},
    }
    spec.update(overrides)
    return spec


def joint_model_from_dlib(path: str | os.PathLike, spec: dict | None = None):
    """A JointModel whose dense backbone carries dlib's weights (fc -> 1x1 head); the decoder is untrained."""
    from .model import JointModel, file_sha256

    sd, _ = dlib_state_dict(path)
    if spec is None:
        spec = dlib_joint_spec(provenance={
            "backbone": "dlib_face_recognition_resnet_model_v1.dat (Davis King, dlib; CC0 / public domain)",
            "source_file_sha256": file_sha256(path),
            "decoder": "untrained",
        })
    model = JointModel(spec)
    model.backbone.load_state_dict(dense_backbone_state(sd))
    return model


class DlibReferenceModel(nn.Module):
    """dlib's original network behind the JointModel embedding API, for comparisons (no decoder).

    ``embed`` returns the 128-d descriptor as both C (N,128,1,1) and F; scores are cosine like the joint model's.
    Its spec copies the joint model's alignment so both go through the same pipeline.
    """

    def __init__(self, net: DlibResNet, spec: dict | None = None):
        super().__init__()
        self.net = net.eval()
        self.spec = dict(spec or dlib_joint_spec())
        self.spec["name"] = "dlib-resnet-original"
        self.register_buffer("_mean", torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1), False)
        self.sha256: str | None = None
        self.path: str | None = None

    @property
    def input_size(self) -> tuple[int, int]:
        return DLIB_CHIP_SIZE, DLIB_CHIP_SIZE

    @property
    def threshold(self) -> float:
        return float(self.spec["threshold"])

    @property
    def device(self) -> torch.device:
        return self._mean.device

    def preprocess(self, aligned_rgb_uint8: np.ndarray) -> torch.Tensor:
        arr = np.asarray(aligned_rgb_uint8)
        if arr.ndim == 3:
            arr = arr[None]
        return normalize_chips(arr).to(self.device)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        F_ = self.net(x)
        return F_[:, :, None, None], F_
