"""Pair lists for verification: LFW ``pairs.txt`` and CSV ``img_a,img_b,same``.

LFW format (View 2): a first line ``<folds> <n>`` (or a single ``<n>`` for one fold, as in pairsDevTrain.txt), then
per fold ``n`` matched lines ``name i j`` followed by ``n`` mismatched lines ``name1 i name2 j`` (tab or space
separated); image ``i`` of ``name`` is ``root/name/name_%04d.jpg``.

CSV format: a header naming the columns ``img_a``, ``img_b`` and ``same`` (any order, other columns ignored), paths
relative to ``root`` (absolute paths are kept), ``same`` as 1/0, yes/no, true/false or y/n. CSV lists are split
into ``n_folds`` seeded folds, stratified so every fold holds its share of matched and mismatched pairs.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import PairListError

TRUE_WORDS = {"1", "yes", "y", "true", "t", "same"}
FALSE_WORDS = {"0", "no", "n", "false", "f", "different"}
CSV_COLUMNS = ("img_a", "img_b", "same")
MISSING_SHOWN = 5


@dataclass(frozen=True)
class Pair:
    path_a: Path
    path_b: Path
    same: bool
    fold: int
    line: int = 0  # line number in the pair list (1-based), for messages


class PairList(list):
    """A list of Pair with where it came from and which image files are missing (see ``missing=``)."""

    def __init__(self, pairs=(), *, source: str = "", fmt: str = "", n_folds: int = 0, missing=()):
        super().__init__(pairs)
        self.source = source
        self.format = fmt          # "lfw" or "csv"
        self.n_folds = n_folds
        self.missing: list[Path] = list(missing)  # distinct missing image files, in list order
        self.warnings: list[str] = []             # duplicate or contradictory pairs (see pair_warnings)

    @property
    def images(self) -> list[Path]:
        """Distinct image paths, in order of first appearance."""
        return list(dict.fromkeys(p for pair in self for p in (pair.path_a, pair.path_b)))


def parse_same(value: str) -> bool | None:
    """1/0, yes/no, true/false, y/n (any case) -> bool; anything else -> None."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def read_pairs(
    path: str | os.PathLike,
    root: str | os.PathLike,
    missing: str = "error",
    n_folds: int = 10,
    seed: int = 0,
) -> PairList:
    """Read an LFW pairs.txt or a CSV pair list (detected by content).

    ``missing``: ``"error"`` raises PairListError listing the first missing image files; ``"count"`` keeps all
    pairs and records the missing files in ``result.missing``; ``"ignore"`` does not look at the files.
    ``n_folds`` and ``seed`` apply to CSV lists only (LFW lists carry their own folds).
    """
    if missing not in ("error", "count", "ignore"):
        raise ValueError(f"missing must be 'error', 'count' or 'ignore', got {missing!r}")
    if n_folds < 1:
        raise PairListError(f"the number of folds must be at least 1, got {n_folds}")
    path = Path(path)
    root = Path(root)
    text = _read_text(path)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise PairListError(f"{path}: empty pair list")
    if all(tok.isdigit() for tok in first.split()) and len(first.split()) in (1, 2):
        pairs = _parse_lfw(lines, path, root)
        result = PairList(pairs, source=str(path), fmt="lfw", n_folds=max(p.fold for p in pairs) + 1)
    elif "," in first:
        pairs = _parse_csv(text, path, root, n_folds, seed)
        result = PairList(pairs, source=str(path), fmt="csv", n_folds=min(n_folds, len(pairs)))
    else:
        raise PairListError(
            f"{path}: line 1: not a pair list (expected an LFW header such as '10 300' or a CSV header "
            f"'img_a,img_b,same')"
        )
    result.warnings = pair_warnings(result)
    if missing != "ignore":
        result.missing = find_missing(result)
        if result.missing and missing == "error":
            raise PairListError(missing_message(result))
    return result


def pair_warnings(pairs: PairList) -> list[str]:
    """One line per pair listed more than once (it counts twice in every metric) and per pair listed both as
    matched and mismatched (one of the two labels is wrong), naming the lines."""
    seen: dict[frozenset, list[Pair]] = {}
    for pair in pairs:
        seen.setdefault(frozenset((pair.path_a, pair.path_b)), []).append(pair)
    warnings = []
    for group in (g for g in seen.values() if len(g) > 1):
        lines = ", ".join(str(p.line) for p in group)
        what = "both as matched and as mismatched" if len({p.same for p in group}) > 1 else f"{len(group)} times"
        warnings.append(f"{pairs.source}: {group[0].path_a.name} / {group[0].path_b.name} is listed {what} "
                        f"(lines {lines})")
    return warnings


def find_missing(pairs: list[Pair]) -> list[Path]:
    """Distinct image files named by the pairs that are not files on disk."""
    seen: dict[Path, None] = {}
    for pair in pairs:
        for p in (pair.path_a, pair.path_b):
            if p not in seen and not p.is_file():
                seen[p] = None
    return list(seen)


