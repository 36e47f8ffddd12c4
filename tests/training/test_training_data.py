"""Training data readers: identity folders, insightface RecordIO and .bin files written here in the documented
formats, and damaged or hostile files refused with clear messages."""
from __future__ import annotations

import os
import pickle
import struct

import cv2
import numpy as np
import pytest

from xfr_desktop.core.training.datasets import (RECORDIO_MAGIC, DatasetError, FolderDataset, RecordIODataset,
                                                read_bin_pairs, scan_identity_folder)

SPEC = {"input_size": [32, 32], "template": [[0, 0]] * 5}


def png(seed: int, size=32) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def image_payload(label: float, image: bytes, extra_labels: list[float] | None = None, rid: int = 0) -> bytes:
    if extra_labels is None:
        return struct.pack("<IfQQ", 0, label, rid, 0) + image
    labels = [label] + extra_labels
    return struct.pack("<IfQQ", len(labels), 0.0, rid, 0) + np.asarray(labels, "<f4").tobytes() + image


def write_part(f, data: bytes, cflag: int = 0) -> None:
    f.write(struct.pack("<II", RECORDIO_MAGIC, (cflag << 29) | len(data)))
    f.write(data + b"\0" * ((4 - len(data) % 4) % 4))


def write_recordio(folder, labels: list[int], split_key: int | None = None):
    """insightface layout: record 0 is a header whose labels give the index range; then one record per image."""
    rec, idx = folder / "train.rec", folder / "train.idx"
    n = len(labels)
    offsets = {}
    with open(rec, "wb") as f:
        offsets[0] = f.tell()
        write_part(f, image_payload(float(n + 1), b"", [float(n + 1 + max(labels) + 1)]))
        for key, lab in enumerate(labels, 1):
            offsets[key] = f.tell()
            if key == split_key:
                # A payload holding the magic is stored in two parts (start, end) with the magic cut out.
                magic_as_float = struct.unpack("<f", struct.pack("<I", RECORDIO_MAGIC))[0]
                payload = image_payload(float(lab), png(key), [magic_as_float], rid=key)
                cut = payload.index(struct.pack("<I", RECORDIO_MAGIC))
                write_part(f, payload[:cut], 1)
                write_part(f, payload[cut + 4:], 3)
            else:
                write_part(f, image_payload(float(lab), png(key), rid=key))
    idx.write_text("".join(f"{k}\t{o}\n" for k, o in offsets.items()))
    return rec, idx


def test_recordio_reads_images_labels_and_split_records(tmp_path):
    labels = [0, 0, 1, 1, 2]
    write_recordio(tmp_path, labels, split_key=3)
    ds = RecordIODataset(tmp_path, SPEC)
    assert len(ds) == 5 and ds.n_classes == 3 and ds.labels().tolist() == labels
    for i in range(5):
        img, lab = ds[i]
        assert img.shape == (32, 32, 3) and lab == labels[i]
        expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(png(i + 1), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(img, expected)  # record 3 included: the parts were joined with the magic


def test_recordio_resizes_to_the_model_input(tmp_path):
    write_recordio(tmp_path, [0, 1])
    ds = RecordIODataset(tmp_path / "train.rec", {"input_size": [48, 40]})
    assert ds[0][0].shape == (48, 40, 3)


def test_recordio_damage_is_reported(tmp_path):
    rec, idx = write_recordio(tmp_path, [0, 1, 1])
    data = bytearray(rec.read_bytes())
    offsets = [int(line.split("\t")[1]) for line in idx.read_text().splitlines()]
    data[offsets[2]:offsets[2] + 4] = b"\0\0\0\0"  # record 2 loses its magic
    rec.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="damaged: no record magic"):
        RecordIODataset(tmp_path, SPEC)
    rec.write_bytes(bytes(data[: offsets[3] + 20]))  # truncated inside the last record
    with pytest.raises(DatasetError, match="outside|truncated|damaged"):
        RecordIODataset(tmp_path, SPEC)
    write_recordio(tmp_path, [0, 1])
    idx.write_text("0\t0\nnot a line\n")
    with pytest.raises(DatasetError, match="line 2 is not 'key<TAB>offset'"):
        RecordIODataset(tmp_path, SPEC)
    idx.unlink()
    with pytest.raises(DatasetError, match="not found"):
        RecordIODataset(tmp_path, SPEC)


