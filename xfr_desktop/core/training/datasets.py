"""Training and validation data for the joint model.

Training sets (each item: an aligned RGB uint8 face at the model's input size and an integer identity label):

- :class:`FolderDataset`: a folder per identity. Raw photos are aligned on the fly with the project's aligner
  (:mod:`xfr_desktop.core.alignment`) and the chips cached on disk; pre-aligned crops are only resized.
- :class:`RecordIODataset`: insightface's MXNet RecordIO (``train.rec`` + ``train.idx``), read without MXNet.

Validation pairs (:class:`ValidationPairs`): LFW ``pairs.txt`` and CSV pair lists (via :mod:`core.pairs`), and
insightface ``.bin`` files, read with a restricted unpickler because a pickle from elsewhere can run code.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import logging
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError, NoFaceError, XfrError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


class DatasetError(XfrError):
    """A training or validation data set is missing, empty, damaged or hostile."""


def recordio_file(data: Path) -> Path | None:
    """The insightface RecordIO file ``data`` names (a .rec, or a folder holding train.rec); None for a folder of
    identity sub-folders."""
    if data.suffix == ".rec":
        return data
    return data / "train.rec" if data.is_dir() and (data / "train.rec").is_file() else None


# --- images ---------------------------------------------------------------------------------------------------
# Training files come from elsewhere and are read unattended: every size they state is checked before memory is
# allocated. Face chips are small; these bounds are far above any real data set and far below what hurts.
MAX_TRAINING_PIXELS = 4096 * 4096        # a decoded chip: at most 50 MB of RGB
MAX_RECORD_BYTES = 32 << 20              # one RecordIO record (real ones hold a JPEG of a few KB)
MAX_VALIDATION_PAIRS = 100_000           # LFW, CFP-FP and AgeDB-30 hold 6,000-7,000
# A .bin may name one small image thousands of times (the pickle stores it once): bound what it decodes to.
MAX_VALIDATION_BYTES = 256 << 20         # LFW at 112x112 (451 MB of chips) needs val_limit <= 3,566
MAX_BIN_FILE = 512 << 20                 # the pickle is read whole; real .bin files are 50-150 MB


def decode_image(data: bytes, what: str) -> np.ndarray:
    """Encoded image bytes -> RGB uint8 (H,W,3) through the app's bounded reader; ``what`` names the source."""
    from ..imageio import decode_image_bytes

    try:
        return decode_image_bytes(bytes(data), what, MAX_TRAINING_PIXELS)
    except ImageError as exc:
        raise DatasetError(f"{what}: the image data cannot be decoded ({str(exc).removeprefix(what + ': ')})") from None


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 from a file with the project's loader (EXIF orientation, clear ImageError messages)."""
    from ..imageio import load_image

    return load_image(path)


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an aligned crop to (H, W) when it differs (e.g. 112x112 insightface crops for a 150x150 model)."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


# --- a folder per identity ------------------------------------------------------------------------------------
@dataclass
class FolderScan:
    """What a dataset folder holds, for validation before training."""

    root: Path
    classes: list[str]
    files: list[tuple[Path, int]]
    per_class: dict[str, int] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.files)


