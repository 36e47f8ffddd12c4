"""What the large views draw for a display mode, and the values under the cursor in the colour bar's unit.

Qt-free: :class:`~.views.PairViews` draws these arrays and writes :func:`readout` under the maps.
"""
from __future__ import annotations

import numpy as np

from ..core.map_style import ColourScale, scale_value, unit


def map_for(side, mode: str, channel: int | None) -> np.ndarray:
    """The H×W array a display mode shows for one side of an explanation."""
    if mode == "channel":
        if channel is None:
            return np.zeros_like(side.S)
        return side.residuals.channel(int(channel))
    return getattr(side, mode)


def map_values_at(result, maps: dict, x: float, y: float) -> dict[str, dict[str, float]] | None:
    """Per side, the shown map's value (``maps``: side -> the array drawn) and H's at aligned-space (x, y);
    None outside the faces or when nothing is drawn."""
    if result is None or not maps:
        return None
    h, w = result.a.S.shape
    col, row = int(np.floor(x)), int(np.floor(y))
    if not (0 <= col < w and 0 <= row < h):
        return None
    return {side: {"shown": float(maps[side][row, col]), "H": float(getattr(result, side).H[row, col])}
            for side in "ab"}


def readout(values: dict, name: str, scale: ColourScale | None, mode: str, normalization: str, x: float,
            y: float) -> str:
    """The values under the cursor in the colour bar's unit (its ×10ⁿ and unit stated once at the end)."""
    h_scale = scale if mode != "channel" else None   # H shares the bar's unit unless a channel residual is shown
    parts = [f"pixel ({int(np.floor(x))}, {int(np.floor(y))})"]
    for side in "ab":
        v = values[side]
        parts.append(f"<b>{side.upper()}</b>: {name} {scale_value(v['shown'], scale)}, "
                     f"H {scale_value(v['H'], h_scale, signed=True)}")
    unit_text = f"{scale.multiplier} {unit(mode, normalization)}".strip() if scale is not None else ""
    return "  ·  ".join(parts) + (f"  ({unit_text})" if unit_text else "")
