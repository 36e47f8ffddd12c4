"""The offline bundle: build it from files on this machine only, install it with `pip --no-index` into a fresh
virtual environment, run `xfr explain` on the sample case from there; a tampered bundle is refused before anything
is installed.

The slow test builds the real bundle (`packaging/build_offline_bundle.py`) from this machine's local wheel sources
(pip's configured find-links folders and file:// indexes: the CPU torch wheel is on disk) plus wheels rebuilt from
this environment's pure-Python packages, and skips with the reason when a needed wheel cannot be had offline. Where
`unshare -n` works (root on Linux), the build, the install and the run happen in a network namespace with no
network at all. The explain runs skip the per-pair trust check (``--no-trust-check``): what is under test is the
installed copy, and test_explain_cli checks the trust check.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.conftest import REPO_ROOT as REPO
SAMPLES = REPO / "resources" / "samples"
BUNDLED_MODEL = REPO / "models" / "xfr-dlib-affine-joint.pt"


def load_builder():
    path = REPO / "packaging" / "build_offline_bundle.py"
    spec = importlib.util.spec_from_file_location("build_offline_bundle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()


def no_network_prefix() -> list[str]:
    """`unshare -n` when it works here (a namespace with no network), else nothing."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return ["unshare", "-n"] if probe.returncode == 0 else []


