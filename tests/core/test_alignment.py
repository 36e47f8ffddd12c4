"""Face detection and alignment with the bundled YuNet on real photographs (bundled samples and LFW)."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from xfr_desktop.core.alignment import (
    DEFAULT_LANDMARK_WEIGHTS, AlignedFace, FaceAligner, FaceIndexError, umeyama_similarity, warp_points,
)
from xfr_desktop.core.errors import ImageError, ModelFileError, NoFaceError
from xfr_desktop.core.imageio import load_image
from xfr_desktop.core.model import ARCFACE_TEMPLATE_112

# First image of LFW people in alphabetical order, near-frontal single-subject photos.
LFW_FACES = [
    "AJ_Lamas_0001", "Aaron_Eckhart_0001", "Aaron_Guiel_0001", "Aaron_Patterson_0001", "Aaron_Peirsol_0001",
    "Aaron_Pena_0001", "Aaron_Sorkin_0001", "Aaron_Tippin_0001", "Abba_Eban_0001", "Abbas_Kiarostami_0001",
    "Abdel_Aziz_Al-Hakim_0001", "Abdul_Majeed_Shobokshi_0001",
]


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner(ARCFACE_TEMPLATE_112, (112, 112))


@pytest.fixture(scope="module")
def sample_images(samples_dir: Path) -> list[Path]:
    files = sorted((samples_dir / "images").glob("*.jpg"))
    assert len(files) == 8
    return files


def lfw_file(lfw_dir: Path, stem: str) -> Path:
    return lfw_dir / stem.rsplit("_", 1)[0] / f"{stem}.jpg"


def eye_errors(result: AlignedFace, template: np.ndarray) -> np.ndarray:
    return np.linalg.norm(warp_points(result.landmarks[:2], result.transform) - template[:2], axis=1)


# --- geometry ------------------------------------------------------------------------------------------------
def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = 0.3, 0.45, np.array([12.0, -7.0])
    R = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ R.T + shift
    for weights in (None, DEFAULT_LANDMARK_WEIGHTS):
        M = umeyama_similarity(src, dst, weights)
        np.testing.assert_allclose(M[:, :2], R, atol=1e-10)
        np.testing.assert_allclose(M[:, 2], shift, atol=1e-8)


def test_umeyama_never_reflects():
    src = np.array([[0, 0], [10, 0], [5, 5], [2, 9], [8, 9]], float)
    mirrored = src * [-1, 1]
    M = umeyama_similarity(src, mirrored)
    assert np.linalg.det(M[:, :2]) > 0


# --- alignment quality on real faces ------------------------------------------------------------------------
def test_eyes_land_within_3px_of_template_on_lfw(aligner, lfw_dir):
    worst = []
    for stem in LFW_FACES:
        path = lfw_file(lfw_dir, stem)
        result = aligner.align(load_image(path), source=str(path))
        assert result.aligned.shape == (112, 112, 3) and result.aligned.dtype == np.uint8
        errors = eye_errors(result, aligner.template)
        assert errors.max() < 3.0, f"{stem}: eyes {errors.round(2)} px from the template"
        worst.append(errors.max())
    assert len(worst) >= 10


def test_bundled_samples_align_with_one_face_each(aligner, sample_images):
    for path in sample_images:
        result = aligner.align_file(path)
        assert result.n_faces == 1 and result.face_index == 0
        assert eye_errors(result, aligner.template).max() < 3.0, path.name
        # the aligned face is the photo warped by the reported transform
        expected = cv2.warpAffine(load_image(path), result.transform, (112, 112), flags=cv2.INTER_LINEAR)
        assert np.abs(expected.astype(int) - result.aligned.astype(int)).mean() < 1.0


def test_for_model_uses_the_model_template_and_size(tiny_model, sample_images):
    aligner = FaceAligner.for_model(tiny_model)
    assert aligner.input_size == tiny_model.input_size
    np.testing.assert_allclose(aligner.template, tiny_model.template)
    result = aligner.align_file(sample_images[0])
    assert result.aligned.shape == (*tiny_model.input_size, 3)
    assert tiny_model.preprocess(result.aligned).shape == (1, 3, *tiny_model.input_size)


def test_non_default_input_size_and_template_scale(sample_images):
    template = np.asarray(ARCFACE_TEMPLATE_112) * 2  # a 224x224 layout
    aligner = FaceAligner({"template": template.tolist(), "input_size": [224, 224]})
    result = aligner.align_file(sample_images[1])
    assert result.aligned.shape == (224, 224, 3)
    assert eye_errors(result, aligner.template).max() < 6.0


# --- several faces, large images, tight crops --------------------------------------------------------------
def test_two_faces_largest_first_and_index_picks(aligner, sample_images):
    left = load_image(sample_images[0])                       # 250x250
    right = cv2.resize(load_image(sample_images[7]), (180, 180), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((250, 430, 3), np.uint8)
    canvas[:, :250] = left
    canvas[35:215, 250:430] = right
    first = aligner.align(canvas, source="two.jpg")
    second = aligner.align(canvas, face_index=1, source="two.jpg")
    assert first.n_faces == 2 and second.n_faces == 2
    assert first.box[2] * first.box[3] > second.box[2] * second.box[3]
    assert first.box[0] + first.box[2] / 2 < 250 < second.box[0] + second.box[2] / 2
    assert not np.array_equal(first.aligned, second.aligned)
    with pytest.raises(FaceIndexError) as exc:
        aligner.align(canvas, face_index=2, source="two.jpg")
    msg = str(exc.value)
    assert "two.jpg" in msg and "2 faces found" in msg and "face 3 requested" in msg and "1 to 2" in msg and "\n" not in msg
    with pytest.raises(FaceIndexError):
        aligner.align(canvas, face_index=-1, source="two.jpg")


def test_big_photo_is_searched_downscaled_and_mapped_back(aligner, sample_images):
    face = load_image(sample_images[2])
    small = aligner.detect(face)[0]
    big_face = cv2.resize(face, (750, 750), interpolation=cv2.INTER_CUBIC)  # x3
    canvas = np.full((3000, 4000, 3), 80, np.uint8)
    canvas[1200:1950, 2500:3250] = big_face
    found = aligner.detect(canvas)
    assert len(found) == 1
    expected = small.landmarks * 3 + [2500, 1200]
    # detection ran on a 1600-px copy (the face ~300 px there): landmarks agree to ~2% of the face size
    assert np.abs(found[0].landmarks - expected).max() < 0.03 * 750
    result = aligner.align(canvas)
    assert eye_errors(result, aligner.template).max() < 3.5


def _similarity(scale: float, source_point, theta: float = 0.0) -> np.ndarray:
    """The 2x3 similarity that maps ``source_point`` to the 112 px chip's centre at ``scale``."""
    M = np.array([[scale * np.cos(theta), -scale * np.sin(theta), 0.0],
                  [scale * np.sin(theta), scale * np.cos(theta), 0.0]])
    M[:, 2] = [56.0, 56.0] - M[:, :2] @ np.asarray(source_point, np.float64)
    return M


