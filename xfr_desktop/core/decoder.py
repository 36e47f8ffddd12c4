"""Decoders of transposed convolutions that reconstruct the face from the conv map C.

A decoder spec is a JSON-able dict:
    {"layers": [{"in": 512, "out": 256, "kernel": 4, "stride": 2, "padding": 1, "output_padding": 0}, ...],
     "hidden_activation": "relu", "final_activation": "tanh"}
Between layers sit BatchNorm2d and the hidden activation; the last layer is followed by the final activation
only, so the output is bounded and lies in the backbone's input normalization.

Optional key ``"spatial_mix": {"channels": c, "size": [h, w]}``: a :class:`SpatialMix` before the first layer, so
each channel's cell can be decoded anywhere on the face (a grounded decoder, training/grounded/). Specs without the key build
exactly as before (same modules, same state-dict keys).
"""
from __future__ import annotations

import torch
import torch.nn as nn

ACTIVATIONS = {
    "relu": lambda c: nn.ReLU(),
    "prelu": lambda c: nn.PReLU(c),
    "leaky_relu": lambda c: nn.LeakyReLU(0.2),
    "tanh": lambda c: nn.Tanh(),
    "sigmoid": lambda c: nn.Sigmoid(),
    "identity": lambda c: nn.Identity(),
}


class SpatialMix(nn.Module):
    """Per-channel linear map of the h×w map onto itself: out[n,i] = M_i @ x[n,i] (flattened), no bias.

    Identity at initialization, so adding it to a trained decoder changes nothing until it is trained."""

    def __init__(self, channels: int, size):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        n = self.size[0] * self.size[1]
        self.weight = nn.Parameter(torch.eye(n).repeat(int(channels), 1, 1))   # (c, h·w, h·w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.size or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"SpatialMix expects (N,{self.weight.shape[0]},{self.size[0]},{self.size[1]}), "
                             f"got {tuple(x.shape)}")
        flat = x.flatten(2).transpose(0, 1)                                   # (c, N, h·w)
        out = torch.bmm(flat, self.weight.to(x.dtype).transpose(1, 2))        # rows x @ M_i^T
        return out.transpose(0, 1).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[0]}, size={self.size}"


def spatial_mix_size(spec: dict) -> tuple[int, int, int] | None:
    """(channels, h, w) of the spec's spatial mixing layer, or None; ValueError if malformed."""
    mix = spec.get("spatial_mix")
    if mix is None:
        return None
    try:
        c, (h, w) = int(mix["channels"]), (int(v) for v in mix["size"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"spatial_mix needs channels and size [h, w], got {mix!r}") from None
    if c != int(spec["layers"][0]["in"]):
        raise ValueError(f"spatial_mix has {c} channels but the first layer takes {spec['layers'][0]['in']}")
    return c, h, w


def paper_decoder_spec(channels=(512, 256, 128, 64, 3)) -> dict:
    """The paper's decoder: four ConvTranspose2d(k4, s2, p1), 7x7 -> 112x112."""
    layers = [
        {"in": a, "out": b, "kernel": 4, "stride": 2, "padding": 1, "output_padding": 0}
        for a, b in zip(channels[:-1], channels[1:])
    ]
    return {"layers": layers, "hidden_activation": "relu", "final_activation": "tanh"}


def build_decoder(spec: dict) -> nn.Sequential:
    layers = spec["layers"]
    hidden = spec.get("hidden_activation", "relu")
    final = spec.get("final_activation", "tanh")
    mods: list[nn.Module] = []
    mix = spatial_mix_size(spec)
    if mix is not None:
        mods.append(SpatialMix(mix[0], mix[1:]))
    for i, layer in enumerate(layers):
        mods.append(
            nn.ConvTranspose2d(
                layer["in"], layer["out"], layer["kernel"], stride=layer.get("stride", 1),
                padding=layer.get("padding", 0), output_padding=layer.get("output_padding", 0),
                dilation=layer.get("dilation", 1), bias=layer.get("bias", True),
            )
        )
        if i < len(layers) - 1:
            mods.append(nn.BatchNorm2d(layer["out"]))
            mods.append(ACTIVATIONS[hidden](layer["out"]))
        else:
            mods.append(ACTIVATIONS[final](layer["out"]))
    return nn.Sequential(*mods)
