"""Mutation pins for the Tippett plot of core/calibration.py (issue 28): the figure that goes into the examiner's
signed report, read pixel by pixel against the layout worked out by hand.

The figure under test: a calibration with log10 LR = score (slope ln 10, intercept 0) and 100 reference scores of
each kind, so LRs are bounded to [1/100, 100] (log10 -2 .. 2); two same-person scores 0.5 and 1.5 and two
different-people scores -1.5 and -0.5. The two sets do not overlap, so the PAV (oracle) LRs are +inf and -inf,
drawn at the bounds +2 and -2.

The documented layout of a 960 x 650 figure: margins left 80, right 30, top 60, bottom 120, so the frame runs over
columns 80..930 and rows 60..530 (850 x 470 px); the x axis spans the LRs with half a decade to spare, here
log10 LR -2.5 .. 2.5, i.e. 170 px per decade and x = 0 at column 505; P = 1 at the top (row 60), P = 0 at the bottom
(row 530), 94 px per 0.2. Grid: light grey (200, 200, 200) at every whole decade (columns 165, 335, 505, 675, 845)
and every 0.2 of P (rows 530, 436, 342, 248, 154, 60); a darker (90, 90, 90) line at LR = 1; a black frame.
Curves, 2 px, anti-aliased: PAV light blue (240, 200, 170) and light red (170, 170, 245) under the logistic ones,
dark blue (200, 90, 30) for same person and dark red (40, 40, 210) for different people (colours are BGR).
Each curve is P(log10 LR >= x) sampled at 800 equally spaced x over the axis and joined by straight segments.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from xfr_desktop.core.calibration import Calibration, render_tippett, save_tippett, tippett_curves

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, BLACK, GREY, ZERO_LINE = (255, 255, 255), (0, 0, 0), (200, 200, 200), (90, 90, 90)
DARK_BLUE, DARK_RED = (200, 90, 30), (40, 40, 210)
LIGHT_BLUE, LIGHT_RED = (240, 200, 170), (170, 170, 245)

GENUINE, IMPOSTOR = [0.5, 1.5], [-1.5, -0.5]
TICK_COLUMNS = {-2: 165, -1: 335, 0: 505, 1: 675, 2: 845}            # 80 + 170 * (t + 2.5)
P_ROWS = {"0.0": 530, "0.2": 436, "0.4": 342, "0.6": 248, "0.8": 154, "1.0": 60}   # 60 + 470 * (1 - P)
STATS = "Cllr 0.123  Cllr_min 0.045  EER 3.12%"


def small_calibration(n=100):
    return Calibration(slope=math.log(10), intercept=0.0, n_genuine=n, n_impostor=n, cllr=0.123, cllr_min=0.045,
                       eer=0.0312, score_min=-1.5, score_max=1.5)


def step_rows(steps):
    """Rows of a Tippett curve at the 800 sample points, for a set of log10 LRs (`steps`): P(log10 LR >= x) is the
    share of the set at or above x; no sample point falls on a step here (x_k = -2.5 + 5 k / 799)."""
    xs = [-2.5 + 5 * k / 799 for k in range(800)]
    return [int(round(60 + 470 * (1 - sum(v >= x for v in steps) / len(steps)))) for x in xs]


def documented_figure(head="Tippett plot"):
    """The figure drawn from the layout above with literal coordinates (OpenCV draws the primitives)."""
    img = np.full((650, 960, 3), 255, np.uint8)
    for t, col in TICK_COLUMNS.items():
        cv2.line(img, (col, 60), (col, 530), GREY, 1)
        cv2.putText(img, str(t), (col - 8, 552), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    for label, row in sorted(P_ROWS.items()):
        cv2.line(img, (80, row), (930, row), GREY, 1)
        cv2.putText(img, label, (40, row + 5), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.line(img, (505, 60), (505, 530), ZERO_LINE, 1)
    cv2.rectangle(img, (80, 60), (930, 530), BLACK, 1)
    cols = [int(round(80 + 850 * k / 799)) for k in range(800)]
    for steps, colour in (([2.0, 2.0], LIGHT_BLUE), ([-2.0, -2.0], LIGHT_RED), (GENUINE, DARK_BLUE),
                          (IMPOSTOR, DARK_RED)):
        pts = np.array(list(zip(cols, step_rows(steps))), np.int32)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
    cv2.putText(img, "log10 LR  (x)", (455, 580), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "P(log10 LR >= x)", (8, 48), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, head, (80, 28), FONT, 0.6, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, STATS, (570, 28), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.line(img, (92, 610), (122, 610), DARK_BLUE, 2)
    cv2.putText(img, "same person (n=100)", (130, 615), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.line(img, (392, 610), (422, 610), DARK_RED, 2)
    cv2.putText(img, "different people (n=100)", (430, 615), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "dark: logistic calibration   light: PAV (oracle, Cllr_min)", (92, 639), FONT, 0.45, BLACK,
                1, cv2.LINE_AA)
    return img


@pytest.fixture(scope="module")
def figure():
    return render_tippett(small_calibration(), GENUINE, IMPOSTOR)


def text_alone(text, org, scale, shape=(650, 960)):
    """Pixels of one text drawn alone on white, and the mask of the pixels it touches."""
    canvas = np.full((*shape, 3), 255, np.uint8)
    cv2.putText(canvas, text, org, FONT, scale, BLACK, 1, cv2.LINE_AA)
    return canvas, (canvas != 255).any(axis=2)


def test_tippett_figure_is_the_documented_layout_pixel_for_pixel(figure):
    """Every pixel: frame, grid, LR = 1 line, tick labels, axis titles, default title, statistics, the four curves
    and the legend, where the layout puts them and nothing else."""
    assert figure.shape == (650, 960, 3) and figure.dtype == np.uint8
    expected = documented_figure()
    differ = (figure != expected).any(axis=2)
    assert not differ.any(), f"{int(differ.sum())} pixels differ, first at (row, col) {np.argwhere(differ)[0]}"


def test_tippett_frame_grid_and_lr_one_line_colours_and_positions(figure):
    """The frame is black and 1 px wide at rows 60 and 530 and columns 80 and 930; grid lines are (200, 200, 200)
    and 1 px wide; the LR = 1 line is (90, 90, 90) at column 505."""
    f = figure.astype(int)
    assert f[60, 900].tolist() == [0, 0, 0] and f[530, 120].tolist() == [0, 0, 0]   # top, bottom (no curve there)
    assert f[400, 80].tolist() == [0, 0, 0] and f[400, 930].tolist() == [0, 0, 0]  # left, right
    for row, col in ((59, 900), (61, 900), (531, 120), (529, 120)):
        assert f[row, col].tolist() == [255, 255, 255], (row, col)
    for col in (79, 81, 929, 931):
        assert f[400, col].tolist() == [255, 255, 255], col
    for row in (154, 248, 342, 436):                     # P = 0.8 .. 0.2, at x = 2.2 (only the grid there)
        assert f[row, 880].tolist() == [200, 200, 200], row
        assert f[row - 1, 880].tolist() == f[row + 1, 880].tolist() == [255, 255, 255], row
    for col in (335, 675):            # whole decades where no curve steps (at -2 and +2 the PAV steps cover them)
        assert f[400, col].tolist() == [200, 200, 200], col
        assert f[400, col - 1].tolist() == f[400, col + 1].tolist() == [255, 255, 255], col
    assert f[400, 505].tolist() == [90, 90, 90] and f[100, 505].tolist() == [90, 90, 90]
    assert f[400, 504].tolist() == f[400, 506].tolist() == [255, 255, 255]
    assert (f[:60, 81:930] != 255).any(axis=2).sum() > 0        # header text only above the frame ...
    assert (f[60:, 934:] == 255).all()                  # ... and nothing right of it (curves end at column 930)


def test_tippett_curves_are_drawn_in_their_colours_at_their_steps(figure):
    """The dark blue same-person curve sits at P = 1/2 (row 295) between log10 LR 0.5 and 1.5 (columns 590..760),
    the dark red one between -1.5 and -0.5 (columns 250..420); the light blue PAV curve stays at P = 1 up to +2
    (column 845), the light red one drops at -2 (column 165) to P = 0. Colours are compared literally at
    fully covered pixels."""
    f = figure.astype(int)
    assert f[295, 700].tolist() == list(DARK_BLUE)        # x = 1.15: same person at P = 1/2
    assert f[295, 260].tolist() == list(DARK_RED)         # x = -1.44: different people at P = 1/2
    assert f[60, 800].tolist() == list(LIGHT_BLUE)        # x = 1.74: the PAV same-person curve still at P = 1
    assert f[530, 200].tolist() == list(LIGHT_RED)        # x = -1.79: the PAV different-people curve at P = 0
    assert f[60, 620].tolist() == list(LIGHT_BLUE)        # x = 0.68: past the dark blue step, light blue alone
    assert f[60, 450].tolist() == list(DARK_BLUE)         # x = -0.32: dark blue over the PAV curve at P = 1
    assert f[60, 100].tolist() == list(DARK_RED)          # x = -2.38: dark red is drawn last, on top
    # a 2 px anti-aliased line: at x = 1.15 rows 294..296 are fully dark blue, rows 293 and 297 blend it into white
    column = f[290:301, 700].tolist()
    assert [290 + k for k, px in enumerate(column) if px == list(DARK_BLUE)] == [294, 295, 296]
    assert [290 + k for k, px in enumerate(column) if px == [255, 255, 255]] == [290, 291, 292, 298, 299, 300]
    # the legend's swatches under the axis, on row 610: 2 px lines over columns 92..122 (dark blue) and 392..422
    # (dark red) (a thick line covers rows 609..611 and has round ends reaching one column further)
    for c0, colour in ((92, DARK_BLUE), (392, DARK_RED)):
        assert all(f[r, c].tolist() == list(colour) for r in (609, 610, 611) for c in range(c0, c0 + 31)), c0
        assert f[610, c0 - 1].tolist() == f[610, c0 + 31].tolist() == list(colour), c0
        assert f[610, c0 - 2].tolist() == f[610, c0 + 32].tolist() == [255, 255, 255], c0
        assert f[608, c0 + 8].tolist() == f[612, c0 + 8].tolist() == [255, 255, 255], c0
    # no legend inside the frame: nothing there but the grid, the LR = 1 line and the curves' colours
    # (curves and their anti-aliased edges are coloured; text would add neutral greys other than these three)
    inside = f[61:530, 81:930].reshape(-1, 3)
    neutral = {int(v) for v in inside[(inside[:, 0] == inside[:, 1]) & (inside[:, 1] == inside[:, 2]), 0]}
    assert neutral <= {255, 200, 90}, sorted(neutral)
    # open curves: nothing joins a curve's right end (930, 530) back to its left end (80, 60); that line would
    # cross column 700 at row 60 + 470 * 620 / 850 = 402.8
    assert (f[400:406, 700] == 255).all()


@pytest.mark.parametrize("text,org,scale", [
    *[(str(t), (col - 8, 552), 0.5) for t, col in TICK_COLUMNS.items()],
    *[(label, (40, row + 5), 0.5) for label, row in P_ROWS.items()],
    ("log10 LR  (x)", (455, 580), 0.55),
    ("P(log10 LR >= x)", (8, 48), 0.5),
    ("Tippett plot", (80, 28), 0.6),
    (STATS, (570, 28), 0.5),
    ("same person (n=100)", (130, 615), 0.45),   # the legend, in the band under the axis title
    ("different people (n=100)", (430, 615), 0.45),
    ("dark: logistic calibration   light: PAV (oracle, Cllr_min)", (92, 639), 0.45),
])
def test_tippett_labels_read_as_written_where_the_layout_puts_them(figure, text, org, scale):
    """Each tick label, axis title, the default title, the Cllr / Cllr_min / EER line and the legend's words: the
    figure's pixels where the text is drawn alone on white are exactly those of that text, in black."""
    alone, mask = text_alone(text, org, scale)
    assert mask.sum() > 20
    np.testing.assert_array_equal(figure[mask], alone[mask])
    assert (alone[mask] < 255).all()


