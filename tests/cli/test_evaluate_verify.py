"""`xfr evaluate verify`: the 10-fold protocol, ROC figures, no-face counting, the embedding cache, CSV lists and
clear errors for bad pair files."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from xfr_desktop.core.evaluation import best_accuracy_threshold, kfold_accuracy, roc


def test_threshold_and_kfold_on_separable_scores():
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores = np.r_[rng.uniform(0.6, 1.0, 300), rng.uniform(-0.2, 0.5, 300)]
    t = best_accuracy_threshold(scores, same)
    assert t == pytest.approx((scores[same].min() + scores[~same].max()) / 2)   # midway across the gap
    folds = np.tile(np.arange(10), 60)
    kf = kfold_accuracy(scores, same, folds)
    assert kf["accuracy_mean"] == 1.0 and kf["accuracy_std"] == 0.0 and len(kf["fold_accuracies"]) == 10


def test_kfold_threshold_never_sees_its_own_fold():
    # fold 0 is labelled the other way round: a threshold tuned on folds 1-9 must get it all wrong
    same = np.r_[np.ones(50, bool), np.zeros(50, bool), np.ones(50, bool), np.zeros(50, bool)]
    scores = np.r_[np.full(50, 0.9), np.full(50, 0.1), np.full(50, 0.1), np.full(50, 0.9)]
    folds = np.r_[np.ones(100, int), np.zeros(100, int)]
    kf = kfold_accuracy(scores, same, folds)
    assert kf["fold_accuracies"][0] == 0.0  # tuned on the normal fold, applied to the inverted one
    assert kf["fold_accuracies"][1] == 0.5  # the inverted fold can only tune "all match"


def test_roc_tar_at_far_and_eer():
    same = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    scores = np.r_[np.linspace(0.3, 1.0, 1000), np.linspace(0.0, 0.7, 1000)]
    r = roc(scores, same)
    # negatives above 0.6993 (the top 1 of 1000) -> FAR 1e-3; positives above it: (1.0-0.6993)/0.7 = 43%
    assert abs(r["tar_at_far_1e-3"] - 0.43) < 0.01
    assert abs(r["eer"] - 0.2 / 0.7) < 0.01  # FRR = FAR at 0.5: 0.2 / 0.7 on each side
    assert np.all(np.diff(r["far"]) >= 0) and r["far"][-1] == 1.0 and r["tar"][-1] == 1.0


def assert_figures_match_the_written_scores(out, res, n_pairs):
    """verify.json's figures recomputed from scores.npz by brute force over every threshold (independent of the
    evaluation code): accuracy at the threshold, EER, TAR@FAR1e-3, each fold's threshold and accuracy."""
    saved = np.load(out / "scores.npz")
    scores, same, folds = saved["scores"], saved["same"].astype(bool), saved["folds"]
    assert len(scores) == n_pairs
    assert res["accuracy_at_threshold"] == pytest.approx(np.mean((scores >= res["threshold"]) == same))
    cuts = np.r_[np.unique(scores), np.inf]
    frr = np.array([np.mean(scores[same] < t) for t in cuts])
    far = np.array([np.mean(scores[~same] >= t) for t in cuts])
    assert abs(res["eer"] - (frr + far)[np.argmin(np.abs(frr - far))] / 2) < 1e-12
    assert res["tar_at_far_1e-3"] == pytest.approx(max(1 - r for r, a in zip(frr, far) if a <= 1e-3))
    for k, (acc, t) in enumerate(zip(res["fold_accuracies"], res["fold_thresholds"])):
        test = folds == np.unique(folds)[k]
        train_best = max(np.mean((scores[~test] >= c) == same[~test]) for c in cuts)
        assert np.mean((scores[~test] >= t) == same[~test]) == pytest.approx(train_best)  # tuned on the others
        assert acc == pytest.approx(np.mean((scores[test] >= t) == same[test]))          # applied to its fold
    assert res["accuracy_mean"] == pytest.approx(np.mean(res["fold_accuracies"]))
    assert res["accuracy_std"] == pytest.approx(np.std(res["fold_accuracies"]))
    return scores, same


