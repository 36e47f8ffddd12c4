"""Decoders of transposed convolutions that reconstruct the face from the conv map C.

A decoder spec is a JSON-able dict:
    {"layers": [{"in": 512, "out": 256, "kernel": 4, "stride": 2, "padding": 1, "output_padding": 0}, ...],
     "hidden_activation": "relu", "final_activation": "tanh"}
Between layers sit BatchNorm2d and the hidden activation; the last layer is followed by the final activation
only, so the output is bounded and lies in the backbone's input normalization.
"""
from __future__ import annotations

import torch.nn as nn

ACTIVATIONS = {
    "relu": lambda c: nn.ReLU(),
    "prelu": lambda c: nn.PReLU(c),
    "leaky_relu": lambda c: nn.LeakyReLU(0.2),
    "tanh": lambda c: nn.Tanh(),
    "sigmoid": lambda c: nn.Sigmoid(),
    "identity": lambda c: nn.Identity(),
}


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