def test_recordio_undecodable_image(tmp_path):
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    with open(rec, "wb") as f:
        write_part(f, image_payload(0.0, b"definitely not an image"))
        write_part(f, image_payload(1.0, png(1)))
    idx.write_text(f"0\t0\n1\t{8 + 24 + 24}\n")
    ds = RecordIODataset(tmp_path, SPEC)  # no header record: every key is an image
    assert len(ds) == 2 and ds[1][1] == 1
    with pytest.raises(DatasetError, match="cannot be decoded"):
        ds[0]


# --- insightface .bin ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4])
def test_bin_pairs_read(tmp_path, protocol):
    bins = [png(i) for i in range(4)]
    (tmp_path / "lfw.bin").write_bytes(pickle.dumps((bins, [True, False]), protocol=protocol))
    pairs = read_bin_pairs(tmp_path / "lfw.bin", (32, 32))
    assert pairs.images.shape == (4, 32, 32, 3) and pairs.issame.tolist() == [True, False]


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bin_refuses_code_and_damage(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([_Hostile(marker)], [True]), protocol=2))
    with pytest.raises(DatasetError, match="refused global .*system"):
        read_bin_pairs(tmp_path / "evil.bin")
    assert not marker.exists()
    (tmp_path / "numpy.bin").write_bytes(pickle.dumps(([png(0), png(1)], np.array([True])), protocol=2))
    with pytest.raises(DatasetError, match="refused global numpy"):
        read_bin_pairs(tmp_path / "numpy.bin")
    good = pickle.dumps(([png(0), png(1)], [True]), protocol=4)
    (tmp_path / "cut.bin").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="not a readable insightface .bin"):
        read_bin_pairs(tmp_path / "cut.bin")
    (tmp_path / "odd.bin").write_bytes(pickle.dumps(([png(0)], [True]), protocol=4))
    with pytest.raises(DatasetError, match="two per pair"):
        read_bin_pairs(tmp_path / "odd.bin")
    (tmp_path / "junk.bin").write_bytes(pickle.dumps(([b"nope", b"nope"], [True]), protocol=4))
    with pytest.raises(DatasetError, match="cannot be decoded"):
        read_bin_pairs(tmp_path / "junk.bin")


# --- identity folders ------------------------------------------------------------------------------------------
def _write(path, seed, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_identity_folder_scan_and_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_identity_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        scan_identity_folder(tmp_path / "empty")
    _write(tmp_path / "loose" / "a.png", 0)
    with pytest.raises(DatasetError, match="one sub-folder per identity"):
        scan_identity_folder(tmp_path / "loose")
    _write(tmp_path / "one" / "alice" / "1.png", 1)
    with pytest.raises(DatasetError, match="1 identity folder"):
        scan_identity_folder(tmp_path / "one")
    _write(tmp_path / "one" / "bob" / "1.png", 2)
    (tmp_path / "one" / "bob" / "notes.txt").write_text("not an image")
    scan = scan_identity_folder(tmp_path / "one")
    assert scan.classes == ["alice", "bob"] and scan.n_images == 2


def test_folder_dataset_prealigned_and_unreadable_images(tmp_path):
    _write(tmp_path / "d" / "alice" / "1.png", 1)
    _write(tmp_path / "d" / "alice" / "2.png", 2, size=64)  # a larger crop is resized
    _write(tmp_path / "d" / "bob" / "1.png", 3)
    (tmp_path / "d" / "bob" / "2.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    ds = FolderDataset(tmp_path / "d", SPEC, aligned=True)
    assert ds.n_classes == 2 and len(ds) == 4
    assert ds[1][0].shape == (32, 32, 3)
    img, label = ds[3]  # the broken file is skipped, not fatal
    assert img is None and label == 1 and ds.skipped


def test_folder_dataset_aligns_raw_photos_with_a_cache(tmp_path, lfw_dir):
    from xfr_desktop.core.model import ARCFACE_TEMPLATE_112

    spec = {"input_size": [112, 112], "template": ARCFACE_TEMPLATE_112}
    people = sorted(p for p in lfw_dir.iterdir() if len(list(p.glob("*.jpg"))) >= 2)[:2]
    for person in people:
        for src in sorted(person.glob("*.jpg"))[:2]:
            (tmp_path / "raw" / person.name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "raw" / person.name / src.name).write_bytes(src.read_bytes())
    ds = FolderDataset(tmp_path / "raw", spec, aligned="auto", cache_dir=tmp_path / "cache")
    assert not ds.loader.pre_aligned  # 250x250 photos are not 112x112 crops
    img, _ = ds[0]
    assert img.shape == (112, 112, 3)
    cached = list((tmp_path / "cache").rglob("*.png"))
    assert cached
    again, _ = FolderDataset(tmp_path / "raw", spec, aligned=False, cache_dir=tmp_path / "cache")[0]
    assert np.array_equal(img, again)