def scan_identity_folder(root: str | os.PathLike, min_identities: int = 2, min_images: int = 2) -> FolderScan:
    """List ``root/<identity>/<image>``; raise :class:`DatasetError` with a clear message when unusable."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"dataset path is not a folder: {root}")
    try:
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"cannot read dataset folder {root}: {exc.strerror or exc}") from None
    classes: list[str] = []
    files: list[tuple[Path, int]] = []
    per_class: dict[str, int] = {}
    unreadable = []
    for d in subdirs:
        try:
            imgs = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        except OSError:
            unreadable.append(d.name)
            continue
        if not imgs:
            continue
        label = len(classes)
        classes.append(d.name)
        per_class[d.name] = len(imgs)
        files += [(p, label) for p in imgs]
    if unreadable:
        log.warning("skipped unreadable identity folders: %s", ", ".join(unreadable[:10]))
    if not files:
        loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = " (images must sit in one sub-folder per identity)" if loose else ""
        raise DatasetError(f"no images found in identity sub-folders of {root}{hint}")
    if len(classes) < min_identities:
        raise DatasetError(f"{root} has {len(classes)} identity folder(s) with images; at least {min_identities} needed")
    if len(files) < min_images:
        raise DatasetError(f"{root} has only {len(files)} image(s); at least {min_images} needed")
    return FolderScan(root, classes, files, per_class)


class FaceChipLoader:
    """Path -> aligned RGB uint8 face at the model's input size, or None when no face is found.

    ``aligned``: True = the images are aligned crops already (only resized); False = align each photo with the
    project's aligner, caching the chips as PNG under ``cache_dir`` (keyed by file, size, mtime and template);
    "auto" = pre-aligned when the first image looked at is already of the model's input size.
    """

    def __init__(self, model_spec: dict, aligned: bool | str = "auto", cache_dir=None):
        self.spec = model_spec
        self.input_size = (int(model_spec["input_size"][0]), int(model_spec["input_size"][1]))
        self.aligned = aligned
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._aligner = None

    def _decide(self, path: Path) -> None:
        if self.aligned == "auto":
            self.aligned = read_image(path).shape[:2] == self.input_size
        self.aligned = bool(self.aligned)
        if not self.aligned:
            key = hashlib.sha1(repr((self.spec.get("template"), self.input_size)).encode()).hexdigest()[:12]
            self.cache_dir = (self.cache_dir or path.parent.parent / ".xfr-align-cache") / key

    def _align(self, path: Path) -> np.ndarray | None:
        st = path.stat()
        cached = self.cache_dir / (hashlib.sha1(
            f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest() + ".png")
        if cached.is_file():
            img = cv2.imread(str(cached), cv2.IMREAD_COLOR)
            if img is not None:
                return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self._aligner is None:
            from ..alignment import FaceAligner

            self._aligner = FaceAligner(self.spec)  # template, input size and landmark weights of the spec
        try:
            chip = self._aligner.align(read_image(path), source=str(path)).aligned
        except NoFaceError:
            return None
        try:  # the cache only saves time; a read-only dataset still trains
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.stem + ".tmp.png")
            cv2.imwrite(str(tmp), cv2.cvtColor(chip, cv2.COLOR_RGB2BGR))
            os.replace(tmp, cached)
        except OSError as exc:
            log.debug("alignment cache not written: %s", exc)
        return chip

    def __call__(self, path) -> np.ndarray | None:
        path = Path(path)
        try:
            if not isinstance(self.aligned, bool):
                self._decide(path)
            img = read_image(path) if self.aligned else self._align(path)
        except (ImageError, OSError) as exc:
            log.warning("skipping %s: %s", path, exc)
            return None
        return None if img is None else fit_to_size(img, self.input_size)

    @property
    def pre_aligned(self) -> bool | str:
        return self.aligned

    def __getstate__(self) -> dict:  # data-loading processes build their own detector
        return {**self.__dict__, "_aligner": None}


class FolderDataset:
    """A folder per identity; items are (aligned RGB uint8 at the model's input size, label), or (None, label)
    for a photo without a usable face (skipped by the trainer, listed in ``skipped``). See
    :class:`FaceChipLoader` for ``aligned`` and ``cache_dir`` (default: ``<root>/.xfr-align-cache``)."""

    def __init__(self, root, model_spec: dict, aligned: bool | str = "auto", cache_dir=None,
                 min_identities: int = 2, min_images: int = 2):
        self.scan = scan_identity_folder(root, min_identities, min_images)
        self.root = self.scan.root
        self.classes = self.scan.classes
        self.files = list(self.scan.files)
        self.loader = FaceChipLoader(model_spec, aligned, cache_dir or self.root / ".xfr-align-cache")
        self.loader(self.files[0][0])  # settles "auto" on the first image
        self.skipped: list[str] = []

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def labels(self) -> np.ndarray:
        return np.array([lab for _, lab in self.files], dtype=np.int64)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, int]:
        path, label = self.files[index]
        img = self.loader(path)
        if img is None:
            self.skipped.append(str(path))
        return img, label


# --- insightface MXNet RecordIO -------------------------------------------------------------------------------
RECORDIO_MAGIC = 0xCED7230A
_IR_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2


def unpack_record_payload(payload: bytes, what: str = "record") -> tuple[np.ndarray | float, bytes]:
    """An image record's payload -> (label or labels, encoded image bytes)."""
    if len(payload) < _IR_HEADER.size:
        raise DatasetError(f"{what} is too short for its header ({len(payload)} bytes)")
    flag, label, _id, _id2 = _IR_HEADER.unpack_from(payload)
    rest = payload[_IR_HEADER.size:]
    if flag > 0:
        if flag * 4 > len(rest):
            raise DatasetError(f"{what} claims {flag} labels but holds only {len(rest)} bytes")
        labels = np.frombuffer(rest[: flag * 4], dtype="<f4").copy()
        return labels, rest[flag * 4:]
    return float(label), rest


class RecordIOReader:
    """Random access to a RecordIO file through its ``.idx`` (``key<TAB>offset`` lines)."""

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path else self.rec_path.with_suffix(".idx")
        for p in (self.rec_path, self.idx_path):
            if not p.is_file():
                raise DatasetError(f"RecordIO file not found: {p}")
        self.size = self.rec_path.stat().st_size
        self.offsets: dict[int, int] = {}
        with open(self.idx_path, "r", encoding="ascii", errors="replace") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = line.split("\t")
                try:
                    key, off = int(parts[0]), int(parts[1])
                except (ValueError, IndexError):
                    raise DatasetError(f"{self.idx_path} line {n} is not 'key<TAB>offset': {line[:60]!r}") from None
                if not 0 <= off < self.size:
                    raise DatasetError(f"{self.idx_path} line {n}: offset {off} lies outside {self.rec_path.name}")
                self.offsets[key] = off
        if not self.offsets:
            raise DatasetError(f"{self.idx_path} lists no records")
        self._f = None
        self._pid = None

    def _file(self):
        # One handle per process: forked data-loading workers must not share a file offset.
        if self._f is None or self._pid != os.getpid():
            self._f = open(self.rec_path, "rb")
            self._pid = os.getpid()
        return self._f

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_f": None, "_pid": None}

    def __del__(self):
        f = getattr(self, "_f", None)
        if f is not None and getattr(self, "_pid", None) == os.getpid():
            f.close()

    def read_at(self, offset: int) -> bytes:
        """One logical record starting at ``offset``; multi-part records are joined with the magic between parts
        (the writer split the data where the magic occurred)."""
        f = self._file()
        f.seek(offset)
        parts: list[bytes] = []
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise DatasetError(f"{self.rec_path.name} is truncated at offset {f.tell() - len(head)}")
            magic, lrec = struct.unpack("<II", head)
            if magic != RECORDIO_MAGIC:
                raise DatasetError(f"{self.rec_path.name} is damaged: no record magic at offset {f.tell() - 8}")
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            total = sum(map(len, parts)) + length
            if total > MAX_RECORD_BYTES or f.tell() + length > self.size:
                raise DatasetError(f"{self.rec_path.name}: the record at offset {offset} claims {total} bytes, more "
                                   f"than the file holds or the {MAX_RECORD_BYTES >> 20} MB a face record may have")
            data = f.read(length)
            if len(data) < length:
                raise DatasetError(f"{self.rec_path.name} is truncated: a record of {length} bytes is cut short")
            f.seek((4 - length % 4) % 4, io.SEEK_CUR)
            parts.append(data)
            if cflag in (0, 3):
                break
            if cflag not in (1, 2):
                raise DatasetError(f"{self.rec_path.name} is damaged: bad continuation flag {cflag}")
            parts.append(struct.pack("<I", RECORDIO_MAGIC))
        return b"".join(parts)

    def read(self, key: int) -> bytes:
        if key not in self.offsets:
            raise DatasetError(f"{self.rec_path.name} has no record {key}")
        return self.read_at(self.offsets[key])


class RecordIODataset:
    """insightface's ``train.rec``/``train.idx``: record 0 (flag > 0) gives in its label the index range; image
    records are keys 1 .. label[0]-1 and their label (first of the float labels when flag > 0) is the identity."""

    def __init__(self, rec_path, model_spec: dict, idx_path=None):
        rec_path = Path(rec_path)
        if rec_path.is_dir():
            rec_path = rec_path / "train.rec"
        self.reader = RecordIOReader(rec_path, idx_path)
        self.input_size = (int(model_spec["input_size"][0]), int(model_spec["input_size"][1]))
        self.keys = self._image_keys()
        self._labels = np.array([self._label_of(k) for k in self.keys], dtype=np.int64)
        if self._labels.size == 0:
            raise DatasetError(f"{rec_path} holds no image records")
        self.n_classes = int(self._labels.max()) + 1
        self.classes = [str(i) for i in range(self.n_classes)]
        self.skipped: list[str] = []

    def _image_keys(self) -> list[int]:
        """Keys 1 .. label[0]-1 of the header record, or every listed key when there is none. The header's count
        is checked against the index before it is used (a label of 3e38 once meant a loop of 3e38 steps)."""
        offsets = self.reader.offsets
        label0, _ = unpack_record_payload(self.reader.read(0), "record 0") if 0 in offsets else (0.0, b"")
        if not (isinstance(label0, np.ndarray) and label0.size >= 2 and label0[0] > 1):
            return sorted(offsets)
        end = float(label0[0])
        if not np.isfinite(end) or end - 1 > len(offsets):
            raise DatasetError(f"{self.reader.rec_path.name} record 0 claims {end:g} image records but "
                               f"{self.reader.idx_path.name} lists {len(offsets)}")
        keys = [k for k in range(1, int(end)) if k in offsets]
        if len(keys) < int(end) - 1:
            raise DatasetError(f"{self.reader.idx_path.name} lacks {int(end) - 1 - len(keys)} of the image records")
        return keys

    def _label_of(self, key: int) -> int:
        """Identities are numbered 0..n-1 and each has an image, so a label must be below the number of image
        records: a larger one would size the classifier head from the file's number (1e9 once asked for 24 GB)."""
        label, _ = unpack_record_payload(self.reader.read(key)[: _IR_HEADER.size + 64], f"record {key}")
        value = float(label[0]) if isinstance(label, np.ndarray) else float(label)
        n = len(self.keys)
        if not (0 <= value < n and value == int(value)):  # NaN fails every comparison
            raise DatasetError(f"{self.reader.rec_path.name} record {key}: identity label {value:g} is not a whole "
                               f"number from 0 to {n - 1} (the file holds {n} image records)")
        return int(value)

    def __len__(self) -> int:
        return len(self.keys)

    def labels(self) -> np.ndarray:
        return self._labels

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        key = self.keys[index]
        _, data = unpack_record_payload(self.reader.read(key), f"record {key}")
        img = decode_image(data, f"{self.reader.rec_path.name} record {key}")
        return fit_to_size(img, self.input_size), int(self._labels[index])


# --- validation pairs -----------------------------------------------------------------------------------------
@dataclass
class ValidationPairs:
    """Aligned faces as (2n, H, W, 3) uint8, pair i = images 2i and 2i+1; ``issame`` (n,) bool."""

    images: np.ndarray
    issame: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.issame)


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle asks for something other than bytes, lists, tuples and bools."""


def _latin1_bytes(text: str = "", encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedPickleError("only latin1 bytes may be encoded")
    return codecs.encode(text, "latin1")


def _empty_bytes(*args) -> bytes:
    if args and not isinstance(args[0], (bytes, bytearray)):
        raise RefusedPickleError("bytes() may only copy bytes")
    return bytes(*args)


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only bytes, lists, tuples and bools (plus ints/strings the pickle opcodes build themselves); any
    other global — os.system, builtins.eval, numpy — is refused before it can run."""

    _ALLOWED = {("_codecs", "encode"): _latin1_bytes, ("builtins", "bytes"): _empty_bytes,
                ("__builtin__", "bytes"): _empty_bytes}

    def find_class(self, module: str, name: str):
        fn = self._ALLOWED.get((module, name))
        if fn is None:
            raise RefusedPickleError(f"refused global {module}.{name}")
        return fn