def local_wheel_sources() -> tuple[list[str], list[str]]:
    """(file:// index URLs, find-links folders) from pip's configuration that exist on this machine."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    indexes, folders = [], []
    for line in proc.stdout.splitlines():
        match = re.match(r"^[^.]*\.([a-z-]+)='(.*)'$", line.strip())
        if not match:
            continue
        key, value = match.groups()
        for item in value.split():
            path = Path(unquote(urlparse(item).path)) if item.startswith("file:") else Path(item)
            if key in ("index-url", "extra-index-url") and item.startswith("file:") and path.is_dir():
                indexes.append(item) if item not in indexes else None
            elif key == "find-links" and path.is_dir() and str(path) not in folders:
                folders.append(str(path))
    return indexes, folders


def local_torch_wheel(indexes: list[str], folders: list[str]) -> bool:
    version = builder.installed_torch_version()
    pattern = re.compile(rf"torch-{re.escape(version)}\+cpu-cp{sys.version_info.major}{sys.version_info.minor}-")
    for folder in folders:
        if any(pattern.match(p.name) for p in Path(folder).glob("torch-*.whl")):
            return True
    for url in indexes:
        page = Path(unquote(urlparse(url).path)) / "torch" / "index.html"
        if page.is_file() and pattern.search(page.read_text(errors="replace")):
            return True
    return False


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               QT_QPA_PLATFORM="offscreen", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)          # the installed bundle must work on its own, not from this checkout
    env.update(kwargs.pop("env", {}))
    env.pop("PYTHONPATH", None)  # the installed copy must not see a checkout put on the path by whoever runs pytest
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


@pytest.mark.slow
def test_bundle_builds_offline_installs_with_no_index_and_explains(tiny_model, tmp_path):
    from xfr_desktop.core.model import save_model

    indexes, folders = local_wheel_sources()
    if not local_torch_wheel(indexes, folders):
        pytest.skip(f"no CPU torch {builder.installed_torch_version()} wheel for this Python on this machine's disk "
                    f"(looked in pip's find-links {folders} and file:// indexes {indexes})")
    offline = no_network_prefix()

    # 1. build: only local files (pip's own configuration is switched off, so no remote index is consulted)
    cmd = offline + [sys.executable, str(REPO / "packaging" / "build_offline_bundle.py"),
                     "--out", str(tmp_path / "dist"), "--allow-missing-model", "--repack-installed"]
    for url in indexes:
        cmd += ["--index-url", url]
    for folder in folders:
        cmd += ["--find-links", folder]
    if not indexes:
        cmd.append("--no-index")
    build_started = time.time()
    build = run(cmd, timeout=900, env={"PIP_CONFIG_FILE": os.devnull})
    missing = re.search(r"No matching distribution found for (\S+)", build.stdout + build.stderr)
    if build.returncode != 0 and missing:
        pytest.skip(f"a needed wheel cannot be had offline here: {missing.group(1)}")
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (bundle,) = [p for p in (tmp_path / "dist").iterdir() if p.is_dir()]
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["torch"]["variant"] == "cpu" and meta["torch"]["wheels"][0].startswith("torch-")
    assert "+cpu" in meta["torch"]["wheels"][0]
    wheels = sorted(p.name for p in (bundle / "wheelhouse").iterdir())
    assert all(name.endswith(".whl") for name in wheels)
    assert any(name.startswith("xfr_desktop-") for name in wheels)
    assert (bundle / "models" / "face_detection_yunet.onnx").is_file()
    if BUNDLED_MODEL.is_file() and BUNDLED_MODEL.stat().st_mtime < build_started:
        assert (bundle / "models" / BUNDLED_MODEL.name).is_file()
    assert (bundle / "resources" / "samples" / "case.json").is_file()
    manifest = (bundle / "SHA256SUMS").read_text().splitlines()
    assert len(manifest) == sum(1 for p in bundle.rglob("*") if p.is_file()) - 1

    # 2. install into a fresh virtual environment, from the wheelhouse only
    prefix = tmp_path / "installed"
    base_python = getattr(sys, "_base_executable", sys.executable)
    # PIP_NO_COMPILE: byte-compiling torch's thousands of modules took a third of the install; not under test
    install = run(offline + ["bash", str(bundle / "install.sh"), "--prefix", str(prefix), "--python", base_python,
                             "--bin-dir", str(tmp_path / "bin"), "--apps-dir", str(tmp_path / "apps"),
                             "--icons-dir", str(tmp_path / "icons")], timeout=1200,
                  env={"PIP_CONFIG_FILE": os.devnull, "PIP_NO_COMPILE": "1"})
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert "checksums OK" in install.stdout
    venv = prefix / "current" / "venv"
    assert (venv / "pyvenv.cfg").is_file()
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    assert os.path.realpath(tmp_path / "bin" / "xfr") == os.path.realpath(venv / "bin" / "xfr")
    entry = (tmp_path / "apps" / "xfr-desktop.desktop").read_text()
    exec_path = re.search(r'^Exec="([^"]+)"$', entry, re.M).group(1)
    assert os.access(exec_path, os.X_OK) and exec_path.startswith(str(prefix / "current"))
    assert (tmp_path / "icons" / "scalable" / "apps" / "xfr-desktop.svg").is_file()
    if shutil.which("desktop-file-validate"):
        check = run(["desktop-file-validate", str(tmp_path / "apps" / "xfr-desktop.desktop")], timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr

    # 3. `xfr explain` on the sample case, from the installed copy (not this checkout), with no network
    model_file = tmp_path / "tiny.pt"
    save_model(tiny_model, model_file)
    case = json.loads((SAMPLES / "case.json").read_text())
    pair = case["pairs"][0]
    out = tmp_path / "explained"
    explain = run(offline + [str(venv / "bin" / "xfr"), "explain", str(SAMPLES / pair["image_a"]),
                             str(SAMPLES / pair["image_b"]), "--model", str(model_file), "--out", str(out),
                             "--device", "cpu", "--no-trust-check"], timeout=300, cwd=tmp_path)
    assert explain.returncode == 0, explain.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["decision"] in ("match", "non-match")
    where = run([str(venv / "bin" / "python"), "-c", "import xfr_desktop; print(xfr_desktop.__file__)"], timeout=60,
                cwd=tmp_path)
    assert where.stdout.strip().startswith(str(prefix)), where.stdout  # the installed package, not the checkout
    if (bundle / "models" / BUNDLED_MODEL.name).is_file():  # the default model comes from the bundle's models/
        default = run(offline + [str(venv / "bin" / "xfr"), "explain", str(SAMPLES / pair["image_a"]),
                                 str(SAMPLES / pair["image_b"]), "--out", str(tmp_path / "default"), "--device",
                                 "cpu", "--no-trust-check"], timeout=300, cwd=tmp_path)
        assert default.returncode == 0, default.stderr[-3000:]
    # about 2 GB: pytest keeps the last runs' temporary folders, so free them once the test has passed
    shutil.rmtree(prefix, ignore_errors=True)
    shutil.rmtree(tmp_path / "dist", ignore_errors=True)


# --- fast checks of the installer's verification and the builder's target logic ----------------------------------
@pytest.fixture
def mini_bundle(tmp_path) -> Path:
    """A bundle's skeleton: install.sh, bundle.json, one 'wheel', a model file, and the manifest over them."""
    root = tmp_path / "bundle"
    (root / "wheelhouse").mkdir(parents=True)
    (root / "models").mkdir()
    shutil.copy2(REPO / "packaging" / "install.sh", root / "install.sh")
    (root / "wheelhouse" / "demo_pkg-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (root / "models" / "model.onnx").write_bytes(os.urandom(256))
    (root / "requirements.lock").write_text("demo-pkg==1.0 --hash=sha256:00\n")
    (root / "bundle.json").write_text(json.dumps({"format": "xfr-offline-bundle", "version": "0.0.0",
                                                  "platform": "linux-x86_64", "python": "3.11"}, indent=2))
    assert builder.write_manifest(root) == 5
    return root


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["bash", str(root / "install.sh"), *args], timeout=120)