def test_tippett_title_given_replaces_the_default():
    """A title given is drawn at (80, 28) in place of "Tippett plot"."""
    img = render_tippett(small_calibration(), GENUINE, IMPOSTOR, title="Case 7: reference set")
    np.testing.assert_array_equal(img, documented_figure("Case 7: reference set"))


def test_tippett_axis_stops_at_the_last_whole_decade_inside_it():
    """With LRs over 12 decades (10^6 reference scores of each kind, x axis -6.5 .. 6.5), the ticks run -6 .. 6:
    no label for 7 is drawn in the right margin."""
    img = render_tippett(small_calibration(n=10 ** 6), [5.0, 6.0], [-6.0, -5.0])
    assert (img[535:, 935:] == 255).all()
    # the label "6" sits at 80 + 850 * 12.5 / 13 - 8 = 889 (rounded: 897 - 8)
    alone, mask = text_alone("6", (897 - 8, 552), 0.5)
    np.testing.assert_array_equal(img[mask], alone[mask])


def test_tippett_curves_read_numeric_text_as_numbers():
    """Scores given as text (as read from a file) are read as numbers: the curves equal those of the floats."""
    grid = np.array([-2.0, -1.0, 0.0, 0.7, 1.0, 2.0])
    x, pg, pi = tippett_curves(["0.5", "1.5"], ["-1.5", "-0.5"], grid)
    assert pg.tolist() == [1.0, 1.0, 1.0, 0.5, 0.5, 0.0]
    assert pi.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    x, pg, pi = tippett_curves(["0.5", "1.5"], ["-1.5", "-0.5"])
    assert x[0] == -2.5 and x[-1] == 2.5 and len(x) == 600