def read_bin_pairs(path, input_size: tuple[int, int] | None = None, limit: int | None = None) -> ValidationPairs:
    """insightface ``.bin``: a pickle of (list of encoded images, list of issame flags), two images per pair.
    ``limit`` keeps that many pairs spread evenly over the set; the chips kept may take MAX_VALIDATION_BYTES."""
    path = Path(path)
    bins, issame = _load_bin(path)
    keep = _spread(len(issame), limit)
    first = decode_image(bytes(bins[2 * keep[0]]), f"{path.name} image {2 * keep[0]}")
    size = tuple(input_size or first.shape[:2])
    _check_decoded_bytes(path, len(keep), size)
    # filled in place, one image decoded at a time: the chips are the only large allocation
    images = np.empty((2 * len(keep), *size, 3), np.uint8)
    for j, i in enumerate(2 * k + side for k in keep for side in (0, 1)):
        images[j] = fit_to_size(decode_image(bytes(bins[i]), f"{path.name} image {i}"), size)
    return ValidationPairs(images, np.array([bool(issame[k]) for k in keep]), str(path))


def _spread(n: int, limit: int | None) -> list[int]:
    if limit and limit < n:
        return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))
    return list(range(n))


def _check_decoded_bytes(path: Path, n_pairs: int, size: tuple[int, int]) -> None:
    per_pair = 2 * size[0] * size[1] * 3
    if n_pairs * per_pair > MAX_VALIDATION_BYTES:
        raise DatasetError(
            f"{path.name}: {n_pairs} pairs of {size[1]}x{size[0]} faces would take {n_pairs * per_pair >> 20} MB "
            f"decoded, more than the {MAX_VALIDATION_BYTES >> 20} MB allowed: set val_limit to at most "
            f"{MAX_VALIDATION_BYTES // per_pair} pairs (xfr train --val-limit N)")


