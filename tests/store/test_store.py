"""The case store: cases, content-addressed images, comparisons, results, conclusions, models, CLI."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from xfr_desktop import paths
from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core.errors import ImageError, StoreError, XfrError
from xfr_desktop.store import SCHEMA_VERSION, open_store, pack_arrays, unpack_arrays


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "data") as s:
        yield s


def write_image(path, seed=0, size=(40, 32)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def side_maps(rng, s=16):
    return {k: rng.random((s, s), dtype=np.float32) for k in ("H", "S", "S_pos", "S_neg")} | {
        "weights": rng.standard_normal(8).astype(np.float32)}


def result_payload(seed=0, threshold=0.3):
    rng = np.random.default_rng(seed)
    return {"score": 0.41, "threshold": threshold, "decision": True,
            "parameters": {"threshold": threshold, "normalization": "max", "top_k": None, "seed": seed},
            "model_sha256": "ab" * 32, "timings": {"explain_s": 1.25},
            "maps": {"a": side_maps(rng), "b": side_maps(rng)},
            "residuals": pack_arrays({"a": rng.random((8, 4)), "b": rng.random((8, 4))}),
            "faces": {"a": {"aligned": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                            "landmarks": rng.random((5, 2)), "box": np.array([1.0, 2.0, 30.0, 31.0])}}}


def test_connection_pragmas_and_layout(store):
    assert store.db_path == store.data_dir / "xfr.sqlite" and store.db_path.is_file()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    assert store.schema_version() == SCHEMA_VERSION


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)
    assert paths.resolve_data_dir() == paths.default_data_dir()
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "env"))
    assert paths.resolve_data_dir() == tmp_path / "env"
    assert paths.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    with open_store() as s:
        assert s.db_path == tmp_path / "env" / "xfr.sqlite"


def test_cases_create_search_update(store):
    a = store.create_case("2026-0001", "Bank robbery", "A. Examiner", "Lab North", "CCTV stills")
    b = store.create_case(" 2026-0002 ", "Fraud", "B. Examiner")
    assert b.number == "2026-0002" and a.id != b.id
    with pytest.raises(StoreError, match="already exists"):
        store.create_case("2026-0001")
    with pytest.raises(StoreError, match="case number"):
        store.create_case("   ")
    assert [c.number for c in store.list_cases("robbery")] == ["2026-0001"]
    assert [c.number for c in store.list_cases("lab north")] == ["2026-0001"]
    assert store.list_cases("no such thing") == [] and store.list_cases("%") == [] and store.list_cases("_") == []
    assert [c.number for c in store.list_cases()] == ["2026-0002", "2026-0001"]  # newest first
    updated = store.update_case(a.id, title="Bank robbery, 3 May", notes="")
    assert updated.title == "Bank robbery, 3 May" and updated.notes == "" and updated.modified_at > a.modified_at
    assert store.list_cases()[0].id == a.id  # modified moves it to the top
    assert store.find_case("2026-0002").id == b.id and store.find_case(str(a.id)).id == a.id
    with pytest.raises(StoreError, match="already exists"):
        store.update_case(b.id, number="2026-0001")
    with pytest.raises(StoreError):
        store.update_case(a.id, colour="red")
    with pytest.raises(StoreError, match="no case"):
        store.get_case(999)
    entry = [e for e in store.list_audit(a.id) if e.action == "case.updated"][-1]
    assert entry.details_dict["title"] == {"old": "Bank robbery", "new": "Bank robbery, 3 May"}


def test_import_image_content_addressed_and_idempotent(store, tmp_path):
    import hashlib

    source = write_image(tmp_path / "Probe Photo.PNG", seed=1)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    case = store.create_case("C-1")
    sha = store.import_image(source, case_id=case.id)
    assert sha == expected
    stored = store.image_path(sha)
    assert stored == store.images_dir / sha[:2] / f"{sha}.png" and stored.read_bytes() == source.read_bytes()
    assert store.import_image(source, case_id=case.id) == sha  # idempotent
    assert len(list(store.images_dir.rglob(f"{sha}*"))) == 1
    record = store.get_image(sha)
    assert (record.original_name, record.width, record.height, record.size) == ("Probe Photo.PNG", 40, 32,
                                                                                 source.stat().st_size)
    source.unlink()  # the case no longer depends on the original
    assert store.image_path(sha).is_file() and store.verify_image(sha)
    assert not list((store.images_dir / ".incoming").glob("*"))
    stored.write_bytes(b"corrupted")
    assert not store.verify_image(sha)
    assert sum(e.action == "image.imported" for e in store.list_audit(case.id)) == 2


def test_import_rejects_bad_files_with_clear_messages(store, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="notes.jpg: not an image file"):
        store.import_image(tmp_path / "notes.jpg")
    with pytest.raises(ImageError, match="missing.jpg: file not found"):
        store.import_image(tmp_path / "missing.jpg")
    with pytest.raises(StoreError, match="no case"):
        store.import_image(write_image(tmp_path / "x.png"), case_id=42)
    with pytest.raises(StoreError, match="no image"):
        store.image_path("0" * 64)
    assert not [p for p in store.images_dir.rglob("*") if p.is_file()]


def test_results_are_never_overwritten_and_round_trip(store, tmp_path):
    case = store.create_case("C-2")
    sha_a = store.import_image(write_image(tmp_path / "a.png", 1))
    sha_b = store.import_image(write_image(tmp_path / "b.jpg", 2))
    with pytest.raises(StoreError, match="not been imported"):
        store.add_comparison(case.id, sha_a, "f" * 64)
    comp = store.add_comparison(case.id, sha_a, sha_b, face_index_b=1, model_sha256="ab" * 32, model_name="tiny",
                                parameters={"threshold": 0.3})
    assert store.latest_result(comp.id) is None
    first_payload = result_payload(seed=5)
    first = store.save_result(comp.id, first_payload)
    second = store.save_result(comp.id, result_payload(seed=6, threshold=0.5))
    assert second.id > first.id
    results = store.list_results(comp.id)
    assert [r.id for r in results] == [first.id, second.id] and results[0].maps_npz is None
    latest = store.latest_result(comp.id)
    assert latest.id == second.id and latest.threshold == 0.5 and latest.decision_label == "match"
    old = store.get_result(first.id)  # the first result is untouched by the second save
    assert old.parameters == first_payload["parameters"] and old.timings == {"explain_s": 1.25}
    assert old.model_name == "tiny" and old.model_sha256 == "ab" * 32
    for side in ("a", "b"):
        for key, array in first_payload["maps"][side].items():
            np.testing.assert_array_equal(old.maps()[side][key], array)
    assert old.residuals == first_payload["residuals"]
    np.testing.assert_array_equal(old.faces()["a"]["aligned"], first_payload["faces"]["a"]["aligned"])
    assert store.get_comparison(comp.id).n_results == 2 and store.get_case(case.id).n_comparisons == 1
    actions = [e.action for e in store.list_audit(case.id)]
    assert actions[-2:] == ["analysis.saved", "parameters.saved"]
    odd = store.save_result(comp.id, {"score": np.float32(0.2), "threshold": 0.3, "decision": np.bool_(False),
                                      "parameters": {"likelihood_ratio": float("inf"), "top_k": np.int64(5)}})
    assert store.get_result(odd.id).parameters == {"likelihood_ratio": float("inf"), "top_k": 5}
    assert store.verify_audit(case.id).ok
    with pytest.raises(StoreError, match="needs score"):
        store.save_result(comp.id, {"threshold": 0.3, "decision": False})
    store.set_comparison_status(comp.id, "failed", "no face in B")
    assert (store.get_comparison(comp.id).status, store.get_comparison(comp.id).status_message) == (
        "failed", "no face in B")
    with pytest.raises(StoreError, match="unknown comparison status"):
        store.set_comparison_status(comp.id, "exploded")


def test_pack_arrays_round_trip_and_garbage():
    nested = {"a": {"H": np.arange(6.0).reshape(2, 3)}, "b": {"w": np.array([1, 2], np.int16)}, "x": None}
    out = unpack_arrays(pack_arrays(nested))
    np.testing.assert_array_equal(out["a"]["H"], nested["a"]["H"])
    assert out["b"]["w"].dtype == np.int16 and "x" not in out
    with pytest.raises(StoreError, match="unreadable"):
        unpack_arrays(b"definitely not npz")


def test_conclusions_keep_history(store, tmp_path):
    case = store.create_case("C-3")
    assert store.latest_conclusion(case.id) is None
    store.set_conclusion(case.id, "Moderate support for same source", scale="ENFSI verbal +2", author="A. E.")
    store.set_conclusion(case.id, "Strong support for same source", scale="ENFSI verbal +3", notes="after review",
                         author="A. E.")
    current = store.latest_conclusion(case.id)
    assert current.text.startswith("Strong") and current.notes == "after review" and current.author == "A. E."
    assert [c.text[:6] for c in store.list_conclusions(case.id)] == ["Modera", "Strong"]
    edits = [e for e in store.list_audit(case.id) if e.action == "conclusion.edited"]
    assert len(edits) == 2 and edits[0].actor == "A. E."
    other = store.create_case("C-4")
    sha = store.import_image(write_image(tmp_path / "a.png"))
    comp = store.add_comparison(other.id, sha, sha)
    with pytest.raises(StoreError, match="does not belong"):
        store.set_conclusion(case.id, "x", comparison_id=comp.id)


def test_model_registry_single_active(store, tmp_path):
    import hashlib

    first_file = tmp_path / "m1.pt"
    first_file.write_bytes(b"model one")
    second_file = tmp_path / "m2.pt"
    second_file.write_bytes(b"model two")
    assert store.active_model() is None
    m1 = store.register_model("one", first_file, card="# Model one", activate=True)
    assert m1.sha256 == hashlib.sha256(b"model one").hexdigest() and m1.active
    m2 = store.register_model("two", second_file)
    assert not m2.active and store.active_model().id == m1.id
    store.set_active_model(m2.sha256)
    assert [m.active for m in store.list_models()] == [False, True]
    again = store.register_model("one renamed", first_file)  # same sha256: updated, not duplicated
    assert again.id == m1.id and again.card == "# Model one" and len(store.list_models()) == 2
    with pytest.raises(StoreError, match="cannot read the model file"):
        store.register_model("ghost", tmp_path / "ghost.pt")
    with pytest.raises(StoreError, match="no registered model"):
        store.get_model("c" * 64)


def test_threads_each_with_their_own_sessions(store):
    """Concurrent writers from several threads: nothing lost, one intact audit chain."""
    case = store.create_case("C-5")
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(8):
                store.log_event("test.event", case_id=case.id, details={"thread": k, "i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    verification = store.verify_audit(case.id)
    assert verification.ok and verification.n_entries == 1 + 32


def test_cli_cases_list_and_show(tmp_path, capsys):
    data = tmp_path / "data"
    with open_store(data) as s:
        case = s.create_case("2026-0042", "Shop theft", "C. Examiner", "Lab South")
        sha_a = s.import_image(write_image(tmp_path / "a.png", 3), case.id)
        comp = s.add_comparison(case.id, sha_a, sha_a, model_name="tiny")
        s.save_result(comp.id, result_payload(seed=1))
        s.set_conclusion(case.id, "Support for same source", author="C. Examiner")
    assert xfr_main(["--data-dir", str(data), "cases", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"id": case.id, "number": "2026-0042", "title": "Shop theft", "examiner": "C. Examiner",
                       "organisation": "Lab South", "n_comparisons": 1, "created": listed[0]["created"],
                       "modified": listed[0]["modified"]}]
    assert xfr_main(["--data-dir", str(data), "cases", "list"]) == 0
    assert "2026-0042" in capsys.readouterr().out
    assert xfr_main(["--data-dir", str(data), "cases", "show", "2026-0042", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["comparisons"][0]["latest_result"]["decision"] == "match"
    assert shown["conclusion"]["text"] == "Support for same source" and shown["audit"]["intact"]
    assert xfr_main(["--data-dir", str(data), "cases", "show", str(case.id)]) == 0
    assert "1. a.png (face 1) vs a.png (face 1)" in capsys.readouterr().out
    assert xfr_main(["--data-dir", str(data), "cases", "show", "nope"]) == 2
    assert "no case with id or number 'nope'" in capsys.readouterr().err
    assert xfr_main(["--data-dir", str(data), "cases", "create", "2026-0043", "--title", "T"]) == 0
    assert "created case 2026-0043" in capsys.readouterr().out


def test_errors_are_xfr_errors():
    assert issubclass(StoreError, XfrError)
