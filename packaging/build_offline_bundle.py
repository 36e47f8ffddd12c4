#!/usr/bin/env python3
"""Build an offline installation bundle of XFR Desktop for an air-gapped workstation.

    python packaging/build_offline_bundle.py --platform linux-x86_64 --python 3.11 --torch cpu --out dist/
    python packaging/build_offline_bundle.py --platform linux-x86_64 --python 3.11 --torch cuda --cuda-tag cu128
    python packaging/build_offline_bundle.py --platform windows-x86_64 --python 3.11 --archive zip

Run it on a machine that can reach the package indexes (pip's own configuration is used: proxies, mirrors,
find-links), or fully offline with ``--no-index --find-links DIR`` over local wheel folders. The bundle holds:

    wheelhouse/          the project's wheel and a wheel of every dependency (binary wheels only, no sdists)
    requirements.lock    every wheel pinned with its sha256 (pip's hash-checking mode at install time)
    models/              the bundled models (*.pt, *.onnx), the model card and licences
    resources/           icons, report fonts, the sample case
    linux/               the desktop entry
    install.sh, install.ps1, INSTALL.md, bundle.json
    SHA256SUMS           sha256 of every other file; install.sh / install.ps1 verify it before installing

The CUDA build of torch comes from the PyTorch index (download.pytorch.org/whl/<cuda-tag>), or with
``--cuda-tag pypi`` from PyPI's default Linux build (CUDA libraries as nvidia-* wheels, several GB).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
PROJECT_NAME = "xfr-desktop"
DEFAULT_TORCH_VERSION = "2.13.0"
DEFAULT_GLIBC = "2.34"  # PySide6 6.11 ships manylinux_2_34 wheels only (Ubuntu 22.04+, RHEL 9+)
PYTORCH_INDEX = "https://download.pytorch.org/whl/{tag}"
DEFAULT_MODEL_NAME = "xfr-dlib-affine-joint.pt"
MODEL_SUFFIXES = {".pt", ".onnx", ".md", ".txt", ".json"}
RESOURCE_DIRS = ("icons", "fonts", "samples")

# friendly name -> (pip platform tags or None for "manylinux of --glibc", OS family)
PLATFORMS = {
    "linux-x86_64": (None, "linux"),
    "linux-aarch64": (None, "linux"),
    "windows-x86_64": (["win_amd64"], "windows"),
    "macos-arm64": ([f"macosx_{v}_0_arm64" for v in range(15, 10, -1)], "macos"),
}


class BundleError(Exception):
    """A step failed; the message says which and why (shown without a traceback)."""


def host_platform() -> str:
    machine = platform.machine().lower()
    if sys.platform.startswith("linux"):
        return "linux-aarch64" if machine in ("aarch64", "arm64") else "linux-x86_64"
    if sys.platform == "win32":
        return "windows-x86_64"
    if sys.platform == "darwin":
        return "macos-arm64"
    return f"{sys.platform}-{machine}"


def host_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def project_version() -> str:
    text = (REPO / "xfr_desktop" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise BundleError("cannot read __version__ from xfr_desktop/__init__.py")
    return match.group(1)


def installed_torch_version() -> str:
    try:
        return importlib.metadata.version("torch").split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return DEFAULT_TORCH_VERSION


def platform_tags(name: str, glibc: str) -> list[str]:
    tags, family = PLATFORMS[name]
    if tags is not None:
        return tags
    arch = name.split("-", 1)[1]
    major, minor = (int(x) for x in glibc.split("."))
    manylinux = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return manylinux + [f"manylinux2014_{arch}"]


def torch_requirement(torch: str, version: str, os_family: str, cuda_tag: str) -> tuple[str, list[str]]:
    """(requirement, extra index URLs) for the chosen torch build."""
    if torch == "cpu":
        if os_family == "macos":
            return f"torch=={version}", []  # PyPI's macOS wheels are the CPU/MPS build
        return f"torch=={version}+cpu", [PYTORCH_INDEX.format(tag="cpu")]
    if cuda_tag == "pypi":
        return f"torch=={version}", []  # PyPI's Linux/Windows default build (CUDA runtime as nvidia-* wheels)
    return f"torch=={version}+{cuda_tag}", [PYTORCH_INDEX.format(tag=cuda_tag)]


def run(cmd: list[str], what: str, env: dict | None = None) -> None:
    print(f"[bundle] {what}", flush=True)
    print("  $ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise BundleError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_name_version(filename: str) -> tuple[str, str]:
    """Distribution name (normalized) and version from a wheel file name (PEP 427)."""
    parts = filename[:-len(".whl")].split("-")
    if len(parts) < 5:
        raise BundleError(f"not a wheel file name: {filename}")
    return re.sub(r"[-_.]+", "-", parts[0]).lower(), parts[1]


def repack_installed_wheels(dest: Path, skip: set[str] = frozenset({"pip", "xfr-desktop"})) -> list[Path]:
    """Rebuild wheels of this environment's installed pure-Python packages (files from each RECORD).

    For building a wheelhouse offline when some packages' wheel files are not at hand (a developer machine that
    installed them from an index it can no longer reach). Packages with compiled code, files outside
    site-packages other than console scripts, or an editable/local install are left out.
    """
    import base64
    import csv
    import io

    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        wheel_info = dist.read_text("WHEEL") or ""
        if not name or name in skip or "Root-Is-Purelib: true" not in wheel_info:
            continue
        tags = [line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line.startswith("Tag:")]
        if not tags or any(not t.endswith("-none-any") for t in tags):
            continue
        direct = dist.read_text("direct_url.json")
        if direct and ("dir_info" in direct or "vcs_info" in direct):
            continue  # editable or local checkout: not a released wheel
        record = dist.read_text("RECORD")
        if not record:
            continue
        site = Path(dist.locate_file(""))
        entries, ok = [], True
        for row in csv.reader(io.StringIO(record)):
            if not row:
                continue
            rel = row[0]
            if rel.startswith("../") or rel.startswith("/"):
                if "/bin/" in rel and dist.read_text("entry_points.txt"):
                    continue  # console scripts: pip writes them again from entry_points.txt
                ok = False
                break
            if "__pycache__/" in rel or rel.endswith(".pyc"):
                continue
            if rel.split("/")[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json") and ".dist-info/" in rel:
                continue
            entries.append(rel)
        if not ok:
            continue
        dist_info = next((e.split("/")[0] for e in entries if e.split("/")[0].endswith(".dist-info")), None)
        if dist_info is None:
            continue
        interpreters = sorted({t.split("-")[0] for t in tags})
        stem = f"{re.sub(r'[-_.]+', '_', dist.metadata['Name']).lower()}-{dist.version}"
        path = dest / f"{stem}-{'.'.join(interpreters)}-none-any.whl"
        rows = []
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel in entries:
                data = (site / rel).read_bytes()
                zf.writestr(rel, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                rows.append((rel, f"sha256={digest}", len(data)))
            rows.append((f"{dist_info}/RECORD", "", ""))
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(rows)  # quotes names with commas
            zf.writestr(f"{dist_info}/RECORD", text.getvalue())
        made.append(path)
    return made


SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in")


def build_project_wheel(wheelhouse: Path, build_isolation: bool, bundle_data: bool = False) -> Path:
    """The project's wheel, built from a clean copy of the sources (a stale build/ folder cannot leak into it).

    ``bundle_data``: the self-contained wheel, carrying the default model, YuNet, fonts, icons and the sample case
    (setup.py); the offline bundle leaves it off, since its installer puts models/ and resources/ beside the
    package."""
    import tempfile

    before = set(wheelhouse.glob("*.whl"))
    with tempfile.TemporaryDirectory(prefix="xfr-wheel-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO / "xfr_desktop", src / "xfr_desktop",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "bundled"))
        for name in SOURCE_FILES + (("setup.py",) if bundle_data else ()):
            if (REPO / name).is_file():
                shutil.copy2(REPO / name, src / name)
        if bundle_data:
            for name in ("models", "resources"):
                shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheelhouse), str(src)]
        if not build_isolation:
            cmd.insert(4, "--no-build-isolation")  # setuptools from this environment: no download
        run(cmd, "building the project wheel")
    new = [p for p in set(wheelhouse.glob("*.whl")) - before if p.name.startswith("xfr_desktop-")]
    if len(new) != 1:
        raise BundleError(f"expected one new xfr_desktop wheel in {wheelhouse}, found {[p.name for p in new]}")
    return new[0]


def download_dependencies(wheelhouse: Path, requirements: list[str], args, tags: list[str] | None,
                          extra_indexes: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheelhouse),
           "--find-links", str(wheelhouse)]
    if tags is not None:  # another platform or Python: pip resolves for the target, never the host
        py = args.python.replace(".", "")
        cmd += ["--python-version", args.python, "--implementation", "cp",
                "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none"]
        for tag in tags:
            cmd += ["--platform", tag]
    if args.no_index:
        cmd.append("--no-index")
    elif args.index_url:  # the caller names every index: pip's configured ones and the PyTorch index are not used
        cmd += ["--index-url", args.index_url[0]]
        for url in args.index_url[1:]:
            cmd += ["--extra-index-url", url]
    else:
        for url in extra_indexes:
            cmd += ["--extra-index-url", url]
    for folder in args.find_links:
        cmd += ["--find-links", str(folder)]
    cmd += requirements
    run(cmd, "downloading the wheels of every dependency (" + ", ".join(requirements) + ")")


def copy_models(dest: Path, models_dir: Path, require_default: bool) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(models_dir.glob("*")):
        unfinished = ".partial" in path.name or path.name.endswith((".tmp", "~"))  # training checkpoints
        if path.is_file() and path.suffix.lower() in MODEL_SUFFIXES and not path.name.startswith(".") \
                and not unfinished:
            shutil.copy2(path, dest / path.name)
            copied.append(path.name)
    if DEFAULT_MODEL_NAME not in copied:
        msg = f"the default model {models_dir / DEFAULT_MODEL_NAME} is missing"
        if require_default:
            raise BundleError(msg + " (train or copy it first, or pass --allow-missing-model)")
        print(f"[bundle] WARNING: {msg}; the bundle installs without it (xfr needs --model then)", flush=True)
    return copied


def copy_resources(dest: Path) -> None:
    for name in RESOURCE_DIRS:
        src = REPO / "resources" / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))


def write_lock(wheelhouse: Path, out: Path) -> list[dict]:
    """requirements.lock: `name==version --hash=sha256:...` for every wheel; fails on two versions of one name."""
    entries: dict[str, dict] = {}
    for path in sorted(wheelhouse.glob("*.whl")):
        name, version = wheel_name_version(path.name)
        if name in entries:
            raise BundleError(f"two wheels of {name} in the wheelhouse: {entries[name]['file']} and {path.name}")
        entries[name] = {"name": name, "version": version, "file": path.name, "sha256": sha256_file(path),
                         "bytes": path.stat().st_size}
    lines = ["# every wheel in wheelhouse/, pinned with its hash; installed with pip --no-index --require-hashes"]
    lines += [f"{e['name']}=={e['version']} --hash=sha256:{e['sha256']}" for e in entries.values()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list(entries.values())


def write_manifest(root: Path) -> int:
    """SHA256SUMS (GNU coreutils format) over every file of the bundle except itself; returns the file count."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == "SHA256SUMS":
            continue
        lines.append(f"{sha256_file(path)}  {rel}")
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def make_archive(root: Path, kind: str) -> Path:
    if kind == "zip":
        archive = root.with_name(root.name + ".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # wheels are compressed already
            for path in sorted(root.rglob("*")):
                zf.write(path, Path(root.name) / path.relative_to(root))
    else:
        mode = "w:gz" if kind == "tar.gz" else "w"
        archive = root.with_name(root.name + (".tar.gz" if kind == "tar.gz" else ".tar"))
        with tarfile.open(archive, mode) as tf:
            tf.add(root, arcname=root.name)
    (archive.with_name(archive.name + ".sha256")).write_text(f"{sha256_file(archive)}  {archive.name}\n")
    return archive


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(args) -> Path:
    t0 = time.monotonic()
    if args.platform not in PLATFORMS:
        raise BundleError(f"unknown platform {args.platform!r}; one of {', '.join(PLATFORMS)}")
    if not re.fullmatch(r"3\.\d{1,2}", args.python):
        raise BundleError(f"--python takes MAJOR.MINOR, e.g. 3.11 (got {args.python!r})")
    os_family = PLATFORMS[args.platform][1]
    if args.torch == "cuda" and os_family == "macos":
        raise BundleError("there is no CUDA build of torch for macOS; use --torch cpu")
    default_model = Path(args.models_dir) / DEFAULT_MODEL_NAME
    if not default_model.is_file() and not args.allow_missing_model:  # say so before minutes of downloads
        raise BundleError(f"the default model {default_model} is missing (train or copy it first, or pass "
                          "--allow-missing-model)")
    version = project_version()
    torch_version = args.torch_version or installed_torch_version()
    variant = "cpu" if args.torch == "cpu" else ("cuda" if args.cuda_tag == "pypi" else args.cuda_tag)
    name = f"xfr-desktop-{version}-{args.platform}-py{args.python.replace('.', '')}-{variant}"
    root = Path(args.out).resolve() / name
    if root.exists():
        if not args.force:
            raise BundleError(f"{root} exists; pass --force to replace it")
        shutil.rmtree(root)
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir(parents=True)

    same_target = args.platform == host_platform() and args.python == host_python()
    tags = None if same_target else platform_tags(args.platform, args.glibc)
    torch_req, torch_indexes = torch_requirement(args.torch, torch_version, os_family, args.cuda_tag)

    project_wheel = build_project_wheel(wheelhouse, args.build_isolation)
    if args.repack_installed:
        staging = root.with_name(root.name + ".repacked")
        shutil.rmtree(staging, ignore_errors=True)
        made = repack_installed_wheels(staging)
        print(f"[bundle] rebuilt {len(made)} wheels of installed pure-Python packages in {staging}", flush=True)
        args.find_links.append(str(staging))
    try:
        download_dependencies(wheelhouse, [f"{PROJECT_NAME}=={version}", torch_req], args, tags, torch_indexes)
    finally:
        if args.repack_installed:
            shutil.rmtree(staging, ignore_errors=True)
    stray = [p.name for p in wheelhouse.iterdir() if not p.name.endswith(".whl")]
    if stray:
        raise BundleError(f"the wheelhouse holds non-wheel files {stray}: every package must be a binary wheel")
    wheels = write_lock(wheelhouse, root / "requirements.lock")
    torch_wheels = [w["file"] for w in wheels if w["name"] == "torch"]

    models = copy_models(root / "models", Path(args.models_dir), not args.allow_missing_model)
    copy_resources(root / "resources")
    shutil.copy2(PACKAGING / "install.sh", root / "install.sh")
    os.chmod(root / "install.sh", 0o755)
    shutil.copy2(PACKAGING / "install.ps1", root / "install.ps1")
    (root / "linux").mkdir()
    shutil.copy2(PACKAGING / "linux" / "xfr-desktop.desktop", root / "linux" / "xfr-desktop.desktop")
    guide = REPO / "docs" / "offline_install.md"
    if guide.is_file():
        shutil.copy2(guide, root / "INSTALL.md")

    meta = {
        "format": "xfr-offline-bundle", "format_version": 1,
        "project": PROJECT_NAME, "version": version, "project_wheel": project_wheel.name,
        "platform": args.platform, "platform_tags": tags or "host", "python": args.python,
        "torch": {"variant": variant, "requirement": torch_req, "wheels": torch_wheels},
        "wheels": [{k: w[k] for k in ("name", "version", "file")} for w in wheels],
        "models": models,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "built_with": {"python": platform.python_version(), "host": host_platform()},
    }
    (root / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    n_files = write_manifest(root)
    size = dir_size(root)
    print(f"[bundle] {root}: {len(wheels)} wheels, {len(models)} model files, {n_files} files, "
          f"{size / 2**20:.1f} MiB, built in {time.monotonic() - t0:.0f} s", flush=True)
    if args.archive != "none":
        archive = make_archive(root, args.archive)
        print(f"[bundle] archive {archive} ({archive.stat().st_size / 2**20:.1f} MiB) and {archive.name}.sha256",
              flush=True)
    return root


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Build an offline installation bundle of XFR Desktop.")
    p.add_argument("--platform", default=host_platform(), help=f"target: {', '.join(PLATFORMS)} (default: this "
                   f"machine, {host_platform()})")
    p.add_argument("--python", default=host_python(), help=f"target Python MAJOR.MINOR (default {host_python()})")
    p.add_argument("--torch", choices=("cpu", "cuda"), default="cpu", help="torch build (default cpu)")
    p.add_argument("--cuda-tag", default="cu128", help="CUDA build on the PyTorch index (cu126, cu128, ...) or "
                   "'pypi' for PyPI's default Linux build (default cu128)")
    p.add_argument("--torch-version", help="torch version (default: this environment's, else "
                   f"{DEFAULT_TORCH_VERSION})")
    p.add_argument("--glibc", default=DEFAULT_GLIBC, help=f"oldest glibc of the Linux targets (default "
                   f"{DEFAULT_GLIBC}); used when the target is not this machine")
    p.add_argument("--out", default=str(REPO / "dist"), help="folder the bundle is written under (default dist/)")
    p.add_argument("--models-dir", default=str(REPO / "models"), help="models to bundle (default models/)")
    p.add_argument("--allow-missing-model", action="store_true",
                   help="bundle even when models/xfr-dlib-affine-joint.pt is missing")
    p.add_argument("--no-index", action="store_true", help="use only --find-links folders (fully offline build)")
    p.add_argument("--find-links", action="append", default=[], metavar="DIR",
                   help="extra folder of wheels (repeatable), e.g. a local mirror")
    p.add_argument("--index-url", action="append", default=[], metavar="URL",
                   help="package index to use instead of pip's configured ones (repeatable; the first is the main "
                        "index, e.g. a file:// mirror); the PyTorch index is then not added either")
    p.add_argument("--repack-installed", action="store_true",
                   help="also offer wheels rebuilt from this environment's installed pure-Python packages "
                        "(offline builds where some wheel files are not at hand)")
    p.add_argument("--build-isolation", action="store_true",
                   help="build the project wheel in an isolated environment (downloads setuptools)")
    p.add_argument("--archive", choices=("none", "tar", "tar.gz", "zip"), default="none",
                   help="also pack the bundle into one file with a .sha256 beside it (default none)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle of the same name")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        build(args)
    except BundleError as exc:
        print(f"build_offline_bundle: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"build_offline_bundle: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
