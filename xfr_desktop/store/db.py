"""The database connection: engine with SQLite pragmas, transactional sessions, schema creation and upgrades."""
from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, event, exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .. import paths
from ..core.errors import StoreError
from . import private
from .migrations import SCHEMA_VERSION, upgrade_statements

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
_BEGIN_OPTION = "xfr_begin"


def describe_db_error(exc: BaseException, where: Path) -> str:
    """One line for people from a sqlite/SQLAlchemy error."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "readonly" in text or "read-only" in text:
        return f"the data folder {where} is read-only: nothing was saved (choose a writable folder with --data-dir)"
    if "disk is full" in text or "database or disk is full" in text:
        return f"the disk holding {where} is full: nothing was saved (free some space and try again)"
    if "unable to open database" in text:
        return f"cannot open the database in {where} (the folder is missing or not writable)"
    if "locked" in text or "busy" in text:
        return "the database is busy (another XFR Desktop is writing to it): try again"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return f"the database {where} is damaged or not an XFR database"
    if "append-only" in text:
        return "the audit trail is append-only: entries cannot be changed or deleted"
    return f"database error in {where}: {getattr(exc, 'orig', None) or exc}"


def _on_connect(dbapi_connection, _record) -> None:
    # Let us issue BEGIN ourselves (pysqlite's implicit transactions ignore BEGIN IMMEDIATE and DDL).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # a committed result survives power loss, not just a crash
    finally:
        cursor.close()


def _on_connect_read_only(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _on_begin(connection) -> None:
    # Writers take the write lock up front so two threads never read the same audit-chain head.
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Engine + sessionmaker over ``<data_dir>/xfr.sqlite``; creates or upgrades the schema when opened."""

    def __init__(self, data_dir: str | os.PathLike | None = None, *, create: bool = True):
        """``create=False`` (reading commands): never create a database, and open it read-only when the folder or
        file is not writable (a copy on read-only media, another examiner's folder)."""
        self.data_dir = paths.resolve_data_dir(data_dir)
        self.db_path = paths.database_path(self.data_dir)
        self.images_dir = paths.images_dir(self.data_dir)
        if not create and not self.db_path.is_file():
            raise StoreError(f"there is no case database in {self.data_dir} (nothing was saved there yet; check "
                             "--data-dir)")
        self.read_only = not create and not all(os.access(p, os.W_OK) for p in (self.data_dir, self.db_path))
        if not self.read_only:
            self._prepare_folder()
        self.engine: Engine = create_engine(
            self._url(), connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(self.engine, "connect", _on_connect_read_only if self.read_only else _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        self._write_engine = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._sessions = sessionmaker(expire_on_commit=False)
        try:
            self._upgrade_schema()
        except BaseException:
            self.engine.dispose()
            raise

    def _prepare_folder(self) -> None:
        try:
            private.make_dir(self.data_dir)
            private.make_dir(self.images_dir)
            private.create_file(self.db_path)
        except OSError as exc:
            raise StoreError(f"cannot create the data folder {self.data_dir}: {exc.strerror or exc}") from exc
        if private.tighten(self.data_dir):
            log.warning("made the data folder %s private to its owner (its files were readable by others)",
                        self.data_dir)

    def _url(self) -> str:
        if not self.read_only:
            return f"sqlite:///{self.db_path}"
        # A folder we cannot write cannot hold SQLite's -shm file either: then the file is opened as immutable
        # (a WAL left behind by a crash is not read; the folder's owner recovers it by opening it once).
        immutable = "" if os.access(self.data_dir, os.W_OK) else "&immutable=1"
        return f"sqlite:///file:{quote(str(self.db_path))}?mode=ro{immutable}&uri=true"

    # --- sessions -------------------------------------------------------------------------------------------
    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """A new Session in its own transaction: committed on normal exit, rolled back on any error.

        ``write=True`` starts with BEGIN IMMEDIATE (takes the write lock at once, waiting up to the busy timeout);
        ``write=False`` is for reads. Use one session per thread; database errors become ``StoreError``.
        """
        session = self._sessions(bind=self._write_engine if write else self.engine)
        try:
            yield session
            session.commit()
        except sa_exc.DBAPIError as exc:
            self._safe_rollback(session)
            raise StoreError(describe_db_error(exc, self.data_dir)) from exc
        except BaseException:
            self._safe_rollback(session)
            raise
        finally:
            session.close()

    @staticmethod
    def _safe_rollback(session: Session) -> None:
        try:
            session.rollback()
        except sa_exc.SQLAlchemyError:  # the connection may be gone (disk error); SQLite rolls back itself
            pass

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- schema ---------------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """0 for an empty database; raises StoreError for a file that is not an XFR database."""
        with self._connection() as conn:
            return self._read_version(conn)

    @contextmanager
    def _connection(self):
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa_exc.DBAPIError as exc:
            raise StoreError(describe_db_error(exc, self.data_dir)) from exc

    def _read_version(self, conn) -> int:
        tables = {row[0] for row in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if not tables:
            return 0
        if "schema_version" not in tables:
            raise StoreError(f"{self.db_path} is not an XFR Desktop database (no schema_version table)")
        row = conn.exec_driver_sql("SELECT MAX(version) FROM schema_version").first()
        return int(row[0] or 0)

    def _upgrade_schema(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} was written by a newer XFR Desktop (schema {version}, this version "
                             f"reads up to {SCHEMA_VERSION}): update XFR Desktop")
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(f"{self.db_path} is from an older XFR Desktop (schema {version}) and cannot be upgraded "
                             "where it is (read-only): open it once from a writable folder")
        if version > 0:
            self._backup(version)
        try:
            with self._write_engine.begin() as conn:  # one transaction: all steps or none
                version = self._read_version(conn)  # another process may have upgraded meanwhile
                for statement in upgrade_statements(version, SCHEMA_VERSION) if version < SCHEMA_VERSION else []:
                    conn.exec_driver_sql(statement)
                if 0 < version < SCHEMA_VERSION:
                    self._after_upgrade(conn, version)
        except sa_exc.DBAPIError as exc:
            raise StoreError(describe_db_error(exc, self.data_dir)) from exc
        if version:
            log.info("upgraded %s from schema %d to %d", self.db_path, version, SCHEMA_VERSION)

    def _after_upgrade(self, conn, from_version: int) -> None:
        """Data steps of an upgrade, in its transaction (the Store adopts old rows into the audit chain)."""

    def _backup(self, version: int) -> Path:
        """Copy the database (consistently, via SQLite's backup API) before upgrading it."""
        target = self.db_path.with_name(f"{self.db_path.name}.v{version}.bak")
        try:
            private.create_file(target)
            source = sqlite3.connect(self.db_path)
            try:
                dest = sqlite3.connect(target)
                try:
                    source.backup(dest)
                finally:
                    dest.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot back up {self.db_path} before upgrading it: {exc}") from exc
        return target
