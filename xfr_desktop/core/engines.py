"""Residual engines for Algorithm 1: for each channel i of C, |decoder(C) - decoder(C with max of C[i] zeroed)|.

Three engines give the same numbers:

- ``literal``: the paper's loop, one full decoder pass per channel (batch 1). Reference for tests/benchmarks.
- ``batched``: chunks of modified maps through the full decoder. Works for any decoder.
- ``fast``: exact incremental propagation. Zeroing C[i,y,x] changes the first transposed convolution's output
  only by -C[i,y,x]·kernel_i on a k×k window; every later layer needs only the change of its output inside a
  window that grows layer by layer (4→10→22→46 rows for the paper's decoder). Linear layers (transposed
  convolution without bias, batch norm's scale) act on the change directly; an elementwise activation f needs
  f(z+dz) - f(z) at the stored base activations z, computed in a cancellation-free form. All channels share
  the window shape, so a chunk of channels is one batched operation per layer.

Every engine masks each residual to its change window (outside it the exact value is 0), so floating-point noise
from comparing two separate decoder passes is not amplified by per-channel normalization.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

ENGINES = ("fast", "batched", "literal")
ELEMENTWISE = (nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity)


@dataclass
class RawResiduals:
    values: np.ndarray        # (c, h, w) float32 unnormalized residual windows
    offsets: np.ndarray       # (c, 2) top-left of each window in output pixels
    image_size: tuple[int, int]
    R0: torch.Tensor          # (1, 3, H, W) base reconstruction
    argmax: np.ndarray        # (c, 2)
    cmax: np.ndarray          # (c,)
    engine: str


def flatten_decoder(decoder: nn.Module) -> list[nn.Module]:
    """The decoder's layers in order, or raise TypeError if it is not a plain chain."""
    if isinstance(decoder, nn.Sequential):
        out: list[nn.Module] = []
        for m in decoder:
            out.extend(flatten_decoder(m))
        return out
    return [decoder]


def localizable(layers: list[nn.Module]) -> bool:
    for m in layers:
        if isinstance(m, nn.ConvTranspose2d):
            if m.groups != 1 or m.padding_mode != "zeros":
                return False
        elif isinstance(m, nn.BatchNorm2d):
            if m.training or m.running_var is None:
                return False
        elif not isinstance(m, ELEMENTWISE):
            return False
    return True