def test_downscaling_warp_matches_a_full_resolution_reference_warp():
    """A big photo is pre-shrunk before the warp; its pixels must equal a plain warp of the full image (on smooth
    content, where the plain warp does not alias). The face sits far off the diagonal (x ≠ y), so a crop offset
    with x and y swapped lands on another part of the photo."""
    H, W = 1800, 2600
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    image = np.stack([128 + 100 * np.sin(xx / 90.0) * np.cos(yy / 130.0),
                      128 + 100 * np.cos((xx + yy) / 150.0),
                      np.clip(xx / W * 255, 0, 255)], -1).round().astype(np.uint8)
    M = _similarity(0.1, [1900.0, 800.0], np.deg2rad(12.0))   # 112 px across 1,120 source px: the pre-shrink path
    aligner = FaceAligner(ARCFACE_TEMPLATE_112, (112, 112))
    got = aligner.warp(image, M).astype(np.float64)
    reference = cv2.warpAffine(image, M, (112, 112), flags=cv2.INTER_LINEAR).astype(np.float64)
    assert got.std() > 20                              # a real image, not a flat one
    assert np.abs(got - reference).mean() < 2.0 and np.abs(got - reference).max() < 25


def test_downscaling_warp_keeps_the_photo_edge_where_the_face_reaches_it():
    """A face at the photo's left edge: the chip's left 16 columns lie outside the photo (black), the rest must
    match a plain full-resolution warp up to the edge -- the pre-shrink crop starts at the photo's first column."""
    H, W = 900, 1300
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    image = np.stack([170 + 60 * np.sin(yy / 70.0), 170 + 60 * np.cos(xx / 90.0), np.full_like(xx, 200)],
                     -1).round().astype(np.uint8)
    M = _similarity(0.45, [40.0 / 0.45, 450.0])      # source x = 0 lands on chip column 16
    got = FaceAligner(ARCFACE_TEMPLATE_112, (112, 112)).warp(image, M).astype(np.float64)
    reference = cv2.warpAffine(image, M, (112, 112), flags=cv2.INTER_LINEAR).astype(np.float64)
    assert got[:, :15].max() == 0 and got[:, 17:].min() > 100     # the edge is in view
    assert np.abs(got - reference).max() <= 3