def test_save_tippett_writes_the_figure_as_png_in_new_folders(tmp_path):
    """save_tippett creates missing folders and writes a PNG that decodes to the documented figure, with the title
    given, else "Tippett plot"."""
    out = save_tippett(small_calibration(), GENUINE, IMPOSTOR, tmp_path / "a" / "b" / "tippett.png",
                       title="Case 7: reference set")
    assert out == tmp_path / "a" / "b" / "tippett.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                                  documented_figure("Case 7: reference set"))
    out = save_tippett(small_calibration(), GENUINE, IMPOSTOR, tmp_path / "c" / "d" / "default.png")
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_COLOR),
                                  documented_figure())


def test_tippett_long_title_moves_the_statistics_under_it_and_is_cut_to_the_figure():
    """A title that would run into the Cllr line (as `xfr calibrate` writes for a long reference name) keeps row
    28 to itself: the statistics are drawn right-aligned at the frame's right edge on row 48; a title wider than
    the figure is cut with "..." before the right margin."""
    title = "dlib-resnet-maxpool-joint on LFW View 2, all 6,000 pairs of pairs.txt (deep-funneled images)"
    img = render_tippett(small_calibration(), GENUINE, IMPOSTOR, title=title)
    width = cv2.getTextSize(STATS, FONT, 0.5, 1)[0][0]
    alone, mask = text_alone(STATS, (930 - width, 48), 0.5)
    np.testing.assert_array_equal(img[mask], alone[mask])
    alone, mask = text_alone(title, (80, 28), 0.6)
    np.testing.assert_array_equal(img[mask], alone[mask])          # the whole title, nothing drawn over it
    img = render_tippett(small_calibration(), GENUINE, IMPOSTOR, title=title + title)
    assert (img[:40, 950:] == 255).all() and (img[:40, 900:950] != 255).any()