def channel_maxima(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For C (1,c,h,w): flat argmax (first index on ties), rows/cols and maxima."""
    flat = C[0].flatten(1)
    idx = flat.argmax(dim=1)
    w = C.shape[3]
    return idx, torch.stack([idx // w, idx % w], 1), flat.gather(1, idx[:, None])[:, 0]


# --- window geometry ------------------------------------------------------------------------------------------
@dataclass
class _Geometry:
    size: tuple[int, int]     # window size at the output
    scale: tuple[int, int]    # offset = pos * scale + shift
    shift: tuple[int, int]
    out_size: tuple[int, int]


def window_geometry(layers: list[nn.Module], C_hw: tuple[int, int]) -> _Geometry:
    h = w = 1
    sy = sx = 1
    oy = ox = 0
    H, W = C_hw
    for m in layers:
        if isinstance(m, nn.ConvTranspose2d):
            (s0, s1), (p0, p1), (k0, k1), (d0, d1) = m.stride, m.padding, m.kernel_size, m.dilation
            h, w = (h - 1) * s0 + d0 * (k0 - 1) + 1, (w - 1) * s1 + d1 * (k1 - 1) + 1
            sy, sx, oy, ox = sy * s0, sx * s1, oy * s0 - p0, ox * s1 - p1
            H, W = _transposed_conv_size(m, (H, W))
    return _Geometry((h, w), (sy, sx), (oy, ox), (H, W))


def _window_mask(offsets: torch.Tensor, size, bounds) -> torch.Tensor:
    """(B,1,h,w) bool: window pixels inside [0, bounds)."""
    h, w = size
    rows = offsets[:, 0:1] + torch.arange(h, device=offsets.device)[None]
    cols = offsets[:, 1:2] + torch.arange(w, device=offsets.device)[None]
    vr = (rows >= 0) & (rows < bounds[0])
    vc = (cols >= 0) & (cols < bounds[1])
    return (vr[:, :, None] & vc[:, None, :])[:, None]


def _gather_windows(base: torch.Tensor, offsets: torch.Tensor, size) -> torch.Tensor:
    """base (1,ch,H,W) -> (B,ch,h,w) windows at offsets, zero outside."""
    h, w = size
    _, ch, H, W = base.shape
    rows = offsets[:, 0:1] + torch.arange(h, device=base.device)[None]        # (B,h)
    cols = offsets[:, 1:2] + torch.arange(w, device=base.device)[None]        # (B,w)
    valid = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    flat_idx = (rows.clamp(0, H - 1)[:, :, None] * W + cols.clamp(0, W - 1)[:, None, :])   # (B,h,w)
    src = base[0].reshape(ch, H * W)
    g = src[:, flat_idx.reshape(-1)].reshape(ch, -1, h, w).permute(1, 0, 2, 3)
    return g * valid[:, None].to(g.dtype)


# --- activation differences without cancellation ---------------------------------------------------------------
def _piecewise_linear_diff(z, dz, slope_neg):
    """f(z+dz) - f(z) for f(x) = x (x>0), slope_neg·x (x<=0)."""
    zn = z + dz
    both_pos = (z > 0) & (zn > 0)
    both_neg = (z <= 0) & (zn <= 0)
    crossing = torch.where(z > 0, slope_neg * zn - z, zn - slope_neg * z)
    return torch.where(both_pos, dz, torch.where(both_neg, slope_neg * dz, crossing))


def activation_diff(m: nn.Module, z: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
    if isinstance(m, nn.ReLU):
        return torch.where(z > 0, torch.maximum(dz, -z), torch.clamp(z + dz, min=0))
    if isinstance(m, nn.LeakyReLU):
        return _piecewise_linear_diff(z, dz, m.negative_slope)
    if isinstance(m, nn.PReLU):
        a = m.weight.to(z.dtype)
        a = a.view(1, -1, 1, 1) if a.numel() > 1 else a.view(1, 1, 1, 1)
        return _piecewise_linear_diff(z, dz, a)
    if isinstance(m, nn.Tanh):   # tanh(a) - tanh(b) = sinh(a-b) / (cosh a cosh b)
        return torch.sinh(dz) / (torch.cosh(z + dz) * torch.cosh(z))
    if isinstance(m, nn.Sigmoid):  # σ(x) = (1 + tanh(x/2)) / 2
        return 0.5 * torch.sinh(dz / 2) / (torch.cosh((z + dz) / 2) * torch.cosh(z / 2))
    if isinstance(m, nn.Identity):
        return dz
    raise TypeError(f"no exact difference for {type(m).__name__}")


def _bn_scale(m: nn.BatchNorm2d, dtype) -> torch.Tensor:
    scale = torch.rsqrt(m.running_var.to(dtype) + m.eps)
    if m.weight is not None:
        scale = scale * m.weight.to(dtype)
    return scale.view(1, -1, 1, 1)


# --- engines ---------------------------------------------------------------------------------------------------
def compute_residuals(decoder: nn.Module, C: torch.Tensor, engine: str = "fast", chunk: int | None = None,
                      progress: Callable[[float], None] | None = None) -> RawResiduals:
    """Residuals of every channel of C (1,c,h,w). ``engine='fast'`` falls back to batched if not localizable."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    layers = flatten_decoder(decoder)
    can_localize = localizable(layers)
    if engine == "fast" and not can_localize:
        engine = "batched"
    progress = progress or (lambda frac: None)
    with torch.no_grad():
        flat_idx, pos, cmax = channel_maxima(C)
        if engine == "fast":
            values, offsets, R0, out_size = _fast(layers, C, pos, cmax, chunk or 128, progress)
        else:
            values, offsets, R0, out_size = _full_passes(decoder, layers, C, flat_idx, pos, can_localize,
                                                        1 if engine == "literal" else (chunk or 32), progress)
    return RawResiduals(values=values.float().cpu().numpy(), offsets=offsets.cpu().numpy().astype(np.int64),
                        image_size=out_size, R0=R0, argmax=pos.cpu().numpy(), cmax=cmax.double().cpu().numpy(),
                        engine=engine)


def _full_passes(decoder, layers, C, flat_idx, pos, can_localize, chunk, progress):
    c = C.shape[1]
    R0 = decoder(C)
    H, W = R0.shape[2:]
    if can_localize:
        geo = window_geometry(layers, C.shape[2:])
        size = (min(geo.size[0], H), min(geo.size[1], W))
        offs = pos * torch.tensor(geo.scale, device=C.device) + torch.tensor(geo.shift, device=C.device)
        offs = torch.stack([offs[:, 0].clamp(0, H - size[0]), offs[:, 1].clamp(0, W - size[1])], 1)
        # A window clamped into the image still covers the whole change (it only moved inward).
    else:
        size, offs = (H, W), torch.zeros((c, 2), dtype=torch.long, device=C.device)
    values = torch.empty((c, *size), dtype=C.dtype, device=C.device)
    for start in range(0, c, chunk):
        idx = torch.arange(start, min(start + chunk, c), device=C.device)
        Cm = C.repeat(len(idx), 1, 1, 1)
        Cm.view(len(idx), c, -1)[torch.arange(len(idx), device=C.device), idx, flat_idx[idx]] = 0
        diff = (decoder(Cm) - R0).abs().sum(1)                                   # (B,H,W)
        if can_localize:
            win = _gather_windows(diff[:, None].transpose(0, 1), offs[idx], size)  # treat B as channels
            values[idx] = win[torch.arange(len(idx)), torch.arange(len(idx))]
        else:
            values[idx] = diff
        progress(min(start + chunk, c) / c)
    return values, offs, R0, (H, W)


def _fast(layers, C, pos, cmax, chunk, progress):
    """Exact incremental residuals. On the CPU channels are grouped by argmax position (no gathers, cropped
    windows); on a GPU all channels go as one batch with gathered windows (few kernel launches, no host sync)."""
    if C.is_cuda:
        return _fast_one_batch(layers, C, pos, cmax, progress)
    return _fast_grouped(layers, C, pos, cmax, chunk, progress)


def _base_pass(layers, C):
    """The decoder on C, keeping each elementwise layer's input (for ReLU: its two halves, which make the
    exact difference max(dz + min(z,0), -max(z,0)) two cheap ops)."""
    base_inputs: list = []
    x = C
    for m in layers:
        if isinstance(m, nn.ReLU):
            base_inputs.append((x.clamp(max=0), -x.clamp(min=0)))
        else:
            base_inputs.append(x if isinstance(m, ELEMENTWISE) else None)
        x = m(x)
    return base_inputs, x


def _relu_diff(base, D, window):
    zneg, negzpos = base
    return torch.maximum(D + window(zneg), window(negzpos))


def _change_plan(layers, dtype):
    """The decoder as steps acting on a change: batch norm after a transposed convolution is folded into its
    weights (scale per output channel; the shift cancels), saving one full pass over the change per layer.

    Steps: ("convT", module, weight, index), ("scale", None, per-channel scale, index), ("act", module, None, index).
    """
    steps = []
    i = 0
    while i < len(layers):
        m = layers[i]
        if isinstance(m, nn.ConvTranspose2d):
            W = m.weight.to(dtype)
            if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
                W = W * _bn_scale(layers[i + 1], dtype).view(1, -1, 1, 1)
                steps.append(("convT", m, W, i))
                i += 2
                continue
            steps.append(("convT", m, W, i))
        elif isinstance(m, nn.BatchNorm2d):
            steps.append(("scale", None, _bn_scale(m, dtype), i))
        else:
            steps.append(("act", m, None, i))
        i += 1
    return steps


def _fast_one_batch(layers, C, pos, cmax, progress):
    c = C.shape[1]
    dtype, dev = C.dtype, C.device
    base_inputs, R0 = _base_pass(layers, C)
    idx = torch.arange(c, device=dev)
    offs = pos.clone()
    hw = tuple(C.shape[2:])
    D = None                          # (c,ch,h,w) change; None while it is still the one-hot at C
    for kind, m, weight, li in _change_plan(layers, dtype):
        if kind == "convT":
            D = _transposed_conv_change(m, weight, D, idx, cmax)
            (s0, s1), (p0, p1) = m.stride, m.padding
            offs = torch.stack([offs[:, 0] * s0 - p0, offs[:, 1] * s1 - p1], 1)
            hw = _transposed_conv_size(m, hw)
            D = D * _window_mask(offs, D.shape[2:], hw).to(dtype)
            continue
        if D is None:
            D = _one_hot(c, idx, cmax, dtype, dev)
        if kind == "scale":
            D = D * weight
        elif isinstance(m, nn.ReLU):
            D = _relu_diff(base_inputs[li], D, lambda t: _gather_windows(t, offs, D.shape[2:]))
        else:
            D = activation_diff(m, _gather_windows(base_inputs[li], offs, D.shape[2:]), D)
    progress(1.0)
    return D.abs().sum(1), offs, R0, tuple(R0.shape[2:])


def _transposed_conv_change(m: nn.ConvTranspose2d, Wt, D, idx, cmax):
    """A transposed convolution (weights Wt) applied to the change D (bias cancels); D None = the one-hot at C."""
    if D is None:
        return _kernel_taps(Wt, idx, cmax, m.dilation, m.kernel_size)
    # channels_last: oneDNN's transposed convolution is ~1.5-2x faster on these small windows
    return Fn.conv_transpose2d(D.contiguous(memory_format=torch.channels_last), Wt, None, stride=m.stride,
                               padding=0, dilation=m.dilation)


def _transposed_conv_size(m: nn.ConvTranspose2d, hw: tuple[int, int]) -> tuple[int, int]:
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                 zip(hw, m.stride, m.padding, m.dilation, m.kernel_size, m.output_padding))


