"""Case work the desktop and the command line share, free of Qt: add a pair of photos to a case, analyse its
comparisons, record a conclusion, set up the bundled sample case.

People number things from 1: "comparison 2" is the case's second comparison by creation order, removed ones
included (`ComparisonRecord.number`: the one number the app, `xfr cases`, the report and its audit appendix show),
and "face 1" the largest face in a photo; the store keeps face indices 0-based.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .analysis import AnalysisOutcome, FaceChoiceRequest, ModelCache, analyse_comparison, plan_analysis
from .core.errors import ImageError, StoreError, XfrError
from .paths import RESOURCES_DIR

log = logging.getLogger(__name__)

SAMPLES_DIR = RESOURCES_DIR / "samples"


def comparison_by_number(store, case_id: int, number: int):
    """The case's comparison number `number` (`ComparisonRecord.number`); StoreError when there is none."""
    comparisons = store.list_comparisons(case_id)
    found = [c for c in comparisons if c.number == int(number)]
    if not found:
        raise StoreError(f"case {store.get_case(case_id).number} has no comparison {number} "
                         f"(it has {len(comparisons)})")
    return found[0]


def add_pair(store, case_id: int, path_a, path_b, *, face_a: int | None = None, face_b: int | None = None,
             prealigned: bool = False, actor: str | None = None, sheet_dir=None):
    """Import both photos and add them to the case as a comparison. ``face_a``/``face_b``: 1-based face numbers
    (1 = the largest; None: the photo's only face). Faces are found first, so nothing is stored for a photo
    without a face, or with several and no number (`core.face_choice.choose_face`; its numbered contact sheet
    goes to ``sheet_dir``, by default the temporary folder)."""
    for number in (face_a, face_b):
        if number is not None and int(number) < 1:
            raise XfrError(f"face numbers start at 1 (1 = the largest face), not {number}")
    store.get_case(case_id)
    faces = _chosen_faces((path_a, path_b), (face_a, face_b), prealigned, sheet_dir)
    shas = import_photos(store, case_id, path_a, path_b, actor=actor)
    return store.add_comparison(case_id, shas[0], shas[1], face_index_a=faces[0], face_index_b=faces[1],
                                parameters={"prealigned": bool(prealigned)}, actor=actor)


def import_photos(store, case_id: int, path_a, path_b, *, actor: str | None = None) -> list[str]:
    """Copy both photos into the store for the case; their SHA-256s. An ImageError names the photo (A or B)."""
    shas = []
    for label, path in (("A", path_a), ("B", path_b)):
        try:
            shas.append(store.import_image(path, case_id=case_id, actor=actor))
        except ImageError as exc:  # say which of the two photos it is
            raise ImageError(f"Photo {label}: {exc}") from exc
    return shas


def comparison_results(store, comparison_id: int) -> tuple[list, int | None]:
    """A comparison's results, oldest first (no arrays), and the id of the one its report uses (None: none)."""
    results = store.list_results(comparison_id)
    chosen = store.report_result(comparison_id, include_blobs=False) if results else None
    return results, None if chosen is None else chosen.id


def _chosen_faces(paths, numbers, prealigned: bool, sheet_dir) -> list[int]:
    """0-based face indices (a pre-aligned crop is its own face: no detection)."""
    if prealigned:
        return [0, 0]
    import tempfile

    from .core.face_choice import choose_face

    return [choose_face(path, number, name=f"Photo {label} ({Path(path).name})", option=f"--face-{label.lower()} K",
                        sheet_dir=sheet_dir or tempfile.gettempdir())
            for label, path, number in zip("AB", paths, numbers)]


@dataclass
class CaseAnalysis:
    comparison: object                     # ComparisonRecord
    number: int                            # 1-based within the case
    outcome: AnalysisOutcome | None = None
    error: str | None = None               # one line when it failed


def analyse_case(store, case_id: int, *, comparison: int | None = None, model_path: str | None = None,
                 device: str | None = None, on_done: Callable[[CaseAnalysis], None] | None = None
                 ) -> list[CaseAnalysis]:
    """Analyse every comparison of a case that is not removed (or only comparison number `comparison`). A
    failure is recorded on its comparison and reported; the others still run."""
    from .core.errors import user_message

    chosen = ([comparison_by_number(store, case_id, comparison)] if comparison is not None
              else [c for c in store.list_comparisons(case_id) if not c.removed])
    cache, done = ModelCache(), []
    for comp in chosen:
        item = CaseAnalysis(comp, comp.number)
        try:
            model = cache.model(model_path, device)
            outcome = analyse_comparison(store, plan_analysis(store, comp.id, model_path=model_path, device=device),
                                         model, aligner=cache.aligner(model))
            if isinstance(outcome, FaceChoiceRequest):
                raise XfrError(f"{outcome.name} shows {len(outcome.boxes)} faces: choose one when adding the pair")
            item.outcome = outcome
        except Exception as exc:  # one line per failed comparison; analyse_comparison recorded it as its status
            item.error = user_message(exc)
        done.append(item)
        if on_done is not None:
            on_done(item)
    return done


def conclude(store, case_id: int, text: str, *, comparison: int | None = None, scale: str | None = None,
             author: str | None = None):
    """Record the case's conclusion, or a note on comparison number `comparison` (1-based)."""
    if not (text or "").strip():
        raise XfrError("a conclusion needs some text")
    comparison_id = None if comparison is None else comparison_by_number(store, case_id, comparison).id
    return store.set_conclusion(case_id, text.strip(), scale=scale, author=author, comparison_id=comparison_id)


# --- the bundled sample case ---------------------------------------------------------------------------------
def load_sample_case(path: Path | None = None) -> dict:
    """The bundled case file: ``{"number", "title", "examiner", "notes", "pairs": [(a, b, prealigned, label)]}``."""
    path = Path(path or SAMPLES_DIR / "case.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"the sample case {path} is missing or unreadable ({type(exc).__name__})") from None
    root = path.parent
    pairs = []
    for entry in data.get("pairs", []):
        if isinstance(entry, dict):
            a = entry.get("image_a") or entry.get("a")
            b = entry.get("image_b") or entry.get("b")
            pre = bool(entry.get("aligned") or entry.get("prealigned"))
            label = entry.get("label", "")
        else:
            a, b, pre, label = entry[0], entry[1], False, ""
        if a and b:
            pairs.append((root / a, root / b, pre, label))
    if not pairs:
        raise FileNotFoundError(f"the sample case {path} lists no image pairs")
    return {
        "number": str(data.get("case_number") or data.get("number") or "SAMPLE-0001"),
        "title": data.get("title", "Sample case"), "examiner": data.get("examiner", ""),
        "organisation": data.get("organisation", ""),
        "notes": data.get("description") or data.get("notes", ""), "pairs": pairs,
    }


def ensure_sample_case(store, path: Path | None = None):
    """The sample case with every pair its description names, created on first use: (case, comparisons).
    An older sample case that holds fewer pairs gets the missing ones added (the case text promises them)."""
    sample = load_sample_case(path)
    try:
        case = store.find_case(sample["number"])
    except StoreError:
        case = store.create_case(sample["number"], title=sample["title"], examiner=sample["examiner"],
                                 organisation=sample["organisation"], notes=sample["notes"])
    have = {(store.get_image(c.image_a).original_name, store.get_image(c.image_b).original_name)
            for c in store.list_comparisons(case.id)}
    for a, b, pre, _label in sample["pairs"]:
        if (Path(a).name, Path(b).name) not in have:
            add_pair(store, case.id, a, b, prealigned=pre)
    return store.get_case(case.id), store.list_comparisons(case.id)
