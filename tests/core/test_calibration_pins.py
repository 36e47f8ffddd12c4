"""Mutation pins for core/calibration.py (issue 28), from the seeded sample's survivors: the pool-adjacent-violators
LRs of a four-score set worked out by hand, and the one-line refusal of scores that point the wrong way."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xfr_desktop.core.calibration import CalibrationError, fit_calibration, pav_log10_lr


def test_pav_lrs_of_a_small_set_by_hand():
    # sorted: 0.1 (impostor), 0.2 (genuine), 0.5 (impostor), 0.8 (genuine); the increasing fit pools the middle two
    # to 1/2, so log10 LR = log10(p / (1 - p)) - log10(2 / 2): -inf, 0, 0, +inf
    g, i = pav_log10_lr([0.2, 0.8], [0.1, 0.5])
    assert g.tolist() == [0.0, math.inf] and i.tolist() == [-math.inf, 0.0]


def test_scores_that_point_the_wrong_way_are_refused_in_one_line():
    rng = np.random.default_rng(0)
    with pytest.raises(CalibrationError) as err:
        fit_calibration(rng.normal(0.1, 0.05, 200), rng.normal(0.6, 0.05, 200))
    assert str(err.value) == ("genuine scores are not higher than impostor scores; the model or the pair list is "
                              "wrong")