def _kernel_taps(Wt, idx, cmax, dilation, kernel):
    """The first transposed convolution's response to -C[i,y,x] at channel i: a scaled kernel slice."""
    taps = -cmax[idx].to(Wt.dtype)[:, None, None, None] * Wt[idx]
    if dilation == (1, 1):
        return taps
    (d0, d1), (k0, k1) = dilation, kernel
    D = torch.zeros((len(idx), Wt.shape[1], d0 * (k0 - 1) + 1, d1 * (k1 - 1) + 1), dtype=Wt.dtype, device=Wt.device)
    D[:, :, ::d0, ::d1] = taps
    return D


def _one_hot(c, idx, cmax, dtype, dev):
    """The change at C itself, for decoders that start with something other than a transposed convolution."""
    D = torch.zeros((len(idx), c, 1, 1), dtype=dtype, device=dev)
    D[torch.arange(len(idx), device=dev), idx, 0, 0] = -cmax[idx].to(dtype)
    return D


def _fast_grouped(layers, C, pos, cmax, chunk, progress):
    """Exact incremental residuals, channels grouped by argmax position.

    Channels whose maxima sit at the same element of C change the same window of every layer, so a group shares
    the slices of the stored base activations (no gathers) and its window is cropped to the valid region once
    per layer (no masks, fewer FLOPs at the borders).
    """
    c = C.shape[1]
    dtype, dev = C.dtype, C.device
    base_inputs, R0 = _base_pass(layers, C)
    out_hw = tuple(R0.shape[2:])
    geo = window_geometry(layers, C.shape[2:])
    values = torch.zeros((c, *geo.size), dtype=dtype, device=dev)
    pos_cpu = pos.cpu()
    offsets = pos_cpu * torch.tensor(geo.scale) + torch.tensor(geo.shift)
    keys = (pos_cpu[:, 0] * C.shape[3] + pos_cpu[:, 1]).numpy()
    order = np.argsort(keys, kind="stable")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(keys[order])) + 1, [c]])
    order_dev = torch.as_tensor(order, device=dev)  # one upload; groups are slices of it
    plan = _change_plan(layers, dtype)
    done = 0
    for g0, g1 in zip(bounds[:-1], bounds[1:]):
        for start in range(int(g0), int(g1), chunk):
            members = order[start:min(start + chunk, g1)]
            idx = order_dev[start:min(start + chunk, g1)]
            r, q = (int(v) for v in pos_cpu[members[0]])
            D, (r0, c0) = _propagate_group(plan, base_inputs, C, idx, cmax, r, q)
            orow, ocol = (int(v) for v in offsets[members[0]])
            h, w = D.shape[2:]
            values[idx, r0 - orow:r0 - orow + h, c0 - ocol:c0 - ocol + w] = D.abs().sum(1)
            done += len(members)
        progress(done / c)
    return values, offsets.to(dev), R0, out_hw


