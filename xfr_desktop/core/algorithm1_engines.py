"""Residual engines for Algorithm 1: for each channel i of C, |decoder(C) - decoder(C with max of C[i] zeroed)|.

Three engines give the same numbers:

- ``literal``: the paper's loop, one full decoder pass per channel (batch 1). Reference for tests/benchmarks.
- ``batched``: chunks of modified maps through the full decoder. Works for any decoder.
- ``fast``: exact incremental propagation. Zeroing C[i,y,x] changes the first transposed convolution's output
  only by -C[i,y,x]·kernel_i on a k×k window; every later layer needs only the change of its output inside a
  window that grows layer by layer (4→10→22→46 rows for the paper's decoder). Linear layers (transposed
  convolution without bias, batch norm's scale) act on the change directly; an elementwise activation f needs
  f(z+dz) - f(z) at the stored base activations z, computed in a cancellation-free form (the base pass runs in
  float64, so a change far smaller than the activations is still exact to float32). Channels whose windows
  crop alike at the borders share window shapes, so a batch of them is one operation per layer.

A decoder that starts with a spatial mixing (``SpatialMix``, a grounded decoder) is not local: ``fast`` runs
the ``mixed`` route instead. Mixing, first transposed convolution and batch norm (eval) are linear, so zeroing
C[i,y,x] changes the first batch norm's output by -C[i,y,x]·scale ⊙ convT(M_i[:, yx] in channel i); all channels'
changes are one batched matrix product, added to the base pre-activation, and only the later layers run in
chunks. Its maps are full size at offset (0, 0), as the batched engine's.

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

from .decoder import SpatialMix

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
        if isinstance(m, SpatialMix):   # spreads a cell over the whole map: no change window
            return False
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
    """For C (n,c,h,w): flat argmax (first index on ties), rows/cols and maxima of the n·c channels, image by
    image."""
    flat = C.flatten(2).flatten(0, 1)
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


def change_window(m: nn.ConvTranspose2d, h: int, w: int) -> tuple[int, int]:
    """Size of the output a transposed convolution (padding 0) gives an h×w input: where an h×w change lands."""
    (s0, s1), (k0, k1), (d0, d1) = m.stride, m.kernel_size, m.dilation
    return (h - 1) * s0 + d0 * (k0 - 1) + 1, (w - 1) * s1 + d1 * (k1 - 1) + 1


def window_geometry(layers: list[nn.Module], C_hw: tuple[int, int]) -> _Geometry:
    h = w = 1
    sy = sx = 1
    oy = ox = 0
    H, W = C_hw
    for m in layers:
        if isinstance(m, nn.ConvTranspose2d):
            (s0, s1), (p0, p1) = m.stride, m.padding
            h, w = change_window(m, h, w)
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


def _gather_windows(base: torch.Tensor, offsets: torch.Tensor, size, image: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """base (n,ch,H,W) -> (B,ch,h,w) windows at offsets in image ``image[b]`` (None: image 0), zero outside."""
    h, w = size
    n, ch, H, W = base.shape
    rows = offsets[:, 0:1] + torch.arange(h, device=base.device)[None]        # (B,h)
    cols = offsets[:, 1:2] + torch.arange(w, device=base.device)[None]        # (B,w)
    valid = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    flat_idx = (rows.clamp(0, H - 1)[:, :, None] * W + cols.clamp(0, W - 1)[:, None, :])   # (B,h,w)
    if image is None:
        src = base[0].reshape(ch, H * W)
    else:  # both images of a pair in one gather: index the images' maps laid side by side
        src = base.transpose(0, 1).reshape(ch, n * H * W)
        flat_idx = flat_idx + (image * (H * W))[:, None, None]
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
        engine = "mixed" if mixed_head(layers) else "batched"
    progress = progress or (lambda frac: None)
    with torch.no_grad():
        flat_idx, pos, cmax = channel_maxima(C)
        if engine == "mixed":
            values, offsets, R0, out_size = _mixed(layers, C, pos, cmax, chunk or 32, progress)
        elif engine == "fast":
            values, offsets, R0, out_size = _fast(layers, C, pos, cmax, chunk or 128, progress)
        else:
            values, offsets, R0, out_size = _full_passes(decoder, layers, C, flat_idx, pos, can_localize,
                                                        1 if engine == "literal" else (chunk or 32), progress)
    return RawResiduals(values=values.float().cpu().numpy(), offsets=offsets.cpu().numpy().astype(np.int64),
                        image_size=out_size, R0=R0, argmax=pos.cpu().numpy(), cmax=cmax.double().cpu().numpy(),
                        engine=engine)


def compute_residuals_pair(decoder: nn.Module, C: torch.Tensor, engine: str = "fast",
                           one_batch: bool | None = None) -> list[RawResiduals]:
    """Residuals of both faces of a pair, C (2,c,h,w). ``one_batch`` (default: on a GPU, with the fast engine)
    runs the 2·c channels as one batch and copies the results to the host once; otherwise face by face, as
    :func:`compute_residuals`. The numbers are the same either way (tests/core/test_engines.py)."""
    layers = flatten_decoder(decoder)
    if one_batch is None:
        one_batch = C.is_cuda
    if not (one_batch and engine == "fast" and localizable(layers)):
        return [compute_residuals(decoder, C[k:k + 1], engine=engine) for k in range(len(C))]
    n, c = C.shape[:2]
    with torch.no_grad():
        _, pos, cmax = channel_maxima(C)
        values, offsets, R0, out_size = _fast_one_batch(layers, C, pos, cmax, lambda frac: None)
    values, offsets, pos, cmax = (values.float().cpu().numpy(), offsets.cpu().numpy().astype(np.int64),
                                  pos.cpu().numpy(), cmax.double().cpu().numpy())
    return [RawResiduals(values=values[k * c:(k + 1) * c], offsets=offsets[k * c:(k + 1) * c], image_size=out_size,
                         R0=R0[k:k + 1], argmax=pos[k * c:(k + 1) * c], cmax=cmax[k * c:(k + 1) * c],
                         engine="fast") for k in range(n)]


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


def mixed_head(layers: list[nn.Module]) -> int:
    """Length of a linear head SpatialMix, transposed convolution[, batch norm in eval] (0 if there is none)."""
    if len(layers) < 2 or not isinstance(layers[0], SpatialMix) or not isinstance(layers[1], nn.ConvTranspose2d):
        return 0
    if layers[1].groups != 1 or layers[1].padding_mode != "zeros":
        return 0
    bn = len(layers) > 2 and isinstance(layers[2], nn.BatchNorm2d)
    if bn and (layers[2].training or layers[2].running_var is None):
        return 0
    return 3 if bn else 2


def _mixed(layers, C, pos, cmax, chunk, progress):
    """Exact residuals of a decoder with a mixing head: the head's change for all channels at once, then the
    remaining layers on base + change, ``chunk`` channels at a time."""
    n_head = mixed_head(layers)
    mix, conv = layers[0], layers[1]
    c, (h, w) = C.shape[1], C.shape[2:]
    z0 = nn.Sequential(*layers[:n_head])(C)
    R0 = _run_tail(layers[n_head:], z0)     # as the chunks run: the same rounding in both terms of a residual
    cols = mix.weight[torch.arange(c, device=C.device), :, pos[:, 0] * w + pos[:, 1]]      # M_i[:, yx]: (c, h·w)
    dmix = (-cmax.to(C.dtype)[:, None] * cols.to(C.dtype)).view(c, 1, h, w)
    dz = _per_channel_transposed_conv(conv, dmix).view(c, -1, *z0.shape[2:])
    if n_head == 3:
        dz = dz * _bn_scale(layers[2], C.dtype)
    values = torch.empty((c, *R0.shape[2:]), dtype=C.dtype, device=C.device)
    for start in range(0, c, chunk):
        part = slice(start, min(start + chunk, c))
        values[part] = (_run_tail(layers[n_head:], z0 + dz[part]) - R0).abs().sum(1)
        progress(part.stop / c)
    return values, torch.zeros((c, 2), dtype=torch.long, device=C.device), R0, tuple(R0.shape[2:])


def _per_channel_transposed_conv(m: nn.ConvTranspose2d, X: torch.Tensor) -> torch.Tensor:
    """Row i of X (c,1,h,w) through m's weights of input channel i only (no bias): (c, co, H, W).

    As a grouped transposed convolution this is ~50x slower on the CPU than one batched matrix product: each
    map is placed once per kernel tap (an identity kernel, exact copies), then W_i (co, taps) @ taps_i."""
    k0, k1 = m.kernel_size
    eye = torch.eye(k0 * k1, dtype=X.dtype, device=X.device).view(1, k0 * k1, k0, k1)
    taps = Fn.conv_transpose2d(X, eye, None, m.stride, m.padding, m.output_padding, 1, m.dilation)
    out = torch.bmm(m.weight.to(X.dtype).flatten(2), taps.flatten(2))                     # (c, co, H·W)
    return out.view(len(X), -1, *taps.shape[2:])


def _run_tail(layers, x):
    """The layers after the head on a chunk, channels_last on the CPU (oneDNN's transposed convolution: ~1.8x
    faster here than on contiguous maps)."""
    return nn.Sequential(*layers)(x if x.is_cuda else x.contiguous(memory_format=torch.channels_last))


def _fast(layers, C, pos, cmax, chunk, progress):
    """Exact incremental residuals. On the CPU channels go in batches of one crop class (cropped windows, cache-
    sized pieces); on a GPU all channels go as one batch with gathered windows (few kernel launches, no host
    sync)."""
    if C.is_cuda:
        return _fast_one_batch(layers, C, pos, cmax, progress)
    return _fast_grouped(layers, C, pos, cmax, chunk, progress)


def _base_pass(layers, C):
    """The decoder on C, keeping each elementwise layer's input (for ReLU: its two halves, which make the
    exact difference max(dz + min(z,0), -max(z,0)) two cheap ops).

    The pass runs in float64 and its activations are rounded once to C's dtype: a change that is small next to
    the activations (a channel with a small maximum) is as exact as the stored activations, and float32
    accumulation in a single pass would leave ~1e-6 relative error in them (measured: worst channel 1.1e-5
    against a float64 reference, vs 1e-6 with this). It costs one extra decoder pass's worth of time.
    """
    base_inputs: list = []
    dtype = C.dtype
    x = C.double() if dtype == torch.float32 and C.device.type in ("cpu", "cuda") else C   # (no float64 on MPS)
    for m in layers:
        if isinstance(m, nn.ReLU):
            cl = torch.channels_last if x.dim() == 4 else torch.contiguous_format
            base_inputs.append((x.clamp(max=0).to(dtype).contiguous(memory_format=cl),
                                (-x.clamp(min=0)).to(dtype).contiguous(memory_format=cl)))
        else:
            base_inputs.append(x.to(dtype) if isinstance(m, ELEMENTWISE) else None)
        x = _apply_in(m, x)
    return base_inputs, x.to(dtype)


def _apply_in(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Layer m applied to x in x's dtype (its parameters converted on the fly; the module is left as it is)."""
    t = x.dtype
    if isinstance(m, nn.ConvTranspose2d) and t == torch.float64 and not x.is_cuda and m.groups == 1 \
            and m.dilation == (1, 1):
        # torch's float64 transposed convolution on the CPU is a slow reference path; the GEMM form is ~2x faster
        full = _transposed_conv_gemm(x, _gemm_layout(m.weight.to(t), m.stride, m.kernel_size), m.stride,
                                     m.kernel_size)
        (p0, p1), (q0, q1) = m.padding, m.output_padding
        full = Fn.pad(full, (0, max(0, q1 - p1), 0, max(0, q0 - p0)))
        H, W = _transposed_conv_size(m, x.shape[2:])
        out = full[:, :, p0:p0 + H, p1:p1 + W]
        return out if m.bias is None else out + m.bias.to(t).view(1, -1, 1, 1)
    if isinstance(m, nn.ConvTranspose2d):
        return Fn.conv_transpose2d(x, m.weight.to(t), None if m.bias is None else m.bias.to(t), m.stride,
                                   m.padding, m.output_padding, m.groups, m.dilation)
    if isinstance(m, nn.BatchNorm2d):
        stats = [None if v is None else v.to(t) for v in (m.running_mean, m.running_var, m.weight, m.bias)]
        return Fn.batch_norm(x, *stats, False, 0.0, m.eps)
    if isinstance(m, nn.PReLU):
        return Fn.prelu(x, m.weight.to(t))
    if next(iter(m.parameters()), x).dtype == t:
        return m(x)
    raise TypeError(f"cannot run {type(m).__name__} in {t}")


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
    """All channels of C (n,c,h,w) as one batch of n·c rows (row r: image r // c, channel r % c); pos and cmax
    as channel_maxima gives them. n = 2 runs both faces of a pair together: half the kernel launches."""
    n, c = C.shape[:2]
    dtype, dev = C.dtype, C.device
    base_inputs, R0 = _base_pass(layers, C)
    rows = torch.arange(n * c, device=dev)
    idx, image = rows % c, (rows // c if n > 1 else None)
    offs = pos.clone()
    hw = tuple(C.shape[2:])
    D = None                          # (c,ch,h,w) change; None while it is still the one-hot at C
    for kind, m, weight, li in _change_plan(layers, dtype):
        if kind == "convT":
            D = (_kernel_taps(weight, idx, cmax, m.dilation, m.kernel_size) if D is None
                 else _transposed_conv_change(m, weight, D, idx, cmax))
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
            D = _relu_diff(base_inputs[li], D, lambda t: _gather_windows(t, offs, D.shape[2:], image))
        else:
            D = activation_diff(m, _gather_windows(base_inputs[li], offs, D.shape[2:], image), D)
    progress(1.0)
    return D.abs().sum(1), offs, R0, tuple(R0.shape[2:])


def _transposed_conv_change(m: nn.ConvTranspose2d, Wt, D, idx, cmax, layouts: dict | None = None):
    """A transposed convolution (weights Wt) applied to the change D (bias cancels); D None = the one-hot at C.

    ``layouts``: the run's GEMM weight layouts by layer (filled here), so each is made once per run and none
    outlives it (weights may change between runs, e.g. in training)."""
    if D is None:
        return _kernel_taps(Wt, idx, cmax[idx], m.dilation, m.kernel_size)
    if _prefer_gemm(m, D):
        layouts = {} if layouts is None else layouts
        if id(m) not in layouts:
            layouts[id(m)] = _gemm_layout(Wt, m.stride, m.kernel_size)
        return _transposed_conv_gemm(D, layouts[id(m)], m.stride, m.kernel_size)
    # channels_last: oneDNN's transposed convolution is ~1.5-2x faster on these small windows
    return Fn.conv_transpose2d(D.contiguous(memory_format=torch.channels_last), Wt, None, stride=m.stride,
                               padding=0, dilation=m.dilation)


def _gemm_layout(Wt, stride, kernel) -> torch.Tensor:
    """Wt (ci, co, kh, kw) zero-padded to a multiple of the stride and laid out (ci, ky·kx·co)."""
    (s0, s1), (k0, k1) = stride, kernel
    K0, K1 = -(-k0 // s0) * s0, -(-k1 // s1) * s1
    Wp = Fn.pad(Wt, (0, K1 - k1, 0, K0 - k0)) if (K0, K1) != (k0, k1) else Wt
    return Wp.permute(0, 2, 3, 1).reshape(Wt.shape[0], -1).contiguous()


def _prefer_gemm(m: nn.ConvTranspose2d, D) -> bool:
    """One matrix product and a fold beat oneDNN's transposed convolution (measured on the CPU, about 2x) for
    few output channels (a decoder's last layer) or tiny input windows (4×4); a fixed rule, so a run's numbers
    do not depend on timings."""
    return (not D.is_cuda and m.dilation == (1, 1)
            and (m.out_channels <= 16 or D.shape[2] * D.shape[3] <= 16))


def _transposed_conv_gemm(D, Wg, stride, kernel):
    """conv_transpose2d(D, W, stride, padding 0) as (n·h·w, ci) @ (ci, k·k·co) and a fold of the k·k taps;
    ``Wg`` is W's :func:`_gemm_layout`.

    The kernel is zero-padded to a multiple of the stride, so tap ky = j·s + a lands on output row (y + j)·s + a:
    the fold is (k/s)² shifted adds of whole (n, h, s, w, s, co) blocks. Returns a channels_last tensor.
    """
    n, ci, h, w = D.shape
    (s0, s1), (k0, k1) = stride, kernel
    J0, J1 = -(-k0 // s0), -(-k1 // s1)
    co = Wg.shape[1] // (J0 * s0 * J1 * s1)
    X = D.permute(0, 2, 3, 1).reshape(-1, ci)                                      # free for channels_last D
    Y = (X @ Wg).view(n, h, w, J0, s0, J1, s1, co)
    out = torch.zeros((n, h + J0 - 1, s0, w + J1 - 1, s1, co), dtype=D.dtype, device=D.device)
    for j in range(J0):
        for k in range(J1):
            out[:, j:j + h, :, k:k + w] += Y[:, :, :, j, :, k].permute(0, 1, 3, 2, 4, 5)
    out = out.view(n, (h + J0 - 1) * s0, (w + J1 - 1) * s1, co)[:, :(h - 1) * s0 + k0, :(w - 1) * s1 + k1]
    return out.permute(0, 3, 1, 2)


def _transposed_conv_size(m: nn.ConvTranspose2d, hw: tuple[int, int]) -> tuple[int, int]:
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                 zip(hw, m.stride, m.padding, m.dilation, m.kernel_size, m.output_padding))


def _kernel_taps(Wt, idx, maxima, dilation, kernel):
    """The first transposed convolution's response to -C[i,y,x] at channel i = idx[r] (maxima[r] = C[i,y,x]):
    a scaled kernel slice per row."""
    taps = -maxima.to(Wt.dtype)[:, None, None, None] * Wt[idx]
    if dilation == (1, 1):
        return taps
    (d0, d1), (k0, k1) = dilation, kernel
    D = torch.zeros((len(idx), Wt.shape[1], d0 * (k0 - 1) + 1, d1 * (k1 - 1) + 1), dtype=Wt.dtype, device=Wt.device)
    D[:, :, ::d0, ::d1] = taps
    return D


def _one_hot(c, idx, maxima, dtype, dev):
    """The change at C itself, for decoders that start with something other than a transposed convolution: row r
    removes maxima[r] from channel idx[r]."""
    D = torch.zeros((len(idx), c, 1, 1), dtype=dtype, device=dev)
    D[torch.arange(len(idx), device=dev), idx, 0, 0] = -maxima.to(dtype)
    return D


# Batch sizes for the CPU engine, in elements of a layer's output (oneDNN's transposed convolution) or of the
# matrix product's k·k taps (GEMM form): measured best at about 4 MB and 16 MB, cache-sized pieces.
CONV_BUDGET = 1 << 20
GEMM_BUDGET = 1 << 22


def _fast_grouped(layers, C, pos, cmax, chunk, progress):
    """Exact incremental residuals on the CPU, channels batched by window shape.

    A channel's change windows depend only on where its maximum sits in C; away from the borders every
    position gives the same window shapes, at the borders they are cropped to the layer's output. Channels whose
    positions crop alike at every layer form a class; a class goes through each layer as one batch, reading the
    stored base activations under each channel's own window (broadcast slices for runs of channels at one
    position, a gather otherwise). A batch is halved before a transposed convolution whose output would exceed
    the budgets above.
    """
    c = C.shape[1]
    dtype, dev = C.dtype, C.device
    base_inputs, R0 = _base_pass(layers, C)
    geo = window_geometry(layers, C.shape[2:])
    plan = _change_plan(layers, dtype)
    bases = [_channels_last_rows(b) for b in base_inputs]
    values = torch.zeros((c, *geo.size), dtype=dtype, device=dev)
    pos_cpu = pos.cpu()
    offsets = pos_cpu * torch.tensor(geo.scale) + torch.tensor(geo.shift)
    positions = [tuple(p) for p in pos_cpu.tolist()]
    per_position = {p: _crop_plan(plan, C.shape[2:], p) for p in set(positions)}   # dozens, not hundreds
    crops = [per_position[p] for p in positions]
    layouts: dict = {}
    classes: dict[tuple, list[int]] = {}
    for i, crop in enumerate(crops):
        classes.setdefault(tuple(cr for cr, _ in crop), []).append(i)
    done = 0
    for members in classes.values():
        members.sort(key=positions.__getitem__)      # runs of channels at one position
        for start in range(0, len(members), chunk):
            part = members[start:start + chunk]
            batch = _Batch(plan, base_inputs, bases, torch.as_tensor(part, device=dev), cmax, C,
                           tops=torch.tensor([[o for _, o in crops[i]] for i in part]), crops=crops[part[0]],
                           layouts=layouts)
            for sub, D in batch.propagate():
                r0, c0 = batch.tops[sub[0], -1].tolist()
                orow, ocol = offsets[part[sub[0]]].tolist()   # the class crops alike: one relative offset
                h, w = D.shape[2:]
                values[batch.idx[sub], r0 - orow:r0 - orow + h, c0 - ocol:c0 - ocol + w] = D.abs().sum(1)
            done += len(part)
            progress(done / c)
    return values, offsets.to(dev), R0, tuple(R0.shape[2:])


def _crop_plan(plan, C_hw, position):
    """For a channel whose maximum sits at ``position``: per step, ((top, bottom, left, right) crop of the change
    window, (row, col) of the cropped window's top-left in that step's output)."""
    r0, c0 = position
    H, W = C_hw
    h = w = 1
    out = []
    for kind, m, _, _ in plan:
        if kind == "convT":
            (s0, s1), (p0, p1) = m.stride, m.padding
            h, w = change_window(m, h, w)
            r0, c0 = r0 * s0 - p0, c0 * s1 - p1
            H, W = _transposed_conv_size(m, (H, W))
            top, left = max(0, -r0), max(0, -c0)
            bottom, right = min(h, H - r0), min(w, W - c0)
            crop = (top, bottom, left, right)
            r0, c0, h, w = r0 + top, c0 + left, bottom - top, right - left
        else:
            crop = None
        out.append((crop, (r0, c0)))
    return out


def _channels_last_rows(base):
    """A stored base activation (1,ch,H,W) as (H·W, ch) rows for gathering windows, or ReLU's pair of them."""
    if base is None:
        return None
    if isinstance(base, tuple):
        return tuple(_channels_last_rows(t) for t in base)
    return base[0].permute(1, 2, 0).reshape(-1, base.shape[1]).contiguous(), base.shape[3]


def _position_runs(tops) -> list[tuple[int, int, int, int]]:
    """(start, end, row, col) of each run of equal window top-lefts in tops (n, 2)."""
    change = torch.ones(len(tops), dtype=torch.bool)
    change[1:] = (tops[1:] != tops[:-1]).any(1)
    starts = torch.nonzero(change)[:, 0].tolist() + [len(tops)]
    t = tops.tolist()
    return [(a, b, t[a][0], t[a][1]) for a, b in zip(starts[:-1], starts[1:])]


def _base_windows(base, rows, tops, size):
    """The stored base activation under each channel's window: (1,ch,h,w) slice if all tops agree, else a
    (n,ch,h,w) channels_last gather."""
    h, w = size
    if bool((tops == tops[0]).all()):
        r0, c0 = (int(v) for v in tops[0])
        return base[:, :, r0:r0 + h, c0:c0 + w]
    flat, W = rows
    idx = ((tops[:, 0, None, None] + torch.arange(h)[None, :, None]) * W
           + tops[:, 1, None, None] + torch.arange(w)[None, None, :])
    g = flat.index_select(0, idx.reshape(-1).to(flat.device))
    return g.view(len(tops), h, w, -1).permute(0, 3, 1, 2)


@dataclass
class _Batch:
    """Channels ``idx`` of one crop class on their way through the decoder's change plan."""

    plan: list
    base_inputs: list         # stored base activations per layer (ReLU: its two halves)
    bases: list               # the same as (H·W, ch) rows for gathers
    idx: torch.Tensor         # (n,) channel indices
    cmax: torch.Tensor
    C: torch.Tensor
    tops: torch.Tensor        # (n, steps, 2) each channel's window top-left after every step
    crops: list               # the class's (crop, _) per step
    layouts: dict             # the run's GEMM weight layouts (see _transposed_conv_change)

    def propagate(self, step: int = 0, D=None, sub=None):
        """Push the change of channels idx[sub] through plan[step:]; yields (sub, final change) pieces."""
        sub = torch.arange(len(self.idx)) if sub is None else sub
        for si in range(step, len(self.plan)):
            kind, m, weight, li = self.plan[si]
            if kind == "convT":
                if D is not None and len(sub) > 1 and _too_big(m, D):
                    half = len(sub) // 2
                    for part in (slice(0, half), slice(half, None)):
                        yield from self.propagate(si, D[part], sub[part])
                    return
                D = _transposed_conv_change(m, weight, D, self.idx[sub], self.cmax, self.layouts)
                top, bottom, left, right = self.crops[si][0]
                if (top, left) != (0, 0) or (bottom, right) != tuple(D.shape[2:]):
                    # elementwise ops on a cropped view run ~3x slower than on a dense tensor
                    D = D[:, :, top:bottom, left:right].contiguous(memory_format=torch.channels_last)
            elif D is None:
                D = _one_hot(self.C.shape[1], self.idx[sub], self.cmax[self.idx[sub]], self.C.dtype, self.C.device)
            if kind == "scale":
                D = D * weight
            elif kind == "act":
                D = self._activation(m, D, self.base_inputs[li], self.bases[li], self.tops[sub, si])
        yield sub, D

    @staticmethod
    def _activation(m, D, base, rows, tops):
        h, w = D.shape[2:]
        runs = _position_runs(tops)
        if len(runs) * 4 <= len(tops):
            # few distinct windows: each run of channels at one position against broadcast slices (no gathers)
            if isinstance(m, nn.ReLU):
                zneg, negzpos = base
                for a, b, r0, c0 in runs:      # in place: D is this batch's own fresh tensor
                    Dv = D[a:b]
                    Dv.add_(zneg[:, :, r0:r0 + h, c0:c0 + w])
                    torch.maximum(Dv, negzpos[:, :, r0:r0 + h, c0:c0 + w], out=Dv)
                return D
            out = torch.empty_like(D)
            for a, b, r0, c0 in runs:
                out[a:b] = activation_diff(m, base[:, :, r0:r0 + h, c0:c0 + w], D[a:b])
            return out
        if isinstance(m, nn.ReLU):
            zneg, negzpos = base
            return torch.maximum(D + _base_windows(zneg, rows[0], tops, (h, w)),
                                 _base_windows(negzpos, rows[1], tops, (h, w)))
        return activation_diff(m, _base_windows(base, rows, tops, (h, w)), D)


def _too_big(m: nn.ConvTranspose2d, D) -> bool:
    """Would the transposed convolution of the batch D, in the form it will run in, pass its budget?"""
    h, w = D.shape[2:]
    if _prefer_gemm(m, D):
        return len(D) * h * w * m.kernel_size[0] * m.kernel_size[1] * m.out_channels > GEMM_BUDGET
    oh, ow = change_window(m, h, w)
    return len(D) * m.out_channels * oh * ow > CONV_BUDGET