def test_install_verifies_an_intact_bundle(mini_bundle, tmp_path):
    proc = install(mini_bundle, "--verify-only", "--prefix", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    assert "checksums OK" in proc.stdout


def test_install_refuses_an_altered_file_before_installing(mini_bundle, tmp_path):
    wheel = mini_bundle / "wheelhouse" / "demo_pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"x")
    prefix = tmp_path / "p"
    proc = install(mini_bundle, "--prefix", str(prefix), "--bin-dir", "none", "--no-desktop-entry")
    assert proc.returncode != 0
    assert "checksum verification FAILED" in proc.stderr and "demo_pkg-1.0" in proc.stderr
    assert not (prefix / "versions").exists() and not (prefix / "current").exists()


def test_install_refuses_a_file_the_manifest_does_not_list(mini_bundle, tmp_path):
    (mini_bundle / "wheelhouse" / "evil-6.6-py3-none-any.whl").write_bytes(b"PK")
    proc = install(mini_bundle, "--prefix", str(tmp_path / "p"), "--bin-dir", "none", "--no-desktop-entry")
    assert proc.returncode != 0
    assert "not in SHA256SUMS" in proc.stderr and "evil-6.6" in proc.stderr
    assert not (tmp_path / "p" / "versions").exists()


def test_install_refuses_a_missing_file(mini_bundle, tmp_path):
    (mini_bundle / "models" / "model.onnx").unlink()
    proc = install(mini_bundle, "--verify-only")
    assert proc.returncode != 0 and "checksum verification FAILED" in proc.stderr


def test_install_refuses_another_python(mini_bundle, tmp_path):
    meta = json.loads((mini_bundle / "bundle.json").read_text())
    meta["python"] = "3.99"
    (mini_bundle / "bundle.json").write_text(json.dumps(meta, indent=2))
    builder.write_manifest(mini_bundle)
    proc = install(mini_bundle, "--prefix", str(tmp_path / "p"), "--python", sys.executable)
    assert proc.returncode != 0 and "built for Python 3.99" in proc.stderr
    assert not (tmp_path / "p" / "versions").exists()


def test_builder_targets_other_platforms_with_the_right_torch_build():
    assert builder.torch_requirement("cpu", "2.13.0", "linux", "cu128") == (
        "torch==2.13.0+cpu", ["https://download.pytorch.org/whl/cpu"])
    assert builder.torch_requirement("cuda", "2.13.0", "linux", "cu128") == (
        "torch==2.13.0+cu128", ["https://download.pytorch.org/whl/cu128"])
    assert builder.torch_requirement("cuda", "2.13.0", "linux", "pypi") == ("torch==2.13.0", [])
    assert builder.torch_requirement("cpu", "2.13.0", "macos", "cu128") == ("torch==2.13.0", [])
    tags = builder.platform_tags("linux-x86_64", "2.34")
    assert tags[0] == "manylinux_2_34_x86_64" and "manylinux_2_17_x86_64" in tags and tags[-1] == "manylinux2014_x86_64"
    assert builder.platform_tags("windows-x86_64", "2.34") == ["win_amd64"]
    assert builder.wheel_name_version("PyHanko-0.38.0-py3-none-any.whl") == ("pyhanko", "0.38.0")
    assert builder.wheel_name_version("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl") == (
        "torch", "2.13.0+cpu")


def test_builder_rejects_bad_targets_with_one_line(tmp_path, capsys):
    assert builder.main(["--platform", "amiga-68k", "--out", str(tmp_path)]) == 1
    assert "unknown platform 'amiga-68k'" in capsys.readouterr().err
    assert builder.main(["--python", "3", "--out", str(tmp_path)]) == 1
    assert "MAJOR.MINOR" in capsys.readouterr().err
    assert builder.main(["--platform", "macos-arm64", "--torch", "cuda", "--out", str(tmp_path)]) == 1
    assert "no CUDA build of torch for macOS" in capsys.readouterr().err
    empty = tmp_path / "no-models"
    empty.mkdir()
    assert builder.main(["--models-dir", str(empty), "--out", str(tmp_path / "out")]) == 1
    assert "default model" in capsys.readouterr().err and not (tmp_path / "out").exists()
    empty.rmdir()
    assert not any(tmp_path.iterdir())


def test_desktop_entry_is_valid_and_its_icon_exists():
    path = REPO / "packaging" / "linux" / "xfr-desktop.desktop"
    lines = path.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    keys = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert keys["Type"] == "Application" and keys["Exec"] == "xfr-desktop" and keys["Terminal"] == "false"
    assert (REPO / "resources" / "icons" / f"{keys['Icon']}.svg").is_file()
    assert (REPO / "resources" / "icons" / f"{keys['Icon']}.png").is_file()
    if shutil.which("desktop-file-validate"):
        check = run(["desktop-file-validate", str(path)], timeout=30)
        assert check.returncode == 0 and "error" not in check.stdout, check.stdout + check.stderr
