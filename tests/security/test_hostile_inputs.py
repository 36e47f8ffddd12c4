"""Issue 13, attacks 5-10 through the public commands: non-finite numbers, `--aligned` on things that are not
aligned crops, decompression bombs and hostile training files, broken pair lists, read-only and missing data
folders, weak pass-phrases."""
from __future__ import annotations

import json
import signal
import sqlite3
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core import save_model


@pytest.fixture
def crops(tmp_path, tiny_model):
    """Two plausible aligned crops of the tiny model's input size."""
    h, w = tiny_model.input_size
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def xfr(*args) -> int:
    """The CLI entry point's exit status, usage errors (argparse's SystemExit) included."""
    try:
        return xfr_main(list(args))
    except SystemExit as exc:
        return int(exc.code)


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, as every other JSON reader does."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"not JSON: {name}"))


# --- numbers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "-inf", "inf", "1e999"])
def test_non_finite_threshold_is_refused(tmp_path, model_file, crops, capsys, value):
    rc = xfr("explain", *crops, "--out", str(tmp_path / "o"), "--model", str(model_file), "--aligned",
             f"--threshold={value}")
    assert rc == 2 and "finite" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_model_with_nan_weights_is_refused(tmp_path, tiny_model, crops, capsys):
    with torch.no_grad():
        next(tiny_model.backbone.parameters()).view(-1)[0] = float("nan")
    save_model(tiny_model, tmp_path / "nan.pt")
    rc = xfr_main(["explain", *crops, "--out", str(tmp_path / "o"), "--model", str(tmp_path / "nan.pt"),
                   "--aligned"])
    err = capsys.readouterr().err
    assert rc == 2 and "non-finite weights" in err and "nan.pt" in err


def test_explain_result_json_is_strict_json_and_warns_of_faceless_crops(tmp_path, model_file, crops, capsys):
    assert xfr_main(["explain", *crops, "--out", str(tmp_path / "o"), "--model", str(model_file), "--aligned"]) == 0
    info = strict_json((tmp_path / "o" / "result.json").read_text())
    assert np.isfinite(info["score"])
    assert len(info["warnings"]) == 2 and "no face found in the crop" in info["warnings"][0]  # noise, not faces
    assert capsys.readouterr().err.count("xfr: warning:") == 2


def test_stored_nan_is_refused_and_old_ones_print_as_json(tmp_path, capsys):
    from xfr_desktop.core.errors import StoreError
    from xfr_desktop.store import open_store

    data = tmp_path / "data"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with open_store(data) as store:
        case = store.create_case("N-1")
        sha = store.import_image(tmp_path / "a.png", case.id)
        comp = store.add_comparison(case.id, sha, sha)
        with pytest.raises(StoreError, match="finite"):
            store.save_result(comp.id, {"score": float("nan"), "threshold": 0.3, "decision": False})
        store.save_result(comp.id, {"score": 0.5, "threshold": 0.3, "decision": True})
    with sqlite3.connect(data / "xfr.sqlite") as con:  # what an older version could have saved
        con.execute("UPDATE results SET score = ?", (float("inf"),))
    capsys.readouterr()
    assert xfr_main(["--data-dir", str(data), "cases", "show", "N-1", "--json"]) == 0
    shown = strict_json(capsys.readouterr().out)
    assert shown["comparisons"][0]["latest_result"]["score"] is None


