"""The model a training run starts from: the bundled model, an XFR joint model file, an insightface IResNet
backbone, or a previous run's checkpoint. :func:`inspect_base` says which, without building it;
:func:`build_base_model` builds it.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelFileError
from ..model import FORMAT as MODEL_FORMAT, JointModel, default_spec, import_insightface_backbone, load_model
from .checkpoint import checkpoint_spec, describe_checkpoint, is_checkpoint, load_torch_file
from .config import CHECKPOINT_NAME, TrainingError


@dataclass
class BaseModelInfo:
    kind: str            # bundled | joint | insightface | checkpoint
    path: str | None
    spec: dict
    description: str
    checkpoint_path: str | None = None


def _unwrap_state_dict(obj) -> dict | None:
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()) and obj:
        sd = obj
    elif isinstance(obj, dict):
        for key in ("state_dict", "model", "backbone"):
            if isinstance(obj.get(key), dict):
                return _unwrap_state_dict(obj[key])
        return None
    else:
        return None
    prefix = "module."
    if all(k.startswith(prefix) for k in sd):
        sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def insightface_spec(state_dict: dict) -> dict:
    """The joint-model spec that an insightface IResNet state dict fits (depth, widths, input size)."""
    from ..backbones.iresnet import DEPTHS
    from ..decoder import paper_decoder_spec

    if "conv1.weight" not in state_dict or not any(k.startswith("layer4.") for k in state_dict):
        raise ModelFileError("this file is not an insightface IResNet backbone (no conv1/layer1-4 weights); "
                             "XFR fine-tunes IResNet backbones or its own joint models")
    blocks = []
    widths = []
    for i in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state_dict if k.startswith(f"layer{i}.") and k.split(".")[1].isdigit()}
        blocks.append(len(idx))
        w = state_dict.get(f"layer{i}.0.conv1.weight")
        if w is None or w.ndim != 4:
            raise ModelFileError(f"IResNet backbone lacks layer{i}.0.conv1.weight")
        widths.append(int(w.shape[0]))
    depth = next((d for d, b in DEPTHS.items() if b == blocks), None)
    if depth is None:
        raise ModelFileError(f"IResNet with blocks {blocks} matches no known depth ({', '.join(map(str, DEPTHS))})")
    size = 112
    fc = state_dict.get("fc.weight")
    if fc is not None and fc.ndim == 2 and fc.shape[1] % widths[3] == 0:
        side = math.isqrt(fc.shape[1] // widths[3])
        if side * side * widths[3] == fc.shape[1]:
            size = side * 16
    from ..model import ARCFACE_TEMPLATE_112

    template = [[x * size / 112 for x in pt] for pt in ARCFACE_TEMPLATE_112]
    return default_spec(
        name=f"iresnet{depth}-insightface-maxpool-joint", depth=depth, widths=widths, input_size=[size, size],
        template=template, channels=widths[3], decoder=paper_decoder_spec((widths[3], 256, 128, 64, 3)),
    )


def inspect_base(base: str | os.PathLike | None) -> BaseModelInfo:
    """What a base model reference is, without building it; raises ModelFileError with a clear message for a
    missing file, a foreign file or a checkpoint of the wrong family."""
    if base is None or str(base) in ("", "default", "bundled"):
        from ..model import default_model_path

        path = default_model_path()
        if not path.is_file():
            raise ModelFileError(f"the bundled model is missing: {path}")
        m = load_model(None, device="cpu")
        return BaseModelInfo("bundled", None, m.spec, f"bundled model {m.spec.get('name', '')}")
    path = Path(base).expanduser()
    if path.is_dir():
        ck = path / CHECKPOINT_NAME
        if not ck.is_file():
            raise ModelFileError(f"{path} holds no {CHECKPOINT_NAME} of a previous training run")
        path = ck
    if not path.is_file():
        raise ModelFileError(f"base model not found: {path}")
    obj = load_torch_file(path)
    if is_checkpoint(obj):
        return BaseModelInfo("checkpoint", str(path), checkpoint_spec(obj), describe_checkpoint(obj), str(path))
    if isinstance(obj, dict) and obj.get("format") == MODEL_FORMAT:
        spec = json.loads(obj["spec_json"])
        return BaseModelInfo("joint", str(path), spec, f"joint model {spec.get('name', '?')}")
    sd = _unwrap_state_dict(obj)
    if sd is None:
        raise ModelFileError(f"{path} is neither an XFR model, an XFR checkpoint nor an IResNet state dict")
    spec = insightface_spec(sd)
    return BaseModelInfo("insightface", str(path), spec, f"insightface IResNet-{spec['depth']} backbone")


def build_base_model(info: BaseModelInfo) -> JointModel:
    if info.kind == "bundled":
        return load_model(None, device="cpu")
    if info.kind == "joint":
        return load_model(info.path, device="cpu")
    if info.kind == "insightface":
        sd = _unwrap_state_dict(load_torch_file(Path(info.path)))
        return import_insightface_backbone(sd, info.spec)
    raise TrainingError(f"unsupported base kind {info.kind}")
