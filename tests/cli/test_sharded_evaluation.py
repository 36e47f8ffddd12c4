"""Sharded evaluations: `xfr evaluate verify --workers 2` and `xfr evaluate hiding-game` under torchrun (2 gloo
processes) write the same JSON as one process, on real LFW pairs (skipped without ../shared/data/lfw), and rank 0's
merge pass only merges: the workers did the per-image and per-pair work."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xfr_desktop.cli import main as xfr
from xfr_desktop.core.evaluation.sharding import shard_of

from tests.conftest import REPO_ROOT as REPO


def test_shards_cover_the_items_once_and_differ_by_at_most_one():
    items = list(range(11))
    shares = [shard_of(items, r, 3) for r in range(3)]
    assert sorted(x for s in shares for x in s) == items
    assert {len(s) for s in shares} == {3, 4}


@pytest.fixture(scope="module")
def small_lfw(lfw_pairs_file, lfw_dir, tmp_path_factory):
    """Two folds of LFW's pairs.txt, the first 3 matched and 3 mismatched pairs of each (real photos)."""
    lines = lfw_pairs_file.read_text().splitlines()
    n = int(lines[0].split()[1])
    kept = [line for fold in (0, 1) for start in (1 + 2 * n * fold, 1 + 2 * n * fold + n)
            for line in lines[start:start + 3]]
    root = tmp_path_factory.mktemp("lfw-small")
    (root / "pairs.txt").write_text("\n".join(["2\t3", *kept]) + "\n")
    return root / "pairs.txt", lfw_dir




def without(d: dict, *keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def test_verify_with_two_workers_writes_the_one_process_json(small_lfw, model_file, tmp_path, monkeypatch):
    pairs, root = small_lfw
    common = ["evaluate", "verify", "--pairs", str(pairs), "--root", str(root), "--model", str(model_file),
              "--device", "cpu", "-q"]
    assert xfr(common + ["--out", str(tmp_path / "one")]) == 0
    from xfr_desktop.core.alignment import FaceAligner

    def no_alignment_here(*a, **k):
        raise AssertionError("rank 0's merge pass aligned an image the workers should have embedded")

    monkeypatch.setattr(FaceAligner, "align", no_alignment_here)  # the parent only; the workers are processes
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    assert xfr(common + ["--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    one = json.loads((tmp_path / "one" / "verify.json").read_text())
    two = json.loads((tmp_path / "two" / "verify.json").read_text())
    assert one["n_pairs"] == 12 and one["n_folds"] == 2 and one["accuracy_mean"] is not None
    assert without(two, "seconds") == without(one, "seconds")


def test_hiding_game_under_torchrun_writes_the_one_process_json(small_lfw, model_file, tmp_path):
    pairs, root = small_lfw
    common = ["evaluate", "hiding-game", "--pairs", str(pairs), "--root", str(root), "--model", str(model_file),
              "--methods", "ours,gradient,random", "--steps", "0,30,60", "--device", "cpu", "--no-progress"]
    assert xfr(common + ["--out", str(tmp_path / "one")]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "xfr_desktop.cli", *common, "--out", str(tmp_path / "two")]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", XFR_DIST_TIMEOUT_S="120")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one = json.loads((tmp_path / "one" / "hiding_game.json").read_text())
    two = json.loads((tmp_path / "two" / "hiding_game.json").read_text())
    assert one["n_pairs"] == 12 and one["auc"]
    assert two["timings"]["processes"] == 2 and two["timings"]["pairs_merged_from_workers"] == 12  # merged only
    assert sum(two["timings"]["maps_s_this_run"].values()) > 0 and two["n_resumed_from_cache"] == 0
    assert without(two, "timings") == without(one, "timings")
    cache = tmp_path / "two" / "cache"
    assert not list(cache.glob("results.shard-*")) and len((cache / "results.jsonl").read_text().splitlines()) == 12 * 4  # 3 methods and the fully blurred floor


def test_explanations_with_two_workers_write_the_one_process_json(small_lfw, model_file, tmp_path, monkeypatch):
    from xfr_desktop.core.evaluation import explanation_quality

    pairs, root = small_lfw
    common = ["evaluate", "explanations", "--pairs", str(pairs), "--root", str(root), "--model", str(model_file),
              "--methods", "ours,gradient", "--sanity-pairs", "2", "--device", "cpu", "--no-progress"]
    assert xfr(common + ["--out", str(tmp_path / "one")]) == 0
    calls = []
    real = explanation_quality.explain_pair
    monkeypatch.setattr(explanation_quality, "explain_pair", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    assert xfr(common + ["--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    assert len(calls) == 2  # rank 0: only the randomized model's sanity pairs; Algorithm 1's pairs came merged
    one = json.loads((tmp_path / "one" / "explanations.json").read_text())
    two = json.loads((tmp_path / "two" / "explanations.json").read_text())
    assert one["n_pairs"] == 12 and one["partner"]["n_extra_pairs"] > 0 and one["swaps"]["n_swaps"] > 0
    assert two["timings"]["processes"] == 2
    assert without(two, "timings") == without(one, "timings")
