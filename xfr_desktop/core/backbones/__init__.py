"""Backbone families. Each builder takes the model spec (a JSON-able dict) and returns a module x -> C."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

BackboneBuilder = Callable[[dict], nn.Module]


def _iresnet(spec: dict) -> nn.Module:
    from .iresnet import build_iresnet

    return build_iresnet(spec)


def _dlib_resnet(spec: dict) -> nn.Module:
    from .dlib_resnet import build_dlib_backbone

    return build_dlib_backbone(spec)


BACKBONE_BUILDERS: dict[str, BackboneBuilder] = {
    "iresnet": _iresnet,
    "dlib-resnet": _dlib_resnet,
}


def build_backbone(spec: dict) -> nn.Module:
    family = spec.get("family")
    if family not in BACKBONE_BUILDERS:
        raise ValueError(f"unknown backbone family {family!r}; known: {', '.join(sorted(BACKBONE_BUILDERS))}")
    return BACKBONE_BUILDERS[family](spec)