def missing_message(pairs: PairList) -> str:
    n_images = len(pairs.images)
    shown = ", ".join(str(p) for p in pairs.missing[:MISSING_SHOWN])
    more = f" and {len(pairs.missing) - MISSING_SHOWN} more" if len(pairs.missing) > MISSING_SHOWN else ""
    return (f"{pairs.source}: {len(pairs.missing)} of {n_images} images are missing: {shown}{more}"
            " (check --root)")


# --- internals ---------------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    if not path.exists():
        raise PairListError(f"{path}: pair list not found")
    if not path.is_file():
        raise PairListError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PairListError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if b"\0" in raw[:4096]:
        raise PairListError(f"{path}: binary file, not a text pair list")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PairListError(f"{path}: line {line}: not valid UTF-8 text") from None


def _lfw_image(root: Path, name: str, number: str, path: Path, lineno: int) -> Path:
    if not number.isdigit() or int(number) < 1:
        raise PairListError(f"{path}: line {lineno}: image number {number!r} is not a positive integer")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise PairListError(f"{path}: line {lineno}: {name!r} is not a person name")
    return root / name / f"{name}_{int(number):04d}.jpg"


def _parse_lfw(lines: list[str], path: Path, root: Path) -> list[Pair]:
    numbered = [(i + 1, line.split()) for i, line in enumerate(lines) if line.strip()]
    (header_line, header), body = numbered[0], numbered[1:]
    if len(header) == 2:
        folds, per_fold = int(header[0]), int(header[1])
    else:
        folds, per_fold = 1, int(header[0])
    if folds < 1 or per_fold < 1:
        raise PairListError(f"{path}: line {header_line}: header {' '.join(header)!r} needs positive numbers")
    block = 2 * per_fold  # matched then mismatched lines of one fold
    pairs: list[Pair] = []
    for index, (lineno, fields) in enumerate(body):
        fold, within = divmod(index, block)
        if fold >= folds:
            raise PairListError(
                f"{path}: line {lineno}: more pairs than the header promises ({folds} folds of {per_fold}"
                f" matched + {per_fold} mismatched)"
            )
        expect_same = within < per_fold
        if expect_same and len(fields) == 3:
            name, i, j = fields
            a = _lfw_image(root, name, i, path, lineno)
            b = _lfw_image(root, name, j, path, lineno)
        elif not expect_same and len(fields) == 4:
            name1, i, name2, j = fields
            a = _lfw_image(root, name1, i, path, lineno)
            b = _lfw_image(root, name2, j, path, lineno)
        else:
            kind = "matched ('name i j')" if expect_same else "mismatched ('name1 i name2 j')"
            raise PairListError(
                f"{path}: line {lineno}: expected a {kind} pair here (fold {fold + 1}), got {len(fields)} fields"
            )
        pairs.append(Pair(a, b, expect_same, fold, lineno))
    expected = folds * block
    if len(pairs) != expected:
        raise PairListError(
            f"{path}: {len(pairs)} pairs but the header promises {expected} ({folds} folds of {per_fold} matched"
            f" + {per_fold} mismatched)"
        )
    return pairs


def _parse_csv(text: str, path: Path, root: Path, n_folds: int, seed: int) -> list[Pair]:
    reader = csv.reader(io.StringIO(text))
    header = None
    rows: list[tuple[int, Path, Path, bool]] = []
    try:
        for fields in reader:
            lineno = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip().lower() for f in fields]
                absent = [c for c in CSV_COLUMNS if c not in header]
                if absent:
                    raise PairListError(
                        f"{path}: line {lineno}: CSV header must name the columns img_a,img_b,same"
                        f" (missing: {', '.join(absent)})"
                    )
                cols = [header.index(c) for c in CSV_COLUMNS]
                continue
            if len(fields) < len(header):
                raise PairListError(
                    f"{path}: line {lineno}: {len(fields)} fields, the header has {len(header)}"
                )
            img_a, img_b, same_text = (fields[c].strip() for c in cols)
            if not img_a or not img_b:
                raise PairListError(f"{path}: line {lineno}: empty image path")
            same = parse_same(same_text)
            if same is None:
                raise PairListError(
                    f"{path}: line {lineno}: same must be 1/0, yes/no or true/false, got {same_text!r}"
                )
            rows.append((lineno, root / img_a, root / img_b, same))
    except csv.Error as exc:
        raise PairListError(f"{path}: line {reader.line_num}: {exc}") from None
    if not rows:
        raise PairListError(f"{path}: no pairs after the header")
    folds = _stratified_folds([r[3] for r in rows], n_folds, seed)
    return [Pair(a, b, same, int(fold), lineno) for (lineno, a, b, same), fold in zip(rows, folds)]


def _stratified_folds(labels: list[bool], n_folds: int, seed: int) -> np.ndarray:
    """Seeded fold numbers; matched and mismatched pairs are each dealt round-robin over the folds."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels, dtype=bool)
    folds = np.zeros(len(labels_arr), dtype=np.int64)
    start = 0
    for value in (True, False):
        idx = np.flatnonzero(labels_arr == value)
        idx = idx[rng.permutation(len(idx))]
        folds[idx] = (np.arange(len(idx)) + start) % n_folds
        start += len(idx)  # continue the deal where the other class stopped, so small lists fill all folds
    return folds
