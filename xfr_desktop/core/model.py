"""The joint face model: backbone -> conv map C -> embedding F = global max pool of C; decoder C -> face.

Model files (``.pt``) hold a dict written by :func:`save_model`::

    {"format": "xfr-joint-model", "format_version": 1, "spec": {...JSON-able...},
     "backbone": state_dict, "decoder": state_dict}

and load with ``torch.load(weights_only=True)``. The spec keys are documented in ``default_spec``.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .backbones import build_backbone
from .decoder import build_decoder, paper_decoder_spec, spatial_mix_size
from .errors import ModelFileError, XfrError
from .fileio import atomic_write, file_sha256  # noqa: F401  (file_sha256 re-exported)
from ..paths import REPO_ROOT

log = logging.getLogger(__name__)

FORMAT = "xfr-joint-model"
FORMAT_VERSION = 1
MODELS_DIR = Path(os.environ.get("XFR_MODELS_DIR", REPO_ROOT / "models"))
DEFAULT_MODEL_NAME = "xfr-dlib-affine-joint.pt"

ARCFACE_TEMPLATE_112 = [
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041],
]


def default_spec(**overrides) -> dict:
    """The paper's configuration: IResNet-50, 112x112 ArcFace alignment, max-pool head, 4-layer decoder."""
    spec = {
        "name": "iresnet50-maxpool-joint",
        "family": "iresnet",               # key into backbones.BACKBONE_BUILDERS
        "depth": 50,
        "input_size": [112, 112],          # H, W of the aligned face
        "template": ARCFACE_TEMPLATE_112,  # 5 landmarks (eyes, nose, mouth corners) in input pixels
        "normalization": {"mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]},  # (x - mean) / std, RGB
        "channels": 512,                   # channels of C (= embedding size)
        "threshold": 0.3,                  # decision threshold on the cosine score
        "decoder": paper_decoder_spec(),
        "provenance": {},
    }
    spec.update(overrides)
    return spec


class JointModel(nn.Module):
    """Backbone + decoder with the API the rest of the product uses."""

    def __init__(self, spec: dict, backbone: nn.Module | None = None, decoder: nn.Module | None = None):
        super().__init__()
        self.spec = copy.deepcopy(spec)
        self.backbone = backbone if backbone is not None else build_backbone(self.spec)
        self.decoder = decoder if decoder is not None else build_decoder(self.spec["decoder"])
        norm = self.spec["normalization"]
        self.register_buffer("_mean", torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("_std", torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.sha256: str | None = None  # of the file it was loaded from
        self.path: str | None = None

    # --- properties -----------------------------------------------------------------------------------
    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.spec["input_size"]
        return int(h), int(w)

    @property
    def threshold(self) -> float:
        return float(self.spec["threshold"])

    @property
    def template(self) -> np.ndarray:
        return np.asarray(self.spec["template"], dtype=np.float64)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- the API ------------------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N,3,H,W) normalized -> (C (N,c,h,w), F (N,c)) with F = amax of C over space."""
        C = self.backbone(x)
        return C, C.amax(dim=(2, 3))

    def reconstruct(self, C: torch.Tensor) -> torch.Tensor:
        """C -> (N,3,H,W) in the input normalization."""
        return self.decoder(C)

    def preprocess(self, aligned_rgb_uint8: np.ndarray) -> torch.Tensor:
        """(H,W,3) uint8 RGB (or (N,H,W,3)) -> (N,3,H,W) float tensor on the model's device."""
        arr = np.asarray(aligned_rgb_uint8)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.shape[1:3] != self.input_size or arr.shape[3] != 3:
            raise ValueError(f"expected aligned RGB faces of {self.input_size}, got {arr.shape[1:]}")
        dtype = next(self.parameters()).dtype
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device).permute(0, 3, 1, 2).to(dtype)
        # contiguous: the permuted NHWC view is channels-last, and backward through conv on it crashes torch 2.13 CPU
        return ((t - self._mean.to(dtype)) / self._std.to(dtype)).contiguous()

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """Inverse of preprocess: (N,3,H,W) normalized -> (N,H,W,3) uint8."""
        img = (x.detach().float() * self._std + self._mean).clamp(0, 255).round().byte()
        return img.permute(0, 2, 3, 1).cpu().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)[1]


