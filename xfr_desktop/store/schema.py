"""SQLAlchemy ORM classes for the latest schema (see :mod:`.migrations` for how the tables are created)."""
from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(Text, unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    examiner: Mapped[str] = mapped_column(Text, default="")
    organisation: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(String)
    modified_at: Mapped[str] = mapped_column(String)
    proposition_prosecution: Mapped[str] = mapped_column(Text, default="")  # v4; '' = the default wording
    proposition_defence: Mapped[str] = mapped_column(Text, default="")  # v4


class Image(Base):
    __tablename__ = "images"
    sha256: Mapped[str] = mapped_column(String, primary_key=True)
    original_name: Mapped[str] = mapped_column(Text)
    original_path: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String)
    ext: Mapped[str] = mapped_column(String)
    imported_at: Mapped[str] = mapped_column(String)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String, unique=True)
    card: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_at: Mapped[str] = mapped_column(String)


class Comparison(Base):
    __tablename__ = "comparisons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    image_a: Mapped[str] = mapped_column(ForeignKey("images.sha256"))
    image_b: Mapped[str] = mapped_column(ForeignKey("images.sha256"))
    face_index_a: Mapped[int] = mapped_column(Integer, default=0)
    face_index_b: Mapped[int] = mapped_column(Integer, default=0)
    model_sha256: Mapped[str | None] = mapped_column(String)
    model_name: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    status: Mapped[str] = mapped_column(String, default="new")
    created_at: Mapped[str] = mapped_column(String)
    status_message: Mapped[str | None] = mapped_column(Text)  # v2
    removed_at: Mapped[str | None] = mapped_column(String)  # v4: the row stays, the report lists it as removed
    removed_reason: Mapped[str | None] = mapped_column(Text)  # v4
    removed_by: Mapped[str | None] = mapped_column(Text)  # v4
    report_result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"))  # v4; None = first full analysis


class Result(Base):
    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"))
    created_at: Mapped[str] = mapped_column(String)
    parameters: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    decision: Mapped[bool] = mapped_column(Boolean)
    model_sha256: Mapped[str | None] = mapped_column(String)
    timings: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    # Blobs are large: loaded only when asked for.
    maps_npz: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    residuals_npz: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    faces_npz: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))  # v2
    model_name: Mapped[str | None] = mapped_column(Text)  # v2


class Conclusion(Base):
    __tablename__ = "conclusions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    comparison_id: Mapped[int | None] = mapped_column(ForeignKey("comparisons.id"))
    text: Mapped[str] = mapped_column(Text)
    scale: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String)
    case_id: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str | None] = mapped_column(String)
    object_id: Mapped[str | None] = mapped_column(String)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String)
    hash: Mapped[str] = mapped_column(String, unique=True)


class AuditCheckpoint(Base):  # v3
    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int | None] = mapped_column(Integer)
    last_entry_id: Mapped[int] = mapped_column(Integer)
    n_entries: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String)
    created_at: Mapped[str] = mapped_column(String)
    signer: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String)  # hex


class FeatureAssessment(Base):  # v4: append-only, the latest row per (comparison, feature) is current
    __tablename__ = "feature_assessments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"))
    feature: Mapped[str] = mapped_column(String)  # a key of core.morphology.FISWG_FEATURES
    value: Mapped[str] = mapped_column(String)  # similar | dissimilar | not_assessable
    note: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String)


class Annotation(Base):  # v4
    __tablename__ = "annotations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"))
    side: Mapped[str] = mapped_column(String)  # a | b
    kind: Mapped[str] = mapped_column(String)  # point | rect
    x: Mapped[float] = mapped_column(Float)  # pixels of the full-resolution stored photo (after EXIF orientation)
    y: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float, default=0.0)
    height: Mapped[float] = mapped_column(Float, default=0.0)
    label: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String)
    removed_at: Mapped[str | None] = mapped_column(String)
    removed_by: Mapped[str | None] = mapped_column(Text)


class ImageQuality(Base):  # v4: the latest row per (comparison, side) is current
    __tablename__ = "image_quality"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"))
    side: Mapped[str] = mapped_column(String)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"))
    data: Mapped[str] = mapped_column(Text)  # JSON (core.image_quality)
    created_at: Mapped[str] = mapped_column(String)


class Review(Base):  # v4: ACE-V verification, append-only
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"))
    reviewer: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String)  # agree | disagree
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(String)


class Preference(Base):  # v4
    __tablename__ = "preferences"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(String)