# --- --aligned ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, needle", [((1, 1), "too small"), ((300, 160), "not an aligned face crop")])
def test_aligned_refuses_what_is_not_an_aligned_crop(tmp_path, model_file, crops, capsys, size, needle):
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(tmp_path / "odd.png")
    rc = xfr_main(["explain", str(tmp_path / "odd.png"), crops[1], "--out", str(tmp_path / "o"),
                   "--model", str(model_file), "--aligned"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "odd.png" in err


# --- hostile training files -----------------------------------------------------------------------------------
RSS_LIMIT_MB = 500
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking parent (here: pytest) across exec.
# Less RssFile: the pages of mapped library files (torch, OpenCV, ...) are page cache shared with every process, and
# how many of them a process shows varies by ~40-90 MB with the machine's page cache (a fresh install's libraries
# are all cached, so fault-around maps more of them); what an input makes a command allocate is anonymous memory.
_PEAK = """def _peak_kb():
    status = open("/proc/self/status").read()
    field = lambda name: int(re.search(name + r":\\s*(\\d+)", status).group(1))
    return field("VmHWM") - field("RssFile")
"""
_MEASURED = """import re, sys
from xfr_desktop.cli import main
""" + _PEAK + """try:
    rc = main(sys.argv[1:])
finally:
    print("MAXRSS_KB", _peak_kb(), file=sys.stderr)
sys.exit(rc)
"""


def measured_xfr(*args) -> tuple[int, str, float]:
    """`xfr ARGS` in a fresh process: exit status, stderr and the process's peak resident memory in MB."""
    import re
    import subprocess

    if not sys.platform.startswith("linux"):
        pytest.skip("peak memory is read from /proc")
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    peak = re.search(r"MAXRSS_KB (\d+)", proc.stderr)
    return proc.returncode, proc.stderr, int(peak.group(1)) / 1024 if peak else float("inf")


# Several commands in turn in one child (Python, torch and the CLI start once, which took most of each run). Before
# each command the peak resident memory restarts from the current one (clear_refs 5), so a command's peak counts
# everything the earlier ones left resident: at least what a fresh process would show. With a hang limit, SIGALRM
# (default action: end the process, whatever code is running) stops a command still running after that many
# seconds, counted from the command's start, not the child's.
_MEASURED_IN_TURN = """import contextlib, io, json, re, signal, sys
from xfr_desktop.cli import main
""" + _PEAK + """

hang_s = int(sys.argv[1])
for argv in json.loads(sys.argv[2]):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out, err = io.StringIO(), io.StringIO()
    signal.alarm(hang_s)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    signal.alarm(0)
    peak = _peak_kb()
    print(json.dumps({"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "peak_mb": peak / 1024}), flush=True)
"""


def measured_in_turn(commands: list[list], hang_s: int = 0) -> list[SimpleNamespace]:
    """Each `xfr ARGS` of ``commands`` in turn in one child process: rc, out, err and peak_mb (resident, MB) per
    command. A command still running after ``hang_s`` seconds (0: no limit) ends the child; it and the commands
    after it get ``rc=None`` and ``err`` saying so."""
    import json
    import subprocess

    if not sys.platform.startswith("linux"):
        pytest.skip("peak memory is read from /proc")
    argvs = [[str(a) for a in c] for c in commands]
    proc = subprocess.run([sys.executable, "-c", _MEASURED_IN_TURN, str(hang_s), json.dumps(argvs)],
                          capture_output=True, text=True, timeout=120 + (hang_s or 600) * len(argvs),
                          stdin=subprocess.DEVNULL)
    done = [SimpleNamespace(**json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("{")]
    for k, argv in enumerate(argvs[len(done):]):
        why = (f"xfr {' '.join(argv)} hung (over {hang_s} s)" if k == 0 and proc.returncode == -signal.SIGALRM
               else f"not run: the child ended with {proc.returncode} before it: {proc.stderr[-2000:]}")
        done.append(SimpleNamespace(rc=None, out="", err=why, peak_mb=float("inf")))
    return done


def png_bomb(side: int = 20000) -> bytes:
    """A valid all-black greyscale PNG of side x side pixels (400 MP), about 400 KB on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer, row = zlib.compressobj(9), b"\0" * (side + 1)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb()


def small_png(seed: int, size: int = 32) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write_rec(folder, records: list[tuple[float, bytes]], header_count: float | None = None):
    """insightface RecordIO: optional header record 0 (its first label: image records + 1), then the images."""
    import struct

    magic = 0xCED7230A
    folder.mkdir(parents=True, exist_ok=True)
    offsets, n = {}, len(records)
    with open(folder / "train.rec", "wb") as f:
        payloads = [(k, struct.pack("<IfQQ", 0, label, k, 0) + image) for k, (label, image) in enumerate(records, 1)]
        if header_count is not None:
            head = struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<ff", header_count, header_count + n)
            payloads.insert(0, (0, head))
        for key, payload in payloads:
            offsets[key] = f.tell()
            f.write(struct.pack("<II", magic, len(payload)) + payload + b"\0" * ((4 - len(payload) % 4) % 4))
    (folder / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in offsets.items()))
    return folder


LABEL_ATTACKS = [
    ([0.0, 1e9], None, "identity label 1e+09"),
    ([0.0, 1.0], 3e38, "claims 3e+38 image records"),
    ([0.0, float("nan")], None, "identity label nan"),
    ([0.0, 1e30], None, "identity label 1e+30"),
    ([0.0, -1.0], None, "identity label -1"),
]


@pytest.fixture(scope="module")
def hostile_training_runs(tmp_path_factory, bomb) -> dict:
    """`xfr train` on each hostile training file below, in one child process (measured_in_turn): the result of
    each by name (the label attacks by their needle)."""
    import pickle

    from tests.conftest import make_tiny_model, make_tiny_spec

    root = tmp_path_factory.mktemp("hostile-train")
    model_file = root / "tiny.pt"
    save_model(make_tiny_model(make_tiny_spec()), model_file)
    data = {needle: write_rec(root / f"labels{k}", [(lab, small_png(i)) for i, lab in enumerate(labels)], header)
            for k, (labels, header, needle) in enumerate(LABEL_ATTACKS)}
    data["recordio bomb"] = write_rec(root / "bomb", [(0.0, small_png(0)), (1.0, bomb), (0.0, small_png(1)),
                                                      (1.0, small_png(2))])
    data["bin bomb"] = write_rec(root / "clean", [(i % 2, small_png(i)) for i in range(4)])
    (root / "lfw.bin").write_bytes(pickle.dumps(([small_png(0), bomb], [True]), protocol=2))
    commands = [["train", "--data", folder, "--out", root / f"run{k}", "--base", model_file, "--mode", "decoder",
                 "--max-steps", 1, "--batch-size", 2, "--aligned", "yes", "-q"]
                + (["--val", root / "lfw.bin"] if name == "bin bomb" else [])
                for k, (name, folder) in enumerate(data.items())]
    return dict(zip(data, measured_in_turn(commands)))


@pytest.mark.parametrize("labels, header, needle", LABEL_ATTACKS)
def test_hostile_recordio_labels_are_refused_in_bounded_memory(hostile_training_runs, labels, header, needle):
    run = hostile_training_runs[needle]
    assert run.rc == 2 and needle in run.err and "train.rec" in run.err and "Traceback" not in run.err, run.err
    assert run.peak_mb < RSS_LIMIT_MB


def test_decompression_bomb_in_a_recordio_is_refused_in_bounded_memory(hostile_training_runs):
    run = hostile_training_runs["recordio bomb"]
    assert run.rc == 2 and "record 2" in run.err and "above the limit" in run.err and "Traceback" not in run.err, \
        run.err
    assert run.peak_mb < RSS_LIMIT_MB


def test_decompression_bomb_in_a_bin_validation_set_is_refused_in_bounded_memory(hostile_training_runs):
    run = hostile_training_runs["bin bomb"]
    assert run.rc == 2 and "lfw.bin image 1" in run.err and "above the limit" in run.err, run.err
    assert "Traceback" not in run.err and run.peak_mb < RSS_LIMIT_MB


def test_store_import_of_a_decompression_bomb_is_one_line(tmp_path, bomb):
    from xfr_desktop.core.errors import ImageError
    from xfr_desktop.store import open_store

    (tmp_path / "huge.png").write_bytes(bomb)
    with open_store(tmp_path / "data") as store:
        with pytest.raises(ImageError, match=r"huge.png: image is 20000x20000 .* above the limit") as info:
            store.import_image(tmp_path / "huge.png")
        assert "\n" not in str(info.value)
        assert not store.list_audit()


# --- pair lists -----------------------------------------------------------------------------------------------
def write_pair_case(tmp_path, rows: list[str], size: int = 112) -> tuple:
    """Aligned noise crops 0.png .. 5.png and a CSV pair list of `rows`."""
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "pairs.csv").write_text("img_a,img_b,same\n" + "\n".join(rows) + "\n")
    return tmp_path / "pairs.csv"


def evaluate(tmp_path, model_file, pairs, *extra) -> tuple[int, dict | None]:
    out = tmp_path / "out"
    rc = xfr("evaluate", "verify", "--pairs", str(pairs), "--root", str(tmp_path), "--model", str(model_file),
             "--out", str(out), "-q", *extra)
    result = out / "verify.json"
    return rc, strict_json(result.read_text()) if result.is_file() else None


def test_pair_list_with_one_pair_gives_undefined_metrics_not_a_traceback(tmp_path, model_file, capsys):
    pairs = write_pair_case(tmp_path, ["0.png,1.png,1"])
    rc, result = evaluate(tmp_path, model_file, pairs, "--aligned")
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err
    assert result["accuracy_mean"] is None and result["eer"] is None and result["tar_at_far_1e-3"] is None
    assert any("at least 2 folds" in w for w in result["warnings"]) and "no mismatched pairs" in err


def test_zero_folds_is_a_one_line_error(tmp_path, model_file, capsys):
    pairs = write_pair_case(tmp_path, ["0.png,1.png,1", "2.png,3.png,0"])
    rc, _ = evaluate(tmp_path, model_file, pairs, "--aligned", "--folds", "0")
    err = capsys.readouterr().err
    assert rc == 2 and "at least 1" in err and "Traceback" not in err


def test_list_without_mismatched_pairs_reports_undefined_rates(tmp_path, model_file, capsys):
    pairs = write_pair_case(tmp_path, ["0.png,1.png,1", "2.png,3.png,1", "4.png,5.png,1", "1.png,2.png,1"])
    rc, result = evaluate(tmp_path, model_file, pairs, "--aligned", "--folds", "2")
    assert rc == 0 and result["tar_at_far_1e-3"] is None and result["eer"] is None
    assert "TAR@FAR1e-3 undefined" in capsys.readouterr().out


def test_duplicate_and_contradictory_pairs_are_warned(tmp_path, model_file, capsys):
    pairs = write_pair_case(tmp_path, ["0.png,1.png,1", "2.png,3.png,0", "1.png,0.png,0", "2.png,3.png,0",
                                       "4.png,5.png,1", "0.png,5.png,0"])
    rc, result = evaluate(tmp_path, model_file, pairs, "--aligned", "--folds", "2")
    err = capsys.readouterr().err
    assert rc == 0
    assert any("0.png / 1.png is listed both as matched and as mismatched (lines 2, 4)" in w
               for w in result["warnings"])
    assert any("2.png / 3.png is listed 2 times (lines 3, 5)" in w for w in result["warnings"])
    assert err.count("xfr: warning:") == 2


def test_unreadable_images_are_counted_apart_from_faceless_ones(tmp_path, model_file, capsys):
    pairs = write_pair_case(tmp_path, ["0.png,1.png,1", "broken.jpg,2.png,0"])
    (tmp_path / "broken.jpg").write_text("this is not a photo")
    rc, result = evaluate(tmp_path, model_file, pairs)
    assert rc == 2 and "no pair could be scored" in capsys.readouterr().err  # and verify.json says why
    assert result["n_unreadable"] == 1 and list(result["unreadable_images"]) == [str(tmp_path / "broken.jpg")]
    assert result["n_no_face"] == 3 and str(tmp_path / "broken.jpg") not in result["no_face_images"]


# --- data folders ---------------------------------------------------------------------------------------------
def test_reading_commands_never_create_a_database(tmp_path, capsys):
    nowhere = tmp_path / "typo"
    for command in (["cases", "show", "1"], ["audit", "verify"], ["audit", "list"],
                    ["report", "--case", "1", "--out", str(tmp_path / "r.pdf")]):
        assert xfr("--data-dir", str(nowhere), *command) == 2
        assert "no case database" in capsys.readouterr().err
    assert xfr("--data-dir", str(nowhere), "cases", "list") == 0  # nothing to list is no error
    assert "no case database" in capsys.readouterr().out
    assert not nowhere.exists()


def test_read_only_data_folder_can_still_be_read(tmp_path, tiny_model, monkeypatch, capsys):
    """A folder the user cannot write (simulated: the tests may run as root, who can write anything)."""
    import os

    from tests.report.test_report import analysed_case

    from xfr_desktop.store import open_store

    data = tmp_path / "data"
    with open_store(data) as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode & os.W_OK and str(p).startswith(
        str(data)) else real_access(p, mode, **kw))
    assert xfr("--data-dir", str(data), "cases", "list") == 0
    assert xfr("--data-dir", str(data), "cases", "show", case.number) == 0
    assert xfr("--data-dir", str(data), "audit", "verify") == 0
    assert xfr("--data-dir", str(data), "report", "--case", case.number, "--out", str(tmp_path / "r.pdf")) == 0
    assert "not recorded in its audit trail" in capsys.readouterr().err
    assert (tmp_path / "r.pdf").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir()} == before  # nothing written, nothing created


def test_disk_full_names_the_file(tmp_path, model_file, crops, monkeypatch, capsys):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    assert xfr("explain", *crops, "--out", str(tmp_path / "o"), "--model", str(model_file), "--aligned") == 2
    err = capsys.readouterr().err
    assert f"No space left on device: {tmp_path / 'o' / 'maps.npz'}" in err and "()" not in err


# --- model specs and key pass-phrases ---------------------------------------------------------------------------
def test_oversized_model_spec_is_refused_before_allocation(tmp_path, model_file):
    payload = torch.load(model_file, map_location="cpu", weights_only=True)
    spec = json.loads(payload["spec_json"])
    spec["decoder"]["layers"][0]["in"] = spec["decoder"]["layers"][0]["out"] = 4096
    spec["decoder"]["layers"][1]["in"] = 4096
    torch.save({**payload, "spec_json": json.dumps(spec)}, tmp_path / "huge.pt")
    rc, err, peak_mb = measured_xfr("models", "info", tmp_path / "huge.pt")
    assert rc == 2 and "huge.pt" in err and "stores" in err and "Traceback" not in err, err
    assert peak_mb < RSS_LIMIT_MB


def test_short_key_passphrase_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XFR_PW", "abc")
    assert xfr("keys", "create", "--name", "Jane", "--out", str(tmp_path / "k.p12"), "--passphrase-env",
               "XFR_PW") == 2
    assert "too short" in capsys.readouterr().err and not (tmp_path / "k.p12").exists()