def test_verify_figures_on_overlapping_scores(tmp_path, tiny_model):
    """A random model on synthetic pre-aligned faces, with some 'same' pairs that are different images: the
    classes overlap, so EER, TAR@FAR and the fold accuracies are neither 0 nor 1 and each is checked by value."""
    from xfr_desktop.cli import main
    from xfr_desktop.core.model import save_model

    rng = np.random.default_rng(4)
    root = tmp_path / "faces"
    root.mkdir()
    faces = [cv2.resize(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8), (112, 112)) for _ in range(48)]
    for k, face in enumerate(faces):
        cv2.imwrite(str(root / f"f{k:02d}.png"), face)
        noisy = np.clip(face.astype(int) + rng.integers(-25, 26, face.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / f"f{k:02d}n.png"), noisy)
    rows = ["img_a,img_b,same"]
    rows += [f"f{k:02d}.png,f{k:02d}n.png,1" for k in range(0, 16)]                 # true matches
    rows += [f"f{k:02d}.png,f{k + 1:02d}.png,1" for k in range(16, 24)]             # 'matches' that are not
    rows += [f"f{k:02d}.png,f{k + 1:02d}n.png,0" for k in range(24, 47)]            # mismatches
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    save_model(tiny_model, tmp_path / "tiny.pt")
    out = tmp_path / "eval"
    assert main(["evaluate", "verify", "--pairs", str(tmp_path / "pairs.csv"), "--root", str(root), "--aligned",
                 "--model", str(tmp_path / "tiny.pt"), "--folds", "4", "--out", str(out), "--device", "cpu",
                 "-q"]) == 0
    res = json.loads((out / "verify.json").read_text())
    assert res["n_pairs"] == 47 and res["n_folds"] == 4 and res["n_matched"] == 24
    scores, same = assert_figures_match_the_written_scores(out, res, 47)
    assert 0.05 < res["eer"] < 0.5 and len(set(res["fold_accuracies"])) > 1      # the data is not degenerate


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory, lfw_dir):
    """A CSV list of 12 LFW pairs (6 same, 6 different) plus one pair with an image that has no face."""
    from xfr_desktop.core.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip("bundled model not built yet")
    people = [p for p in sorted(lfw_dir.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:12]
    rows = ["img_a,img_b,same"]
    for p in people[:6]:
        a, b = sorted(p.glob("*.jpg"))[:2]
        rows.append(f"{a.relative_to(lfw_dir)},{b.relative_to(lfw_dir)},yes")
    for p, q in zip(people[6:12], people[:6]):
        rows.append(f"{sorted(p.glob('*.jpg'))[0].relative_to(lfw_dir)},{sorted(q.glob('*.jpg'))[1].relative_to(lfw_dir)},0")
    d = tmp_path_factory.mktemp("pairs")
    blank = d / "blank.jpg"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    rows.append(f"{blank},{sorted(people[0].glob('*.jpg'))[0].relative_to(lfw_dir)},no")
    csv = d / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_verify_command_on_a_csv_list_counts_no_face_and_reuses_the_cache(small_csv, lfw_dir, tmp_path, capsys):
    from xfr_desktop.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "verify", "--pairs", str(small_csv), "--root", str(lfw_dir), "--out", str(out),
                 "-q"]) == 0
    res = json.loads((out / "verify.json").read_text())
    assert res["n_pairs"] == 13 and res["n_folds"] == 10
    assert res["n_no_face"] == 1 and res["n_pairs_with_no_face"] == 1
    assert_figures_match_the_written_scores(out, res, 13)
    assert res["accuracy_at_threshold"] >= 10 / 13  # a real face model gets these easy pairs right
    assert (out / "roc.png").stat().st_size > 1000 and (out / "embeddings.npz").is_file()
    first_seconds = res["seconds"]
    assert main(["evaluate", "verify", "--pairs", str(small_csv), "--root", str(lfw_dir), "--out", str(out),
                 "-q"]) == 0
    again = json.loads((out / "verify.json").read_text())
    assert again["accuracy_mean"] == res["accuracy_mean"] and again["n_no_face"] == 1
    assert again["seconds"] < max(first_seconds, 0.5)  # all embeddings came from the cache


@pytest.mark.parametrize("content, message", [
    ("", "empty pair list"),
    ("hello world\n", "not a pair list"),
    ("img_a,img_b,same\nx.jpg,y.jpg,maybe\n", "same"),
])
def test_bad_pair_files_get_one_line_messages(tmp_path, capsys, content, message):
    from xfr_desktop.cli import main

    bad = tmp_path / "pairs.csv"
    bad.write_text(content)
    code = main(["evaluate", "verify", "--pairs", str(bad), "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err
