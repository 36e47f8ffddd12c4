"""The hiding game: pixel hiding, AUC, an oracle beats a random map, determinism, resume, CLI messages."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from xfr_desktop.commands.evaluate_hiding import main as hiding_main
from xfr_desktop.core.attribution import Explainer, RandomExplainer
from xfr_desktop.core.decoder import paper_decoder_spec
from xfr_desktop.core.evaluation.hiding_game import (
    HidingGameConfig, PairJob, auc_percent, blur_face, hidden_versions, markdown_table, paired_auc_differences,
    play_pair, plot_curves, run_hiding_game, tiebreak_keys,
)
from xfr_desktop.core.model import JointModel, default_spec, save_model

SIZE = 32


class LeftHalfBackbone(nn.Module):
    """Sees only the left half of the image: the right half is provably irrelevant to every score."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1))

    def forward(self, x):
        x = x.clone()
        x[..., SIZE // 2:] = 0
        return self.body(x)


class OracleExplainer(Explainer):
    """Knows the truth about LeftHalfBackbone: the left half matters, the right half does not."""

    name = "oracle"

    def explain_maps(self, model, a, b):
        m = np.zeros(model.input_size, np.float32)
        m[:, : SIZE // 2] = 1
        return m, m.copy()


class ReversedOracle(OracleExplainer):
    """The oracle's map upside down: calls the unused right half important."""

    name = "reversed"

    def explain_maps(self, model, a, b):
        m, _ = super().explain_maps(model, a, b)
        return 1 - m, 1 - m


@pytest.fixture
def half_model():
    torch.manual_seed(0)
    spec = default_spec(name="left-half", input_size=[SIZE, SIZE], channels=16, threshold=0.0,
                        template=[[10, 12], [22, 12], [16, 18], [11, 24], [21, 24]],
                        decoder=paper_decoder_spec((16, 8, 3)))
    return JointModel(spec, backbone=LeftHalfBackbone()).eval()


def _textured(rng):
    small = rng.integers(0, 256, (SIZE // 4, SIZE // 4, 3), dtype=np.uint8)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)


def _jobs(n=12, seed=0):
    """Matched pairs: an image and a lightly noised copy; mismatched: two unrelated images."""
    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(n):
        a = _textured(rng)
        if i % 2 == 0:
            b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
        else:
            b = _textured(rng)
        jobs.append(PairJob(key=f"p{i:03d}", same=i % 2 == 0, load=lambda a=a, b=b: (a, b)))
    return jobs


def _threshold(model, jobs):
    """A threshold that separates the unmodified synthetic pairs (midway between the classes)."""
    scores = []
    for job in jobs:
        a, b = job.load()
        with torch.no_grad():
            _, F = model.embed(model.preprocess(np.stack([a, b])))
        scores.append(float(torch.nn.functional.cosine_similarity(F[0:1], F[1:2])[0]))
    scores = np.asarray(scores)
    same = np.asarray([j.same for j in jobs])
    assert scores[same].min() > scores[~same].max(), "synthetic pairs must be separable at p = 0"
    return float((scores[same].min() + scores[~same].max()) / 2)


def test_hidden_versions_replace_exactly_the_least_salient_pixels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    blurred = np.zeros_like(img)
    sal = np.arange(100, dtype=np.float32).reshape(10, 10)
    out = hidden_versions(img, blurred, sal, [0.0, 0.3, 0.9], tiebreak_keys((10, 10), 0))
    np.testing.assert_array_equal(out[0], img)
    hidden = (out[1] != img).any(-1) | ((img == 0).all(-1) & (sal < 30))
    assert (out[1].reshape(100, 3)[:30] == 0).all()                 # the 30 least salient are blurred
    np.testing.assert_array_equal(out[1].reshape(100, 3)[30:], img.reshape(100, 3)[30:])
    assert hidden.sum() <= 30
    assert (out[2].reshape(100, 3)[:90] == 0).all()


def test_auc_is_the_normalised_trapezoid():
    steps = list(range(0, 100, 10))
    assert auc_percent(steps, [90.0] * 10) == pytest.approx(90.0)
    assert auc_percent(steps, np.linspace(100, 80, 10)) == pytest.approx(90.0)
    assert auc_percent([0, 90], [100, 50]) == pytest.approx(75.0)


def test_paired_differences_are_the_mean_of_per_pair_auc_gaps_with_a_bootstrap_interval():
    """ours − other on the pairs both were played on (steps 0/50/100 %, τ = 0.5; a score equal to τ is a match).
    Per pair, by hand: same, ours ✓✓✗ = 75 vs ✓✗✗ = 25 → +50; different, ours ✓✓✗ (0.5 ≥ τ) = 75 vs ✓✗✓ = 50
    → +25; same, ours ✓✗✗ = 25 vs ✓✓✗ = 75 → −50; a fourth pair without the other method is left out."""
    rows = [(True, [0.9, 0.9, 0.1], [0.9, 0.1, 0.1]), (False, [0.1, 0.1, 0.5], [0.1, 0.9, 0.1]),
            (True, [0.9, 0.1, 0.1], [0.9, 0.9, 0.1])]
    rec = [{"same": same, "scores": {"ours": ours, "other": other, "same_as_ours": list(ours)}}
           for same, ours, other in rows] + [{"same": True, "scores": {"ours": [0.9, 0.9, 0.9]}}]
    gaps = paired_auc_differences(rec, ["ours", "other", "same_as_ours"], [0, 50, 100], 0.5, n_boot=500)
    assert set(gaps) == {"other", "same_as_ours"}
    assert gaps["other"]["n_pairs"] == 3 and gaps["other"]["difference"] == pytest.approx(25 / 3, abs=1e-4)
    lo, hi = gaps["other"]["ci95"]
    assert -50 <= lo < 25 / 3 < hi <= 50          # resampled means of {+50, +25, −50} stay within their range
    assert gaps["same_as_ours"] == {"difference": 0.0, "ci95": [0.0, 0.0], "n_pairs": 3}
    again = paired_auc_differences(rec, ["ours", "other"], [0, 50, 100], 0.5, n_boot=500)
    assert again["other"] == gaps["other"]      # seeded: the same interval every run
    summary = {"methods": ["ours", "other"], "steps": [0, 50, 100], "auc": {"ours": 1.0, "other": 1.0},
               "auc_matched": {}, "auc_mismatched": {}, "accuracy": {"ours": [1, 1, 1], "other": [1, 1, 1]},
               "ours_minus": {"other": gaps["other"]}}
    assert f"- other: +8.33 ({lo:+.2f} to {hi:+.2f}; 3 pairs)" in markdown_table(summary)


def test_default_blur_destroys_detail():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    out = blur_face(img, 15.0)
    assert out.std() < 0.1 * img.std()


def test_step_zero_is_shared_and_scores_come_per_step(half_model):
    job = _jobs(2)[0]
    a, b = job.load()
    maps = {"oracle": OracleExplainer()(half_model, a, b), "random": RandomExplainer()(half_model, a, b)}
    scores = play_pair(half_model, a, b, maps, [0, 50, 90], 8.0, tiebreak_keys((SIZE, SIZE), 0))
    assert scores["oracle"][0] == scores["random"][0]
    assert len(scores["oracle"]) == 3
    # hiding the irrelevant right half (50%) changes nothing for the oracle
    assert scores["oracle"][1] == pytest.approx(scores["oracle"][0], abs=1e-9)


def test_deletion_hides_the_most_salient_pixels_first(half_model):
    sal = np.arange(100, dtype=np.float32).reshape(10, 10)
    rng = np.random.default_rng(1)
    img = rng.integers(1, 256, (10, 10, 3), dtype=np.uint8)
    out = hidden_versions(img, np.zeros_like(img), sal, [0.3], tiebreak_keys((10, 10), 0), order="most")
    assert (out[0].reshape(100, 3)[70:] == 0).all()                 # the 30 most salient are blurred
    np.testing.assert_array_equal(out[0].reshape(100, 3)[:70], img.reshape(100, 3)[:70])
    # on the synthetic model the oracle ranks the half the model uses first, so deleting by it fails fast;
    # the reversed map deletes the unused half first and keeps every verdict up to 50 %
    jobs = _jobs(12)
    cfg = HidingGameConfig(blur_sigma=16.0, threshold=_threshold(half_model, jobs), seed=1, order="most")
    explainers = {"oracle": OracleExplainer(), "reversed": ReversedOracle()}
    deletion = run_hiding_game(half_model, jobs, ["oracle", "reversed"], cfg, explainers=explainers)
    assert deletion["configuration"]["order"] == "most"
    assert deletion["accuracy"]["reversed"][5] == 100.0
    assert deletion["accuracy"]["oracle"][5] < 100.0
    assert deletion["auc"]["oracle"] < deletion["auc"]["reversed"] - 5
    assert "lower AUC" in markdown_table(deletion)
    with pytest.raises(Exception, match="order must be"):
        run_hiding_game(half_model, jobs, ["random"], HidingGameConfig(order="sideways"), explainers=explainers)


def test_oracle_map_beats_random_map(half_model, tmp_path):
    jobs = _jobs(12)
    cfg = HidingGameConfig(blur_sigma=16.0, threshold=_threshold(half_model, jobs), seed=1)
    explainers = {"oracle": OracleExplainer(), "random": RandomExplainer(seed=1), "reversed": ReversedOracle()}
    summary = run_hiding_game(half_model, jobs, ["oracle", "random", "reversed"], cfg, cache_dir=None,
                              explainers=explainers)
    assert summary["accuracy"]["oracle"][0] == 100.0
    assert summary["accuracy"]["oracle"][5] == 100.0                   # 50% hidden: only the irrelevant half
    assert summary["auc"]["oracle"] > summary["auc"]["random"] + 5
    # the game hides the LEAST salient pixels first: the reversed oracle hides the half the model uses at 50%
    # (matched pairs alone stay "same" when both halves blur alike, so the check is on all pairs)
    assert summary["accuracy"]["reversed"][5] < 100.0
    assert summary["auc"]["oracle"] > summary["auc"]["reversed"] + 5
    assert summary["n_pairs"] == 12 and summary["n_matched"] == 6
    # the floor, recomputed here: both faces blurred with a (2⌈3σ⌉+1)² Gaussian kernel, reflected borders
    correct = []
    for job in jobs:
        blurred = [cv2.GaussianBlur(x, (97, 97), 16.0, sigmaY=16.0, borderType=cv2.BORDER_REFLECT_101)
                   for x in job.load()]
        with torch.no_grad():
            _, F = half_model.embed(half_model.preprocess(np.stack(blurred)))
        score = float(torch.nn.functional.cosine_similarity(F[0:1], F[1:2])[0])
        correct.append((score >= cfg.threshold) == job.same)
    assert summary["accuracy_fully_blurred"]["all"] == pytest.approx(100.0 * np.mean(correct), abs=1e-3)
    md = markdown_table(summary)
    assert "| oracle |" in md and "50%" in md
    plot_curves(summary, tmp_path / "plot.png", "test")
    assert cv2.imread(str(tmp_path / "plot.png")) is not None


def test_fixed_seed_gives_identical_results_and_a_rerun_resumes_from_cache(half_model, tmp_path):
    jobs = _jobs(8)
    thr = _threshold(half_model, jobs)
    explainers = lambda: {"random": RandomExplainer(seed=5), "oracle": OracleExplainer()}  # noqa: E731
    cfg = HidingGameConfig(steps=(0, 20, 40, 60, 80), blur_sigma=4.0, threshold=thr, seed=5)
    first = run_hiding_game(half_model, jobs, ["random", "oracle"], cfg, tmp_path / "c1", explainers())
    second = run_hiding_game(half_model, jobs, ["random", "oracle"], cfg, tmp_path / "c2", explainers())
    assert first["accuracy"] == second["accuracy"] and first["auc"] == second["auc"]
    assert len(list((tmp_path / "c1" / "maps").glob("*.npz"))) == 16
    # an interrupted run: drop the last pair's lines; the rerun recomputes only that pair
    lines = (tmp_path / "c1" / "results.jsonl").read_text().splitlines()
    (tmp_path / "c1" / "results.jsonl").write_text("\n".join(lines[:-2]) + "\n{\"cut")
    resumed = run_hiding_game(half_model, jobs, ["random", "oracle"], cfg, tmp_path / "c1", explainers())
    assert resumed["n_resumed_from_cache"] == 7
    assert resumed["accuracy"] == first["accuracy"]
    other = run_hiding_game(half_model, jobs, ["random"], HidingGameConfig(
        steps=(0, 20, 40, 60, 80), blur_sigma=4.0, threshold=thr, seed=6), tmp_path / "c3",
        {"random": RandomExplainer(seed=6)})
    assert other["n_pairs"] == 8


def test_pairs_without_a_face_are_counted_not_dropped_silently(half_model):
    from xfr_desktop.core.errors import NoFaceError

    jobs = _jobs(4)

    def broken():
        raise NoFaceError("x.jpg: no face found")

    jobs.append(PairJob(key="bad", same=True, load=broken, label="line 9"))
    cfg = HidingGameConfig(steps=(0, 50), blur_sigma=4.0, threshold=_threshold(half_model, jobs[:4]))
    summary = run_hiding_game(half_model, jobs, ["oracle"], cfg, explainers={"oracle": OracleExplainer()})
    assert summary["n_no_face"] == 1 and summary["n_pairs"] == 4
    assert "line 9: x.jpg: no face found" in summary["no_face"][0]


# --- command line -------------------------------------------------------------------------------------------
def _write_csv_case(tmp_path, n=4):
    rng = np.random.default_rng(0)
    rows = ["img_a,img_b,same"]
    for i in range(n):
        for side in "ab":
            img = cv2.resize(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8), (112, 112))
            cv2.imwrite(str(tmp_path / f"{i}{side}.png"), img)
        rows.append(f"{i}a.png,{i}b.png,{'yes' if i % 2 == 0 else 'no'}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "pairs.csv"


def test_cli_writes_json_plot_and_table(tiny_model, tmp_path):
    pairs = _write_csv_case(tmp_path)
    save_model(tiny_model, tmp_path / "tiny.pt")
    out = tmp_path / "out"
    rc = hiding_main(["--pairs", str(pairs), "--root", str(tmp_path), "--model", str(tmp_path / "tiny.pt"),
                      "--methods", "gradient,stylianou,random", "--aligned", "--out", str(out),
                      "--steps", "0,30,60,90", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "hiding_game.json").read_text())
    assert set(data["auc"]) == {"gradient", "stylianou", "random"}
    assert data["steps"] == [0, 30, 60, 90] and len(data["accuracy"]["gradient"]) == 4
    assert len(data["model"]["sha256"]) == 64 and data["n_pairs"] == 4
    assert "timings" in data and "configuration" in data
    assert (out / "hiding_game.png").is_file() and "| Gradient |" in (out / "hiding_game.md").read_text()


@pytest.mark.parametrize("content, message", [
    ("img_a,img_b,same\nmissing1.png,missing2.png,1\n", "missing"),
    ("left,right,label\n1a.png,1b.png,1\n", "img_a,img_b,same"),
    ("img_a,img_b,same\n0a.png,0b.png,perhaps\n", "same must be"),
])
def test_cli_bad_pair_files_get_one_clear_line(tmp_path, capsys, content, message):
    _write_csv_case(tmp_path, n=1)
    (tmp_path / "bad.csv").write_text(content)
    rc = hiding_main(["--pairs", str(tmp_path / "bad.csv"), "--root", str(tmp_path), "--out",
                      str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_arguments_get_clear_messages(tmp_path, capsys):
    pairs = _write_csv_case(tmp_path, n=1)
    assert hiding_main(["--pairs", str(pairs), "--root", str(tmp_path), "--out", str(tmp_path / "o"),
                        "--methods", "ours,lime"]) == 2
    assert "unknown attribution method(s) lime" in capsys.readouterr().err
    assert hiding_main(["--pairs", str(pairs), "--root", str(tmp_path), "--out", str(tmp_path / "o"),
                        "--folds", "3"]) == 2
    assert "folds 1.." in capsys.readouterr().err


def test_synthetic_occluders_cover_their_part_of_the_face_and_mass_share_counts_inside():
    from xfr_desktop.core.evaluation.occlusion import mass_share, occluder_mask, paste_occluder
    from xfr_desktop.core.model import ARCFACE_TEMPLATE_112

    template = np.asarray(ARCFACE_TEMPLATE_112)
    mask = occluder_mask("mask", template, (112, 112))
    glasses = occluder_mask("sunglasses", template, (112, 112))
    mouth = template[3:].mean(0).round().astype(int)
    eye = template[0].round().astype(int)
    assert mask[mouth[1], mouth[0]] and not mask[eye[1], eye[0]]
    assert glasses[eye[1], eye[0]] and not glasses[mouth[1], mouth[0]]
    assert 0.1 < mask.mean() < 0.5 and 0.03 < glasses.mean() < 0.2
    face = np.full((112, 112, 3), 128, np.uint8)
    painted, region = paste_occluder(face, "sunglasses", template)
    assert (painted[region] < 40).all() and (painted[~region] == 128).all()
    heat = np.zeros((112, 112))
    heat[region] = 1.0
    assert mass_share(heat, region) == 1.0 and mass_share(heat, ~region) == 0.0
    with pytest.raises(ValueError, match="occluder must be"):
        occluder_mask("hat", template, (112, 112))


@pytest.mark.shared
def test_cli_on_real_lfw_pairs_with_face_alignment(tiny_model, tmp_path, lfw_dir, lfw_pairs_file):
    """Two LFW pairs of fold 1 through YuNet alignment; a rerun resumes everything from the cache."""
    save_model(tiny_model, tmp_path / "tiny.pt")
    argv = ["--pairs", str(lfw_pairs_file), "--root", str(lfw_dir), "--folds", "1", "--limit", "2",
            "--model", str(tmp_path / "tiny.pt"), "--methods", "stylianou,centre", "--steps", "0,50,90",
            "--out", str(tmp_path / "out"), "--no-progress"]
    assert hiding_main(argv) == 0
    first = json.loads((tmp_path / "out" / "hiding_game.json").read_text())
    assert first["n_pairs"] + first["n_no_face"] == 2 and first["n_matched"] <= 1
    assert hiding_main(argv) == 0
    second = json.loads((tmp_path / "out" / "hiding_game.json").read_text())
    assert second["n_resumed_from_cache"] == 2 and second["auc"] == first["auc"]
