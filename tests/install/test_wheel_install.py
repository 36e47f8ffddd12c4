"""The self-contained wheel: `pip install xfr_desktop-*.whl` alone gives a working `xfr` with its model, detector,
fonts and samples. (Apart from test_wheelhouse_install.py so that the two slow install tests run side by side in
the suite's two workers.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.install.test_wheelhouse_install import BUNDLED_MODEL, builder, run


def test_the_wheel_alone_installs_a_working_xfr_with_its_model_detector_fonts_and_samples(tmp_path):
    """`pip install xfr_desktop-*.whl` into a fresh venv: `xfr explain` with the default model on the installed
    sample case, `python -m xfr_desktop`, `xfr-desktop`, all with the checkout out of reach (cwd elsewhere, no
    PYTHONPATH, no editable install). The dependencies (torch etc.) come from this environment's site-packages
    through a path file, so nothing is downloaded or copied."""
    import sysconfig

    if not BUNDLED_MODEL.is_file():
        pytest.skip(f"the default model {BUNDLED_MODEL} is not in this checkout")
    wheel = builder.build_project_wheel(tmp_path / "wheels", build_isolation=False, bundle_data=True)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    assert run([base_python, "-m", "venv", "--without-pip", str(venv)], timeout=120).returncode == 0
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    timeout=60).stdout.strip())
    # a plain path line: this environment's .pth files (the checkout's editable install) are not processed
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                   str(wheel)], timeout=300, env={"PIP_CONFIG_FILE": os.devnull})
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]

    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XFR_MODELS_DIR", "XFR_FONTS_DIR")}
    env.update(OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen", XFR_DATA_DIR=str(tmp_path / "data"))

    def installed(*cmd, timeout=300):
        return subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=away)

    where = installed(python, "-c", "import json, xfr_desktop.paths as p, xfr_desktop.core.model as m, "
                      "xfr_desktop.core.alignment as a, xfr_desktop.report.pdfa as f; print(json.dumps("
                      "[p.PACKAGE_DIR, p.REPO_ROOT, m.default_model_path(), a.default_detector_path(), f.fonts_dir()], "
                      "default=str))")
    assert where.returncode == 0, where.stderr[-2000:]
    package, root, model, yunet, fonts = json.loads(where.stdout)
    assert package.startswith(str(site)) and root == str(Path(package) / "bundled")
    for path in (model, yunet, fonts):
        assert path.startswith(root), path  # from the wheel, not the checkout or the system
    samples = Path(root) / "resources" / "samples"
    pair = json.loads((samples / "case.json").read_text())["pairs"][0]
    explain = installed(venv / "bin" / "xfr", "explain", samples / pair["image_a"], samples / pair["image_b"],
                        "--out", tmp_path / "explained", "--device", "cpu", "--no-trust-check")
    assert explain.returncode == 0, explain.stderr[-3000:]
    result = json.loads((tmp_path / "explained" / "result.json").read_text())
    assert result["decision"] in ("match", "non-match") and result["model_sha256"] == builder.sha256_file(
        BUNDLED_MODEL) and result["model"]["path"].startswith(root)
    assert installed(python, "-m", "xfr_desktop", "--help", timeout=120).stdout.startswith("usage: xfr")
    gui = installed(venv / "bin" / "xfr-desktop", "--version", timeout=120)
    assert gui.returncode == 0 and "0.1" in gui.stdout + gui.stderr
