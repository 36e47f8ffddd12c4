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