def _load_bin(path: Path) -> tuple[list, list]:
    if not path.is_file():
        raise DatasetError(f"validation file not found: {path}")
    if path.stat().st_size > MAX_BIN_FILE:
        raise DatasetError(f"{path.name} is larger than {MAX_BIN_FILE >> 20} MB: not read")
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="bytes").load()
    except RefusedPickleError as exc:
        raise DatasetError(f"{path.name} was refused: {exc} (only image bytes and flags are allowed)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, struct.error,
            UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise DatasetError(f"{path.name} is not a readable insightface .bin ({type(exc).__name__})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DatasetError(f"{path.name} does not hold (images, issame)")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not all(isinstance(b, (bytes, bytearray)) for b in bins):
        raise DatasetError(f"{path.name}: the first element must be a list of encoded images")
    if not isinstance(issame, (list, tuple)) or not all(isinstance(s, (bool, int)) for s in issame):
        raise DatasetError(f"{path.name}: the second element must be a list of issame flags")
    if len(bins) != 2 * len(issame) or not issame:
        raise DatasetError(f"{path.name} holds {len(bins)} images for {len(issame)} pairs (two per pair needed)")
    if len(issame) > MAX_VALIDATION_PAIRS:
        raise DatasetError(f"{path.name} holds {len(issame)} pairs, more than the {MAX_VALIDATION_PAIRS} allowed")
    return bins, issame


def read_pair_list(path, model_spec: dict, images_root=None, aligned: bool | str = "auto",
                   cache_dir=None, limit: int | None = None) -> ValidationPairs:
    """LFW ``pairs.txt`` or CSV pairs (parsed by :mod:`core.pairs`; image paths relative to ``images_root``,
    default the list's folder), faces aligned like a training folder. ``limit`` keeps that many pairs spread
    evenly over the list (so matched and mismatched pairs stay balanced)."""
    from ..pairs import read_pairs

    path = Path(path)
    pair_list = list(read_pairs(path, images_root if images_root else path.parent))
    if limit and limit < len(pair_list):
        pair_list = [pair_list[i] for i in np.linspace(0, len(pair_list) - 1, limit).round().astype(int)]
    if not pair_list:
        raise DatasetError(f"{path} lists no pairs")
    load = FaceChipLoader(model_spec, aligned, cache_dir)
    images, same = [], []
    for pair in pair_list:
        a, b = load(pair.path_a), load(pair.path_b)
        if a is None or b is None:
            continue
        images += [a, b]
        same.append(bool(pair.same))
    if not same:
        raise DatasetError(f"no usable pair in {path} (faces not found or images missing)")
    return ValidationPairs(np.stack(images), np.array(same), str(path))


def load_validation_pairs(path, model_spec: dict, images_root=None, aligned: bool | str = "auto",
                          cache_dir=None, limit: int | None = None) -> ValidationPairs:
    """Dispatch on the file: ``.bin`` -> insightface pickle, else an LFW/CSV pair list."""
    path = Path(path)
    if path.suffix.lower() == ".bin":
        return read_bin_pairs(path, tuple(model_spec["input_size"]), limit)
    return read_pair_list(path, model_spec, images_root, aligned, cache_dir, limit)


def pairs_from_dataset(dataset, n_pairs: int = 200, seed: int = 0) -> ValidationPairs | None:
    """Genuine/impostor pairs drawn from a training set, when no validation file is given (an optimistic,
    in-sample figure; the log says so)."""
    labels = dataset.labels()
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(int(lab), []).append(i)
    multi = [c for c, idx in by_class.items() if len(idx) >= 2]
    classes = list(by_class)
    if not multi or len(classes) < 2:
        return None
    idx_pairs, same = [], []
    for k in range(n_pairs):
        if k % 2 == 0:
            c = multi[rng.integers(len(multi))]
            i, j = rng.choice(by_class[c], 2, replace=False)
            same.append(True)
        else:
            c1, c2 = rng.choice(classes, 2, replace=False)
            i, j = rng.choice(by_class[c1]), rng.choice(by_class[c2])
            same.append(False)
        idx_pairs.append((int(i), int(j)))
    images, keep = [], []
    for (i, j), s in zip(idx_pairs, same):
        a, b = dataset[i][0], dataset[j][0]
        if a is None or b is None:
            continue
        images += [a, b]
        keep.append(s)
    if not keep:
        return None
    return ValidationPairs(np.stack(images), np.array(keep), "training images (no validation file given)")
