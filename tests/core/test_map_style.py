"""One visual vocabulary for the maps (core/map_style.py, core/render.py): colours, colour-bar scales, CLI PNGs."""
from __future__ import annotations

import numpy as np
import pytest

from xfr_desktop.core.map_style import (MAP_STYLES, colour_bar_caption, colour_levels, colour_scale, is_empty, lut,
                                        map_style)
from xfr_desktop.core.render import overlay


@pytest.mark.parametrize("low, high, labels, multiplier", [
    (0.0, 2.3e-4, ["0.0", "0.5", "1.0", "1.5", "2.0", "2.3"], "×10⁻⁴"),   # the case: labels reach 2.3e-4
    (-2.3e-4, 2.3e-4, ["−2.3", "−1.0", "0.0", "1.0", "2.3"], "×10⁻⁴"),
    (0.0, 0.0378, ["0.000", "0.010", "0.020", "0.030", "0.038"], ""),
    (0.0, 1.0, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"], ""),
    (0.0, 3456.0, ["0", "1000", "2000", "3456"], ""),
])
def test_colour_scale_labels_cover_the_range_in_one_format(low, high, labels, multiplier):
    scale = colour_scale(low, high)
    assert [label for _, label in scale.ticks] == labels          # written out by hand
    assert scale.ticks[0][0] == low and scale.ticks[-1][0] == high
    assert scale.multiplier == multiplier


def test_caption_names_the_map_and_its_unit():
    scale = colour_scale(0, 2.3e-4)
    assert colour_bar_caption("S_pos", scale) == "S⁺ (×10⁻⁴ cosine score per pixel), max 2.3"
    assert colour_bar_caption("S_neg", scale, ascii_only=True) == "S- (x1e-4 cosine score per pixel), max 2.3"
    assert colour_bar_caption("H", colour_scale(-2.3e-4, 2.3e-4)).endswith("), max |H| 2.3")
    assert "relative" in colour_bar_caption("S", scale, normalization="max")


def test_one_colour_map_per_kind_and_h_joins_the_similar_and_dissimilar_ramps():
    luts = {kind: lut(kind) for kind in MAP_STYLES}
    ends = {kind: tuple(table[-1]) for kind, table in luts.items() if kind != "H"}
    assert len(set(ends.values())) == len(ends)                  # every kind ends in its own colour
    np.testing.assert_array_equal(luts["H"][-1], luts["S_pos"][-1])   # +max of H: deepest "similar"
    np.testing.assert_array_equal(luts["H"][0], luts["S_neg"][-1])    # −max of H: deepest "dissimilar"
    blue, orange = luts["S_pos"][-1].astype(int), luts["S_neg"][-1].astype(int)
    assert blue[2] > blue[0] and orange[0] > orange[2]            # similar is blue, dissimilar orange
    with pytest.raises(ValueError, match="unknown map kind"):
        map_style("viridis")


def test_levels_empty_maps_and_an_untinted_face():
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    b[1, 1] = -3.0
    assert colour_levels([a, b], "H") == (-3.0, 3.0) and colour_levels([a, b], "S") == (0.0, 3.0)
    assert is_empty([a, a]) and not is_empty([a, b])
    face = np.full((4, 4, 3), 120, np.uint8)
    heat = np.zeros((4, 4))
    heat[2, 2] = 1.0
    out = overlay(face, heat, 1.0, kind="S_pos")
    assert (out[0, 0] == 120).all()                 # zero evidence leaves the face as it was (no purple cast)
    assert out[2, 2, 2] > out[2, 2, 0]              # the peak is blue
