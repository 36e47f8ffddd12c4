"""Shared test setup and fixtures (names are stable: other test files rely on them).

At import: ``QT_QPA_PLATFORM=offscreen`` (Qt tests need no display) and ``OMP_NUM_THREADS=1`` /
``MKL_NUM_THREADS=1`` unless already set (CI machines are small and tests run side by side).

Fixtures:
- ``shared_dir``  -> Path of ../shared (the read-only development data, or $XFR_SHARED_DIR); skips the test with a
  clear reason when its ``data`` folder is absent (a user's fresh clone has no ../shared).
- ``lfw_dir``     -> Path of the LFW deep-funneled images (``<Person>/<Person>_NNNN.jpg``); skips when absent.
- ``lfw_pairs_file`` -> Path of LFW ``pairs.txt``; skips when absent.
- ``yunet_path``  -> Path of the bundled YuNet detector (``models/face_detection_yunet.onnx``).
- ``samples_dir`` -> Path of ``resources/samples`` (the bundled sample case: ``case.json`` + images).
- ``tiny_model``  -> a small random :class:`JointModel` (iresnet-18 with widths 8/8/16/16, 16 channels, a 4-layer
  decoder 16->16->8->8->3; 112x112 input, ArcFace template), seeded, in eval mode, on the CPU. Fresh per test.
- ``model_file``  -> ``tiny_model`` saved as ``tmp_path / "tiny.pt"``.
- ``tiny_spec``   -> the spec dict ``tiny_model`` is built from (a fresh copy per test).
- ``demo_run``    -> one ``xfr-desktop --demo`` child process per session (it takes most of a minute on 2 cores),
  started with no display (so it must render offscreen by itself) on a saved ``tiny_model``, and traced by strace
  when strace can trace here. test_gui_app checks its window and data, test_offline its system calls.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# the longest files (measured with --durations on 2 cores) start first, so that no worker of `pytest -n 2`
# (scripts/test.sh, which keeps this order with --no-loadscope-reorder) begins one of them when the other worker
# has nothing left to do
LONGEST_FIRST = ("test_wheelhouse_install.py", "test_gui_app.py", "test_distributed_training.py",
                 "test_wheel_install.py", "test_offline.py", "test_sharded_evaluation.py",
                 "test_explanation_quality.py", "test_hostile_inputs.py",
                 "test_forged_bindings_and_hostile_files.py",
                 "test_explain_cli.py", "test_training.py", "test_clean_output.py", "test_report.py",
                 "test_examiner_reads.py")
# files that share a session fixture run in one worker, so that it runs once (demo_run: most of a minute); keyed
# by the path in the test's node id (relative to the repository root)
SAME_WORKER = {"tests/security/test_offline.py": "tests/gui/test_gui_app.py"}
SHARED_DIR = Path(os.environ.get("XFR_SHARED_DIR", REPO_ROOT.parent / "shared"))


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the SAME_WORKER files given to one worker together."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureFiles(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return SAME_WORKER.get(path, path)

    return SharedFixtureFiles(config, log)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"shared development data not found at {SHARED_DIR / 'data'} (set XFR_SHARED_DIR)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def lfw_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "lfw" / "lfw-deepfunneled"
    if not path.is_dir():
        pytest.skip(f"LFW images not found at {path}")
    return path


@pytest.fixture(scope="session")
def lfw_pairs_file(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "lfw" / "pairs.txt"
    if not path.is_file():
        pytest.skip(f"LFW pairs.txt not found at {path}")
    return path


@pytest.fixture(scope="session")
def yunet_path() -> Path:
    path = REPO_ROOT / "models" / "face_detection_yunet.onnx"
    assert path.is_file(), f"bundled face detector missing: {path}"
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return REPO_ROOT / "resources" / "samples"


def make_tiny_spec() -> dict:
    from xfr_desktop.core.decoder import paper_decoder_spec
    from xfr_desktop.core.model import default_spec

    return default_spec(
        name="tiny-test-model",
        depth=18,
        widths=[8, 8, 16, 16],
        channels=16,
        decoder=paper_decoder_spec((16, 16, 8, 8, 3)),
    )


def make_tiny_model(tiny_spec: dict):
    import torch

    from xfr_desktop.core.model import JointModel

    torch.manual_seed(0)
    model = JointModel(tiny_spec)
    # give BatchNorm non-trivial running statistics so eval-mode outputs are not degenerate
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture
def tiny_spec() -> dict:
    return make_tiny_spec()


@pytest.fixture
def tiny_model(tiny_spec: dict):
    return make_tiny_model(tiny_spec)


def strace_usable() -> str | None:
    """None when strace can trace a child here, else why not."""
    import shutil
    import subprocess

    if shutil.which("strace") is None:
        return "strace is not installed"
    probe = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "-o", os.devnull, "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    import subprocess
    import sys
    from types import SimpleNamespace

    from xfr_desktop.core.model import save_model

    model_path = tmp_path_factory.mktemp("demo") / "tiny.pt"
    save_model(make_tiny_model(make_tiny_spec()), model_path)
    root = model_path.parent
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    cmd = [sys.executable, "-m", "xfr_desktop.gui.app", "--demo", "--data-dir", str(root / "data"),
           "--model", str(model_path), "--device", "cpu"]
    why_untraced = strace_usable()
    log = None if why_untraced else root / "demo.strace"
    prefix = [] if log is None else ["strace", "-f", "-qq", "-e", "signal=none", "-e",
                                     "trace=connect,sendto,sendmsg", "-o", str(log)]
    run = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True, timeout=300, cwd=root)
    return SimpleNamespace(cmd=cmd, env=env, model=model_path, data=root / "data", returncode=run.returncode,
                           stdout=run.stdout, stderr=run.stderr, strace_log=log, why_untraced=why_untraced)


@pytest.fixture
def model_file(tmp_path, tiny_model) -> Path:
    """``tiny_model`` saved as ``tmp_path / "tiny.pt"`` (for commands that take --model)."""
    from xfr_desktop.core.model import save_model

    path = tmp_path / "tiny.pt"
    save_model(tiny_model, path)
    return path


@pytest.fixture
def umask_022():
    """The usual umask, so that file modes show what the code sets (private files, evidence folders)."""
    old = os.umask(0o022)
    yield
    os.umask(old)
