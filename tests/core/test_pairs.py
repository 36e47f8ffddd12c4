"""Pair lists: LFW pairs.txt and CSV img_a,img_b,same; malformed lines and missing images give clear errors."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from xfr_desktop.core.errors import PairListError
from xfr_desktop.core.pairs import Pair, parse_same, read_pairs


def touch_lfw(root: Path, *stems: str) -> None:
    for stem in stems:
        person = stem.rsplit("_", 1)[0]
        (root / person).mkdir(parents=True, exist_ok=True)
        (root / person / f"{stem}.jpg").write_bytes(b"x")


LFW_TEXT = (
    "2\t1\n"
    "Alice_Smith\t1\t2\n"
    "Bob_Jones\t1\tCarol_White\t3\n"
    "Dave_Brown\t2\t4\n"
    "Alice_Smith\t2\tDave_Brown\t1\n"
)


@pytest.fixture
def lfw_root(tmp_path) -> Path:
    root = tmp_path / "lfw"
    touch_lfw(root, "Alice_Smith_0001", "Alice_Smith_0002", "Bob_Jones_0001", "Carol_White_0003",
              "Dave_Brown_0002", "Dave_Brown_0004", "Dave_Brown_0001")
    return root


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def expect_error(path: Path, root: Path, *fragments: str, **kwargs) -> str:
    with pytest.raises(PairListError) as exc:
        read_pairs(path, root, **kwargs)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# --- LFW -----------------------------------------------------------------------------------------------------
def test_lfw_pairs_are_parsed_with_folds(tmp_path, lfw_root):
    pairs = read_pairs(write(tmp_path, "pairs.txt", LFW_TEXT), lfw_root)
    assert pairs.format == "lfw" and pairs.n_folds == 2 and len(pairs) == 4
    assert pairs[0] == Pair(lfw_root / "Alice_Smith" / "Alice_Smith_0001.jpg",
                            lfw_root / "Alice_Smith" / "Alice_Smith_0002.jpg", True, 0, 2)
    assert pairs[1].same is False and pairs[1].path_b.name == "Carol_White_0003.jpg" and pairs[1].fold == 0
    assert [p.fold for p in pairs] == [0, 0, 1, 1]
    assert [p.same for p in pairs] == [True, False, True, False]
    assert pairs.missing == [] and len(pairs.images) == 7


def test_lfw_single_number_header_is_one_fold(tmp_path, lfw_root):
    text = "1\nAlice_Smith 1 2\nBob_Jones 1 Carol_White 3\n"  # spaces instead of tabs work too
    pairs = read_pairs(write(tmp_path, "dev.txt", text), lfw_root)
    assert len(pairs) == 2 and {p.fold for p in pairs} == {0}


def test_real_lfw_pairs_file(lfw_pairs_file, lfw_dir):
    pairs = read_pairs(lfw_pairs_file, lfw_dir)
    assert len(pairs) == 6000 and pairs.n_folds == 10 and pairs.missing == []
    counts = Counter((p.fold, p.same) for p in pairs)
    assert set(counts.values()) == {300} and len(counts) == 20
    assert len(pairs.images) == 7701


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("2\t1\nAlice_Smith\t1\nBob_Jones\t1\tCarol_White\t3\n", 2, "got 2 fields"),
        ("2\t1\nAlice_Smith\t1\t2\nBob_Jones\t1\tCarol_White\n", 3, "mismatched"),
        ("2\t1\nAlice_Smith\tone\t2\nBob_Jones\t1\tCarol_White\t3\n", 2, "'one' is not a positive integer"),
        ("2\t1\nAlice_Smith\t0\t2\nBob_Jones\t1\tCarol_White\t3\n", 2, "not a positive integer"),
        ("1\t1\nAlice_Smith\t1\t2\nBob_Jones\t1\tCarol_White\t3\nDave_Brown\t2\t4\n", 4, "more pairs than the header"),
        ("1\t1\n../etc\t1\t2\nBob_Jones\t1\tCarol_White\t3\n", 2, "not a person name"),
        ("hello world\n", 1, "not a pair list"),
    ],
)
def test_malformed_lfw_lines_name_file_and_line(tmp_path, lfw_root, text, line, fragment):
    path = write(tmp_path, "pairs.txt", text)
    expect_error(path, lfw_root, f"line {line}", fragment)


def test_lfw_too_few_pairs(tmp_path, lfw_root):
    path = write(tmp_path, "pairs.txt", "2\t1\nAlice_Smith\t1\t2\nBob_Jones\t1\tCarol_White\t3\n")
    expect_error(path, lfw_root, "2 pairs but the header promises 4")


# --- CSV -----------------------------------------------------------------------------------------------------
def make_csv_images(root: Path, n: int) -> None:
    (root / "img").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "img" / f"{i}.png").write_bytes(b"x")


def test_csv_pairs_any_column_order_and_same_words(tmp_path):
    root = tmp_path / "data"
    make_csv_images(root, 4)
    text = "\ufeffnote,same,img_b,img_a\nfirst,Yes,img/1.png,img/0.png\n\n,0,img/3.png,img/2.png\n" \
           "x,TRUE,img/2.png,img/1.png\ny,no,img/0.png,img/3.png\n"
    pairs = read_pairs(write(tmp_path, "list.csv", text), root)
    assert pairs.format == "csv" and len(pairs) == 4
    assert [p.same for p in pairs] == [True, False, True, False]
    assert pairs[0].path_a == root / "img" / "0.png" and pairs[0].path_b == root / "img" / "1.png"
    assert [p.line for p in pairs] == [2, 4, 5, 6]


def test_csv_gets_ten_seeded_stratified_folds(tmp_path):
    root = tmp_path / "data"
    make_csv_images(root, 2)
    rows = [f"img/0.png,img/1.png,{i % 2}" for i in range(200)]
    path = write(tmp_path, "list.csv", "img_a,img_b,same\n" + "\n".join(rows) + "\n")
    first = read_pairs(path, root)
    again = read_pairs(path, root)
    other = read_pairs(path, root, seed=1)
    assert first.n_folds == 10
    assert [p.fold for p in first] == [p.fold for p in again]
    assert [p.fold for p in first] != [p.fold for p in other]
    counts = Counter((p.fold, p.same) for p in first)
    assert set(counts.values()) == {10} and len(counts) == 20  # every fold: 10 matched + 10 mismatched


def test_parse_same_words():
    assert [parse_same(w) for w in ("1", "yes", "True", " y ", "0", "No", "FALSE", "n")] == [True] * 4 + [False] * 4
    assert parse_same("maybe") is None and parse_same("") is None


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("img/0.png,img/1.png,1\n", ["line 1", "header must name the columns", "img_a, img_b, same"]),
        ("img_a,img_b\nimg/0.png,img/1.png\n", ["line 1", "missing: same"]),
        ("img_a,img_b,same\nimg/0.png,img/1.png,1\nimg/0.png,img/1.png,maybe\n", ["line 3", "'maybe'"]),
        ("img_a,img_b,same\nimg/0.png,img/1.png\n", ["line 2", "2 fields"]),
        ("img_a,img_b,same\nimg/0.png,,1\n", ["line 2", "empty image path"]),
        ("img_a,img_b,same\n\n", ["no pairs after the header"]),
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path, text, fragments):
    root = tmp_path / "data"
    make_csv_images(root, 2)
    expect_error(write(tmp_path, "list.csv", text), root, *fragments)


# --- files and missing images --------------------------------------------------------------------------------
def test_unreadable_pair_files(tmp_path):
    expect_error(tmp_path / "nope.txt", tmp_path, "not found")
    expect_error(write(tmp_path, "empty.txt", "\n\n"), tmp_path, "empty pair list")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    expect_error(binary, tmp_path, "binary file")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"img_a,img_b,same\nJos\xe9.png,b.png,1\n")
    expect_error(latin, tmp_path, "line 2", "UTF-8")


def test_missing_images_are_listed_or_counted(tmp_path):
    root = tmp_path / "data"
    make_csv_images(root, 1)
    rows = [f"img/0.png,img/missing{i}.png,1" for i in range(8)]
    path = write(tmp_path, "list.csv", "img_a,img_b,same\n" + "\n".join(rows) + "\n")
    msg = expect_error(path, root, "8 of 9 images are missing", "missing0.png", "missing4.png", "and 3 more")
    assert "missing5.png" not in msg
    counted = read_pairs(path, root, missing="count")
    assert len(counted) == 8 and len(counted.missing) == 8
    assert counted.missing[0] == root / "img" / "missing0.png"
    ignored = read_pairs(path, root, missing="ignore")
    assert len(ignored) == 8 and ignored.missing == []
    with pytest.raises(ValueError):
        read_pairs(path, root, missing="skip")


# --- the bundled sample case ---------------------------------------------------------------------------------
def test_sample_case_matches_its_pair_list_and_attribution(samples_dir):
    import json
    import re

    from xfr_desktop.core.imageio import image_sha256

    case = json.loads((samples_dir / "case.json").read_text(encoding="utf-8"))
    assert case["case_number"] and case["title"] and "examiner" in case
    listed = read_pairs(samples_dir / "pairs.csv", samples_dir)  # raises if an image is missing
    assert len(case["pairs"]) == len(listed) == 4
    assert sorted(p["expected"] for p in case["pairs"]) == ["different", "different", "same", "same"]
    for entry, pair in zip(case["pairs"], listed):
        assert samples_dir / entry["image_a"] == pair.path_a and samples_dir / entry["image_b"] == pair.path_b
        assert (entry["expected"] == "same") == pair.same
    attribution = (samples_dir / "ATTRIBUTION.md").read_text(encoding="utf-8")
    recorded = dict((name, sha) for sha, name in re.findall(r"^([0-9a-f]{64})  (\S+\.jpg)$", attribution, re.M))
    assert len(recorded) == 8
    for image in listed.images:
        assert recorded[image.name] == image_sha256(image), image.name
