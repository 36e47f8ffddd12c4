"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as PyTorch modules.

Two forms share one parameter layout (``stem.*``, ``blocks.N.*``), so weights move between them by key:

* :class:`DlibResNet` in ``core/dlib_import.py`` -- the original network: 150x150 chip -> 128-d descriptor
  (global average pool + fc), numerically equal to dlib's ``compute_face_descriptor``.
* :class:`DlibDenseBackbone` (family ``dlib-resnet``) -- the paper's head: the last two downsampling stages run
  at stride 1 with dilated convolutions (DeepLab style), so the conv map stays on the 8x8 grid of the 128-channel
  stage; a 1x1 convolution (initialised from dlib's fc) gives C (128x8x8) and the embedding is its global max.

dlib semantics kept here: input is (pixel - channel mean) / 256; every strided op has padding 0; a residual
add takes the larger size of its two inputs and zero-fills the smaller at the far end (top-left aligned).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_STD = (256.0, 256.0, 256.0)
# (channels, downsample) for the 14 residual blocks of dlib's anet_type, input side first.
DLIB_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)
N_STRIDED_BLOCKS = 10  # blocks 0..9 (through the 128 stage) are unchanged in the dense form


class Affine(nn.Module):
    """dlib's affine_ layer: batch norm folded into a per-channel scale and shift."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the larger size in every dimension, the smaller input zero-filled at the far end."""
    if a.shape == b.shape:
        return a + b
    c = max(a.shape[1], b.shape[1])
    h = max(a.shape[2], b.shape[2])
    w = max(a.shape[3], b.shape[3])

    def grow(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class DlibBlock(nn.Module):
    """conv3x3 -> affine -> relu -> conv3x3 -> affine, + shortcut, -> relu.

    ``dilation`` = 0 means the original strided form. ``dilation`` = d >= 1 means the dense form on a grid that
    is d times finer than the original one at this block's input: a downsampling block then keeps the grid
    (stride 1) and its second conv and every later conv see dilation 2d; the shortcut's 2x2/2 average pool
    becomes the average of the samples at offsets {-d, 0}. Away from the borders the dense map then holds the
    original map's values on its sampling points (for the last block: rows/columns 3 and 7 of 8).

    ``dilation`` = -1 means the pointwise form: only the centre tap of each 3x3 kernel is used and the shortcut is
    the input itself, so every output cell reads its own input cell alone (channels as local as the trunk).
    ``grow`` = False keeps a downsampling block's dilation instead of doubling it (the compact dense form).
    """

    def __init__(self, in_ch: int, out_ch: int, down: bool, dilation: int = 0, grow: bool = True):
        super().__init__()
        self.down = down
        self.dilation = dilation
        self.grow = grow
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, bias=True)
        self.aff1 = Affine(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, bias=True)
        self.aff2 = Affine(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        if d < 0:
            y = F.relu(self.aff1(F.conv2d(x, self.conv1.weight[:, :, 1:2, 1:2], self.conv1.bias)))
            y = self.aff2(F.conv2d(y, self.conv2.weight[:, :, 1:2, 1:2], self.conv2.bias))
            return F.relu(add_prev(y, x))
        if d == 0:
            if self.down:
                y = F.conv2d(x, self.conv1.weight, self.conv1.bias, stride=2, padding=0)
                shortcut = F.avg_pool2d(x, 2, 2)
            else:
                y = F.conv2d(x, self.conv1.weight, self.conv1.bias, padding=1)
                shortcut = x
            d2 = 1
        else:
            y = F.conv2d(x, self.conv1.weight, self.conv1.bias, padding=d, dilation=d)
            if self.down:
                xp = F.pad(x, (d, 0, d, 0), mode="replicate")
                shortcut = (xp[..., :-d, :-d] + xp[..., :-d, d:] + xp[..., d:, :-d] + xp[..., d:, d:]) * 0.25
                d2 = 2 * d if self.grow else d
            else:
                shortcut = x
                d2 = d
        y = F.relu(self.aff1(y))
        y = F.conv2d(y, self.conv2.weight, self.conv2.bias, padding=d2, dilation=d2)
        y = self.aff2(y)
        return F.relu(add_prev(y, shortcut))


class DlibStem(nn.Module):
    """con 32 7x7/2 (padding 0) -> affine -> relu -> max_pool 3x3/2 (padding 0)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2, padding=0, bias=True)
        self.aff = Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.aff(self.conv(x))), 3, 2)


def make_blocks(dense: bool, layout: str = "dilated") -> nn.ModuleList:
    """The 14 residual blocks; in the dense form blocks 10.. run on the 8x8 grid: with growing dilation
    (``dilated``), at dilation 1 (``compact``), cell by cell (``pointwise``), or the first of them at dilation 1
    and the rest cell by cell (``near``: a channel of C reads the trunk within two cells)."""
    blocks = []
    in_ch, dil = 32, 1
    for i, (ch, down) in enumerate(DLIB_BLOCKS):
        if dense and i >= N_STRIDED_BLOCKS:
            cell_by_cell = layout == "pointwise" or (layout == "near" and i > N_STRIDED_BLOCKS)
            blocks.append(DlibBlock(in_ch, ch, down, dilation=-1 if cell_by_cell else dil, grow=layout == "dilated"))
            dil = dil * 2 if down and layout == "dilated" else dil
        else:
            blocks.append(DlibBlock(in_ch, ch, down, dilation=0))
        in_ch = ch
    return nn.ModuleList(blocks)


HEADS = ("conv1x1", "affine")
DENSE_LAYOUTS = ("dilated", "compact", "pointwise", "near")


class DlibDenseBackbone(nn.Module):
    """x (N,3,150,150) in dlib normalization -> C (N,channels,8,8). Family ``dlib-resnet``.

    ``head`` = ``"conv1x1"``: C is a 1x1 convolution (256 -> channels, initialised from dlib's fc) of the last dense
    stage. Mixing channels moves their maxima onto one cell, so Algorithm 1's residuals coincide.
    ``head`` = ``"affine"``: C is a per-channel scale and shift (a folded batch norm, as the paper's BN'd conv map)
    of the last dense stage, 256 channels; an affine map cannot move a channel's maximum.
    ``dense`` = ``"compact"``: the 256 stages keep dilation 1; ``"pointwise"``: they use only their kernels'
    centre taps, so a channel of C at a cell depends on the trunk's features at that cell only; ``"near"``: the
    first 256 block at dilation 1, the others pointwise (the trunk within two cells). All keep the
    parameter layout (the dilated stages make every channel read the whole face).
    """

    def __init__(self, channels: int = 128, head: str = "conv1x1", dense: str = "dilated"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown dlib head {head!r}; known: {', '.join(HEADS)}")
        if dense not in DENSE_LAYOUTS:
            raise ValueError(f"unknown dlib dense layout {dense!r}; known: {', '.join(DENSE_LAYOUTS)}")
        self.stem = DlibStem()
        self.blocks = make_blocks(dense=True, layout=dense)
        if head == "affine":
            if channels != 256:
                raise ValueError("the affine head keeps the last stage's 256 channels")
            self.head = Affine(256)
        else:
            # the bias (0 at import) lets training remove the common positive offset a spatial max adds to every
            # channel
            self.head = nn.Conv2d(256, channels, 1, bias=True)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen part: stem and the strided blocks through the 128 stage (128x8x8 for a 150 chip)."""
        x = self.stem(x)
        for blk in self.blocks[:N_STRIDED_BLOCKS]:
            x = blk(x)
        return x

    def top(self, t: torch.Tensor) -> torch.Tensor:
        """The trained part: the dense 256 stages and the head."""
        for blk in self.blocks[N_STRIDED_BLOCKS:]:
            t = blk(t)
        return self.head(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.trunk(x))


def build_dlib_backbone(spec: dict) -> nn.Module:
    return DlibDenseBackbone(channels=int(spec.get("channels", 128)), head=str(spec.get("head", "conv1x1")),
                             dense=str(spec.get("dense", "dilated")))
