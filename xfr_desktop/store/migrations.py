"""Schema versions as ordered, raw-SQL upgrade steps. A new database runs every step from 0, an old one the
missing steps, so both end up with the same tables. The ORM classes in :mod:`.schema` mirror the latest version.

To change the schema: append a step to ``UPGRADE_STEPS`` (never edit a released one), bump nothing else, update
:mod:`.schema`, and add a test that opens a database of the previous version.
"""
from __future__ import annotations

# Version 1: the first released schema. Kept verbatim: tests build v1 databases from it.
SCHEMA_V1_SQL: list[str] = [
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE cases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        number TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        examiner TEXT NOT NULL DEFAULT '',
        organisation TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL)""",
    """CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,
        original_name TEXT NOT NULL,
        original_path TEXT,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        ext TEXT NOT NULL,
        imported_at TEXT NOT NULL)""",
    """CREATE TABLE models (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        card TEXT,
        active INTEGER NOT NULL DEFAULT 0,
        registered_at TEXT NOT NULL)""",
    """CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        image_a TEXT NOT NULL REFERENCES images(sha256),
        image_b TEXT NOT NULL REFERENCES images(sha256),
        face_index_a INTEGER NOT NULL DEFAULT 0,
        face_index_b INTEGER NOT NULL DEFAULT 0,
        model_sha256 TEXT,
        model_name TEXT,
        parameters TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'new',
        created_at TEXT NOT NULL)""",
    "CREATE INDEX ix_comparisons_case ON comparisons(case_id)",
    """CREATE TABLE results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        created_at TEXT NOT NULL,
        parameters TEXT NOT NULL DEFAULT '{}',
        score REAL NOT NULL,
        threshold REAL NOT NULL,
        decision INTEGER NOT NULL,
        model_sha256 TEXT,
        timings TEXT NOT NULL DEFAULT '{}',
        maps_npz BLOB,
        residuals_npz BLOB)""",
    "CREATE INDEX ix_results_comparison ON results(comparison_id)",
    """CREATE TABLE conclusions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        comparison_id INTEGER REFERENCES comparisons(id),
        text TEXT NOT NULL,
        scale TEXT,
        notes TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    "CREATE INDEX ix_conclusions_case ON conclusions(case_id)",
    # No foreign key on case_id: the trail must outlive anything it describes.
    """CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        case_id INTEGER,
        object_type TEXT,
        object_id TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE)""",
    "CREATE INDEX ix_audit_log_case ON audit_log(case_id, id)",
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be changed'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be deleted'); END""",
    "INSERT INTO schema_version (version) VALUES (1)",
]

# Version 2: results keep the aligned crops, reconstructions, landmarks and boxes (faces_npz) and the model's
# name; comparisons keep why they failed or were cancelled (status_message).
SCHEMA_V2_SQL: list[str] = [
    "ALTER TABLE results ADD COLUMN faces_npz BLOB",
    "ALTER TABLE results ADD COLUMN model_name TEXT",
    "ALTER TABLE comparisons ADD COLUMN status_message TEXT",
]

# Version 3: signed checkpoints of the audit chain heads (append-only like the log). Audit entries written from
# this version on carry the digest of the row they record (store/integrity.py); rows saved before the upgrade
# are adopted by one "integrity.adopted" entry per chain, written by the Store in the upgrade's transaction.
SCHEMA_V3_SQL: list[str] = [
    """CREATE TABLE audit_checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER,
        last_entry_id INTEGER NOT NULL,
        n_entries INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        signer TEXT NOT NULL,
        certificate_pem TEXT NOT NULL,
        signature TEXT NOT NULL)""",
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: checkpoints cannot be changed'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: checkpoints cannot be deleted'); END""",
]

# Version 4: the examiner's workflow. Cases keep their two propositions ('' = the defaults of
# core/evaluative.py); comparisons can be removed (the row stays, with when, why and by whom) and name the result a
# report uses (NULL = the first full analysis); per comparison: FISWG feature assessments and ACE-V reviews
# (append-only: the latest row per feature / reviewer is current), annotations on the full-resolution photos
# (removable), image quality and provenance per side (JSON, the latest is current); preferences of this data
# folder (the examiner's name used as the actor of every audited action).
SCHEMA_V4_SQL: list[str] = [
    "ALTER TABLE cases ADD COLUMN proposition_prosecution TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE cases ADD COLUMN proposition_defence TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE comparisons ADD COLUMN removed_at TEXT",
    "ALTER TABLE comparisons ADD COLUMN removed_reason TEXT",
    "ALTER TABLE comparisons ADD COLUMN removed_by TEXT",
    "ALTER TABLE comparisons ADD COLUMN report_result_id INTEGER REFERENCES results(id)",
    """CREATE TABLE feature_assessments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        feature TEXT NOT NULL,
        value TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    "CREATE INDEX ix_feature_assessments_comparison ON feature_assessments(comparison_id, feature, id)",
    """CREATE TABLE annotations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        side TEXT NOT NULL,
        kind TEXT NOT NULL,
        x REAL NOT NULL,
        y REAL NOT NULL,
        width REAL NOT NULL DEFAULT 0,
        height REAL NOT NULL DEFAULT 0,
        label TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL,
        created_at TEXT NOT NULL,
        removed_at TEXT,
        removed_by TEXT)""",
    "CREATE INDEX ix_annotations_comparison ON annotations(comparison_id, id)",
    """CREATE TABLE image_quality (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        side TEXT NOT NULL,
        image_sha256 TEXT NOT NULL REFERENCES images(sha256),
        data TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    "CREATE INDEX ix_image_quality_comparison ON image_quality(comparison_id, side, id)",
    """CREATE TABLE reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        reviewer TEXT NOT NULL,
        verdict TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL)""",
    "CREATE INDEX ix_reviews_comparison ON reviews(comparison_id, id)",
    """CREATE TABLE preferences (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
]

# UPGRADE_STEPS[i] takes a database from version i to version i + 1.
UPGRADE_STEPS: list[list[str]] = [SCHEMA_V1_SQL, SCHEMA_V2_SQL, SCHEMA_V3_SQL, SCHEMA_V4_SQL]
SCHEMA_VERSION = len(UPGRADE_STEPS)


def upgrade_statements(from_version: int, to_version: int = SCHEMA_VERSION) -> list[str]:
    """SQL statements that take a database from `from_version` to `to_version` (version row included)."""
    statements: list[str] = []
    for version in range(from_version, to_version):
        statements.extend(UPGRADE_STEPS[version])
    if from_version < to_version:
        statements.append(f"UPDATE schema_version SET version = {int(to_version)}")
    return statements


def create_database_at_version(db_path, version: int) -> None:
    """Write an empty database of an older schema `version` with plain sqlite3 (for upgrade tests)."""
    import sqlite3

    connection = sqlite3.connect(db_path)
    try:
        with connection:
            for statement in upgrade_statements(0, version):
                connection.execute(statement)
    finally:
        connection.close()
