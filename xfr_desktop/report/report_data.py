"""The data of a case report: plain dataclasses (no reportlab, no store), filled by :mod:`.from_store` (a stored
case) or :mod:`.from_explanation` (``xfr explain`` and the demo) and laid out by :mod:`.pdf_sections`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import __version__
from ..core.errors import XfrError
from ..core.imageio import Photo

LIMITATIONS = (
    "This report documents the output of an automated face-recognition model and of an explanation method; it is "
    "an aid to, not a substitute for, the examiner's own comparison. The score and the likelihood ratio depend on "
    "image quality (resolution, pose, illumination, occlusion, compression), on the face detector and alignment, "
    "and on how well the reference population used for calibration resembles the population relevant to the case; "
    "LRs were calibrated on public web photographs of mostly adult celebrities (LFW) and may be miscalibrated for "
    "other populations or image types. Likelihood ratios are clipped to the range the reference set can support. "
    "The heat maps (S, S⁺, S⁻) show which image regions the model's embedding channels respond to and how they "
    "push the score above or below the decision threshold; they describe the model, not facial anatomy, and do "
    "not establish identity on their own. The model may perform differently across demographic groups. The "
    "signing time is taken from the signing computer's clock and is not certified by a timestamp authority."
)


class ReportError(XfrError):
    """A report cannot be built (missing data, unreadable stored result, unwritable output...)."""


@dataclass
class ImageInfo:
    label: str                                # "A" / "B"
    name: str = ""                            # original file name
    sha256: str = ""
    original: np.ndarray | None = None        # RGB uint8, the photograph (thumbnail source)
    box: Sequence[float] | None = None        # x, y, w, h of the detected face in the original photo's pixels
    landmarks: np.ndarray | None = None       # (5, 2) in the original photo's pixels
    aligned: np.ndarray | None = None         # RGB uint8 model input
    reconstruction: np.ndarray | None = None  # RGB uint8 decoder output
    scale: int = 1                            # the original's pixels per pixel of `original` (huge JPEGs: 2, 4, 8)

    @property
    def photo(self) -> Photo | None:
        """`original` as a :class:`Photo`, which moves marks from the original's pixels onto it."""
        return None if self.original is None else Photo(self.original, self.scale)


@dataclass
class ChannelInfo:
    index: int
    weight: float                  # F̂_A[i]F̂_B[i] − T: > 0 pushes towards match
    product: float                 # F̂_A[i]F̂_B[i]
    region_a: np.ndarray | None = None   # RGB uint8 overlay of the channel's residual on A
    region_b: np.ndarray | None = None


@dataclass
class ModelInfo:
    name: str = ""
    sha256: str = ""
    card_excerpt: str = ""        # Markdown: the card's first sections; '' when no card is vouched for
    path: str = ""
    fidelity: list[str] = field(default_factory=list)   # the card's evaluation of this model, one line a measure
    card_note: str = ""           # why no card is shown, when the store holds one that is not verified


@dataclass
class ComparisonSection:
    title: str
    image_a: ImageInfo
    image_b: ImageInfo
    score: float
    threshold: float
    decision_label: str
    parameters: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)      # {"a": {"S", "S_pos", "S_neg"}, "b": {...}} H×W float32
    similar: list[ChannelInfo] = field(default_factory=list)
    dissimilar: list[ChannelInfo] = field(default_factory=list)
    n_channels_used: int | None = None
    n_channels: int | None = None
    lr: float | None = None
    lr_verbal: str | None = None
    analysed_at: str = ""
    model_sha256: str = ""
    conclusion: str = ""                          # examiner's conclusion for this comparison, if any
    result_id: int | None = None                  # the stored result shown, and how it was chosen
    result_choice: str = ""
    lr_statement: object = None                   # core.evaluative.LRStatement (two digits, bound at a limit)
    calibration_note: str = ""                    # what the LR rests on
    model_decision: object = None                 # core.evaluative.ModelDecision ("model decision at τ = …")
    features: list[tuple[str, str, str, str]] = field(default_factory=list)   # FISWG label, value, note, author
    annotations: dict = field(default_factory=dict)   # {"a": [AnnotationRecord], "b": [...]} on the photos
    quality: dict = field(default_factory=dict)       # {"a": image_quality dict, "b": ...}
    reviews: list = field(default_factory=list)       # ReviewRecord, oldest first (ACE-V verification)
    number: int = 1                                   # the comparison's number in its case (ComparisonRecord)


@dataclass
class UnreportedComparison:
    """A comparison of the case that has no result in the report (failed, never analysed, removed), and why."""
    number: int
    title: str
    status: str
    reason: str = ""


@dataclass
class ReportData:
    case_number: str
    title: str = ""
    examiner: str = ""
    organisation: str = ""
    case_created: str = ""
    case_modified: str = ""
    generated_at: str = ""                        # local time with offset; filled at render time when empty
    software_version: str = __version__
    model: ModelInfo = field(default_factory=ModelInfo)
    calibration: dict | None = None               # method, n_genuine, n_impostor, cllr, cllr_min, reference
    comparisons: list[ComparisonSection] = field(default_factory=list)
    unreported: list[UnreportedComparison] = field(default_factory=list)
    conclusion: str = ""                          # the case-level conclusion (comparison notes are per section)
    conclusion_scale: str = ""
    conclusion_notes: str = ""
    conclusion_author: str = ""
    conclusion_time: str = ""
    case_notes: str = ""
    audit: list[dict] = field(default_factory=list)   # id, time, actor, action, object, details (pairs), hash
    audit_status: str = ""                        # the chain's verification at export time
    limitations: str = LIMITATIONS
    propositions: tuple[str, str] = ("", "")      # (Hp, Hd) of the case; defaults from core.evaluative