# --- files -------------------------------------------------------------------------------------------------
def save_model(model: JointModel, path: str | os.PathLike) -> str:
    """Write atomically (temp file + rename) so a killed process never leaves a half file. Returns sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec_json": json.dumps(model.spec, sort_keys=True),
        "backbone": {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()},
        "decoder": {k: v.detach().cpu() for k, v in model.decoder.state_dict().items()},
    }
    atomic_write(path, lambda f: torch.save(payload, f))
    return file_sha256(path)


def default_model_path() -> Path:
    return MODELS_DIR / DEFAULT_MODEL_NAME


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelFileError("CUDA was requested but no CUDA device is available; use --device cpu")
    return dev


def load_model(path: str | os.PathLike | None = None, device: str | torch.device | None = None) -> JointModel:
    """Load a joint model file; ``None`` means the bundled default. Errors name the file."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, Exception) as exc:  # noqa: B014
        kind = "truncated or corrupt" if path.stat().st_size > 0 else "empty"
        raise ModelFileError(f"cannot read model file {path}: {kind} ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an XFR joint model file (no '{FORMAT}' header)")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer XFR Desktop (format {payload['format_version']})")
    try:
        spec = json.loads(payload["spec_json"])
        check_spec(spec, stored_decoder=_numel(payload["decoder"]), where=f"model file {path}")
        model = JointModel(spec)
        model.backbone.load_state_dict(payload["backbone"])
        model.decoder.load_state_dict(payload["decoder"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        msg = str(exc).splitlines()[0][:300]
        raise ModelFileError(f"model file {path} does not match its own spec: {msg}") from None
    _check_finite_weights(model, path)
    model.sha256 = file_sha256(path)
    model.path = str(path)
    return model.to(resolve_device(device)).eval()


# Far above any face model (the paper's: 512 channels, 112 px, 4 decoder layers), far below what exhausts memory.
MAX_CHANNELS = 4096
MAX_INPUT_SIDE = 1024
MAX_DECODER_LAYERS = 16
MAX_KERNEL = 16
MAX_MIX_WEIGHTS = 1 << 26   # a decoder's spatial mixing: 256 channels of 8x8 use 1 << 20


def check_spec(spec, stored_decoder: int | None = None, where: str = "the model spec") -> None:
    """Refuse a spec before any tensor is built from it (ModelFileError naming `where`): sizes in range, numbers
    finite, and a decoder no larger than the weights stored for it (`stored_decoder` elements) — an 8,192-channel
    decoder declared over small weights once cost 2.8 GB before load_state_dict refused it."""
    from .numbers import finite_float

    def bad(reason: str):
        return ModelFileError(f"{where}: {reason}")

    if not isinstance(spec, dict) or not isinstance(spec.get("decoder"), dict):
        raise bad("the spec is not a JSON object with a decoder")
    try:
        finite_float(spec.get("threshold"), "the threshold")
        sides = [int(v) for v in spec["input_size"]]
        channels = int(spec.get("channels", 1))
        layers = list(spec["decoder"]["layers"])
    except (XfrError, KeyError, TypeError, ValueError) as exc:
        raise bad(f"malformed spec ({exc})") from None
    if len(sides) != 2 or not all(8 <= s <= MAX_INPUT_SIDE for s in sides):
        raise bad(f"input size {sides} is outside 8..{MAX_INPUT_SIDE} pixels")
    if not 1 <= channels <= MAX_CHANNELS or not 1 <= len(layers) <= MAX_DECODER_LAYERS:
        raise bad(f"{channels} channels or {len(layers)} decoder layers is outside what a face model uses")
    needed = sum(_decoder_layer_size(layer, bad) for layer in layers) + _spatial_mix_weights(spec["decoder"], bad)
    if stored_decoder is not None and needed > stored_decoder:
        raise bad(f"the spec declares a decoder of {needed:,} weights but the file stores {stored_decoder:,}")


def _decoder_layer_size(layer, bad) -> int:
    try:
        c_in, c_out, kernel = int(layer["in"]), int(layer["out"]), int(layer["kernel"])
    except (KeyError, TypeError, ValueError):
        raise bad(f"decoder layer {layer!r} needs whole numbers in, out and kernel") from None
    if not (1 <= c_in <= MAX_CHANNELS and 1 <= c_out <= MAX_CHANNELS and 1 <= kernel <= MAX_KERNEL):
        raise bad(f"decoder layer {c_in}->{c_out} channels, kernel {kernel} is outside what a face model uses")
    return c_in * c_out * kernel * kernel


def _spatial_mix_weights(decoder_spec: dict, bad) -> int:
    """Weights of the decoder's spatial mixing layer (channels · (h·w)², 0 without one), bounded."""
    try:
        mix = spatial_mix_size(decoder_spec)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise bad(f"malformed spatial_mix ({exc})") from None
    if mix is None:
        return 0
    c, h, w = mix
    if min(c, h, w) < 1 or c * (h * w) ** 2 > MAX_MIX_WEIGHTS:
        raise bad(f"a spatial mixing of {c} channels of {h}x{w} is outside what a face model uses")
    return c * (h * w) ** 2


def _numel(state: dict) -> int:
    return sum(int(v.numel()) for v in state.values() if hasattr(v, "numel"))


def _check_finite_weights(model: JointModel, path: Path) -> None:
    """NaN or infinite weights make every score NaN, which no threshold comparison catches: refuse the file."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"model file {path} holds non-finite weights (NaN or infinity) in {name}")


def import_insightface_backbone(state_dict: dict, spec: dict | None = None) -> JointModel:
    """Build a joint model whose backbone takes an insightface ``backbone.pth`` state dict by key name.

    Head keys (``fc.*``, ``features.*``) are dropped with a warning; any other missing or unexpected key is an
    error naming the keys. The decoder keeps its fresh initialization (train it with ``xfr train --mode decoder``).
    """
    from .backbones.iresnet import HEAD_KEY_PREFIXES

    spec = spec or default_spec()
    model = JointModel(spec)
    dropped = sorted(k for k in state_dict if k.startswith(HEAD_KEY_PREFIXES))
    if dropped:
        log.warning("dropping insightface head keys (replaced by the max-pool head): %s", ", ".join(dropped))
    body = {k: v for k, v in state_dict.items() if not k.startswith(HEAD_KEY_PREFIXES)}
    own = model.backbone.state_dict()
    missing = sorted(set(own) - set(body))
    unexpected = sorted(set(body) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}")
        raise ModelFileError("insightface state dict does not fit iresnet%s: %s" % (spec.get("depth"), "; ".join(parts)))
    bad = [k for k in own if tuple(own[k].shape) != tuple(body[k].shape)]
    if bad:
        raise ModelFileError(f"insightface state dict has wrong shapes for: {', '.join(bad[:10])}")
    model.backbone.load_state_dict(body)
    return model
