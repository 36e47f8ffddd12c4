"""Plain, frozen copies of database rows handed to callers (safe across threads, no lazy loading)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.arrays import unpack_arrays
from ..core.decision import decision_label


@dataclass(frozen=True)
class CaseRecord:
    id: int
    number: str
    title: str
    examiner: str
    organisation: str
    notes: str
    created_at: str
    modified_at: str
    n_comparisons: int = 0
    proposition_prosecution: str = ""   # '' = the default wording (core.evaluative.propositions)
    proposition_defence: str = ""


@dataclass(frozen=True)
class ImageRecord:
    sha256: str
    original_name: str
    original_path: str | None
    size: int
    width: int | None
    height: int | None
    format: str | None
    ext: str
    imported_at: str


@dataclass(frozen=True)
class ComparisonRecord:
    id: int
    case_id: int
    image_a: str
    image_b: str
    face_index_a: int
    face_index_b: int
    model_sha256: str | None
    model_name: str | None
    parameters: dict
    status: str
    status_message: str | None
    created_at: str
    n_results: int = 0
    removed_at: str | None = None       # set when the examiner removed it (the row stays; reports list it)
    removed_reason: str | None = None
    removed_by: str | None = None
    report_result_id: int | None = None  # the result chosen for reports; None = the first full analysis
    number: int = 0                      # 1-based within its case, by creation order, removed ones included

    @property
    def removed(self) -> bool:
        return self.removed_at is not None


@dataclass(frozen=True)
class ResultRecord:
    id: int
    comparison_id: int
    created_at: str
    score: float
    threshold: float
    decision: bool
    parameters: dict
    timings: dict
    model_sha256: str | None
    model_name: str | None
    maps_npz: bytes | None = field(default=None, repr=False)
    residuals_npz: bytes | None = field(default=None, repr=False)
    faces_npz: bytes | None = field(default=None, repr=False)

    @property
    def decision_label(self) -> str:
        return decision_label(self.decision)

    @property
    def analysed_at(self) -> str:
        """When the analysis ran (kept by recombinations); results saved before it was recorded: the save time."""
        return str((self.parameters or {}).get("analysed_at") or self.created_at)

    @property
    def is_full_analysis(self) -> bool:
        """An analysis of every channel as computed (not a recombination at another τ, top-k or channel subset)."""
        p = self.parameters or {}
        return p.get("derived_from_result") is None and p.get("top_k") is None and p.get("channels") is None

    @property
    def residuals(self) -> bytes | None:
        """The caller's compressed residual stack, exactly as saved."""
        return self.residuals_npz

    def maps(self) -> dict:
        """``{"a": {"H","S","S_pos","S_neg","weights"}, "b": {...}}`` (whatever was saved); {} when not loaded."""
        return unpack_arrays(self.maps_npz) if self.maps_npz else {}

    def faces(self) -> dict:
        """``{"a": {"aligned","reconstruction","landmarks","box"}, "b": {...}}`` (whatever was saved); {} if none."""
        return unpack_arrays(self.faces_npz) if self.faces_npz else {}


@dataclass(frozen=True)
class ConclusionRecord:
    id: int
    case_id: int
    comparison_id: int | None
    text: str
    scale: str | None
    notes: str
    author: str
    created_at: str


@dataclass(frozen=True)
class FeatureAssessmentRecord:
    id: int
    comparison_id: int
    feature: str        # core.morphology.FISWG_FEATURES key
    value: str          # similar | dissimilar | not_assessable
    note: str
    author: str
    created_at: str


@dataclass(frozen=True)
class AnnotationRecord:
    id: int
    comparison_id: int
    side: str           # "a" | "b"
    kind: str           # "point" | "rect"
    x: float            # pixels of the full-resolution photo as decoded (EXIF orientation applied)
    y: float
    width: float        # 0 for points
    height: float
    label: str
    author: str
    created_at: str
    removed_at: str | None = None
    removed_by: str | None = None


@dataclass(frozen=True)
class ImageQualityRecord:
    id: int
    comparison_id: int
    side: str
    image_sha256: str
    data: dict          # core.image_quality's measurements, warnings and provenance
    created_at: str


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    comparison_id: int
    reviewer: str
    verdict: str        # "agree" | "disagree"
    note: str
    created_at: str


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    path: str
    sha256: str
    card: str | None
    active: bool
    registered_at: str


@dataclass(frozen=True)
class AuditRecord:
    id: int
    time: str
    actor: str
    action: str
    case_id: int | None
    object_type: str | None
    object_id: str | None
    details: str  # canonical JSON text, exactly as hashed
    prev_hash: str
    hash: str

    @property
    def details_dict(self) -> dict:
        import json
        try:
            value = json.loads(self.details)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"value": value}