def _propagate_group(plan, base_inputs, C, idx, cmax, r, q):
    """Change of every layer's output for channels idx whose maxima are all at C[:, :, r, q].

    Returns the final change (n, ch, h, w) cropped to the output and its top-left (row, col).
    """
    dtype, dev = C.dtype, C.device
    c = C.shape[1]
    D = None
    r0, c0 = r, q
    H, W = C.shape[2:]
    for kind, m, weight, li in plan:
        if kind == "convT":
            D = _transposed_conv_change(m, weight, D, idx, cmax)
            r0, c0 = r0 * m.stride[0] - m.padding[0], c0 * m.stride[1] - m.padding[1]
            H, W = _transposed_conv_size(m, (H, W))
            # Crop to the layer's output: outside it nothing exists to change.
            top, left = max(0, -r0), max(0, -c0)
            bottom, right = min(D.shape[2], H - r0), min(D.shape[3], W - c0)
            D = D[:, :, top:bottom, left:right]
            r0, c0 = r0 + top, c0 + left
            continue
        if D is None:
            D = _one_hot(c, idx, cmax, dtype, dev)
        h, w = D.shape[2:]
        if kind == "scale":
            D = D * weight
        elif isinstance(m, nn.ReLU):
            D = _relu_diff(base_inputs[li], D, lambda t: t[:, :, r0:r0 + h, c0:c0 + w])
        else:
            D = activation_diff(m, base_inputs[li][:, :, r0:r0 + h, c0:c0 + w], D)
    return D, (r0, c0)