def test_downscaling_warp_averages_detail_finer_than_the_chip():
    """Stripes one source row high, shrunk 10x: the pre-shrink averages them to their mean grey (127.5), where a
    plain warp samples single rows (0 or 255). A pre-shrink too tall keeps some stripes (aliasing)."""
    image = np.zeros((1600, 1400, 3), np.uint8)
    image[::2] = 255
    M = _similarity(0.1, [700.0, 1000.0])
    got = FaceAligner(ARCFACE_TEMPLATE_112, (112, 112)).warp(image, M).astype(np.float64)
    plain = cv2.warpAffine(image, M, (112, 112), flags=cv2.INTER_LINEAR).astype(np.float64)
    assert np.abs(plain - 127.5).max() > 100                       # what the pre-shrink prevents
    assert np.abs(got - 127.5).max() < 12


def test_tight_crop_is_found_with_padding_retry(aligner, sample_images):
    face = load_image(sample_images[3])
    box = aligner.detect(face)[0].box.astype(int)
    x, y, w, h = box
    crop = np.ascontiguousarray(face[y + h // 8:y + h - h // 8, x + w // 8:x + w - w // 8])
    result = aligner.align(crop, source="crop.png")
    assert result.n_faces == 1
    assert np.all(result.landmarks >= 0) and np.all(result.landmarks[:, 0] < crop.shape[1])


def test_prealigned_crop_skips_detection(aligner, caplog):
    noise = np.random.default_rng(0).integers(0, 255, (150, 150, 3), dtype=np.uint8)  # no face in it
    result = aligner.align_prealigned(noise)
    assert result.prealigned and result.n_faces == 1 and result.landmarks is None
    assert result.aligned.shape == (112, 112, 3)
    np.testing.assert_allclose(result.transform, [[112 / 150, 0, 0], [0, 112 / 150, 0]])
    assert result.face_index == 0 and result.box is None
    with pytest.raises(ImageError, match=r"^image: 200x100 is not an aligned face crop"):
        aligner.align_prealigned(np.zeros((100, 200, 3), np.uint8))
    with pytest.raises(ImageError, match="image has no pixels"):
        aligner.align_prealigned(np.zeros((4, 0, 3), np.uint8))
    with pytest.raises(ImageError, match="image has no pixels"):
        aligner.align(np.zeros((0, 4, 3), np.uint8))
    same = aligner.align_prealigned(noise[:112, :112])
    np.testing.assert_array_equal(same.aligned, noise[:112, :112])
    with caplog.at_level(logging.WARNING, logger="xfr_desktop.core.alignment"):   # 7 % too wide: stretched
        aligner.align_prealigned(noise[:112, :120], source="crop.png")
    assert [r.getMessage() for r in caplog.records] == [
        "crop.png: pre-aligned crop is 120x112 but the model expects 112x112; it is stretched"]


def test_detector_instance_is_reused(aligner, sample_images):
    aligner.detect(load_image(sample_images[0]))
    detector = aligner._detector
    aligner.detect(np.zeros((300, 500, 3), np.uint8))
    assert aligner._detector is detector


# --- bad inputs ----------------------------------------------------------------------------------------------
def test_no_face_names_the_source(aligner):
    y, x = np.mgrid[0:200, 0:300]
    blank = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)
    with pytest.raises(NoFaceError) as exc:
        aligner.align(blank, source="scene.png")
    assert str(exc.value).startswith("scene.png: no face found") and "\n" not in str(exc.value)
    with pytest.raises(NoFaceError, match=r"^the image: no face found \(detector score threshold 0\.6\)"):
        aligner.align(blank)                       # no source given: still a readable sentence


def test_align_file_errors_name_the_file(aligner, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="broken.jpg"):
        aligner.align_file(bad)
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
    with pytest.raises(NoFaceError, match="wall.png: no face found"):
        aligner.align_file(blank)


def test_missing_detector_file_is_a_clear_error(tmp_path):
    aligner = FaceAligner(ARCFACE_TEMPLATE_112, (112, 112), detector_path=tmp_path / "nope.onnx")
    with pytest.raises(ModelFileError, match="face detector model not found"):
        aligner.detect(np.zeros((64, 64, 3), np.uint8))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="cannot load face detector"):
        FaceAligner(ARCFACE_TEMPLATE_112, (112, 112), detector_path=junk).detect(np.zeros((64, 64, 3), np.uint8))


def test_wrong_array_shape_is_rejected(aligner):
    with pytest.raises(ValueError, match="RGB uint8"):
        aligner.detect(np.zeros((64, 64), np.uint8))


def test_align_reuses_given_detections(aligner, sample_images):
    image = load_image(sample_images[4])
    faces = aligner.detect(image)
    direct = aligner.align(image)
    reused = aligner.align(image, faces=faces)
    np.testing.assert_array_equal(direct.aligned, reused.aligned)
    with pytest.raises(NoFaceError):
        aligner.align(image, faces=[], source="x.jpg")
