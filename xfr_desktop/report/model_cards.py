"""What a report says about the model: its name, fingerprint and card, taken only from a card the report can vouch
for (docs/integrity.md, "Model cards in a report"): the bundled card of the model file shipped in models/ with the
result's SHA-256, else a registry card whose newest ``model.registered`` entry records the card's SHA-256 and, when a
signed checkpoint covers a registration, the same card as the newest covered one.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

from ..core.errors import XfrError
from ..core.fileio import file_sha256
from .card_markdown import sections_until, table_after_heading
from .report_data import ModelInfo

CARD_MAX_CHARS = 200_000     # a card is read whole (for its evaluation table) but never without bound
CARD_SECTIONS = 3            # a card's excerpt ends before its third heading: title, summary, provenance


def _models():
    """core.model, imported on first use: it imports torch (seconds), and a report needs only its paths."""
    from ..core import model

    return model


def read_card(path: str | os.PathLike) -> str:
    """A model card's Markdown; '' when unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(CARD_MAX_CHARS)
    except OSError:
        return ""


def card_excerpt(card: str) -> str:
    return sections_until(card, CARD_SECTIONS) if card else ""


def fidelity_findings(card: str) -> list[str]:
    """What the card's evaluation table says about this model, one line a measure ('measure: value (goal met:
    no)'). Read from the table under the card's 'Evaluation' heading, in its 'this model' column; [] if none."""
    rows = table_after_heading(card, "evaluation")
    if len(rows) < 2:
        return []

    def plain(cell: str) -> str:
        return re.sub(r"[*`]", "", cell).strip()

    header = [plain(c).lower() for c in rows[0]]
    col = next((i for i, h in enumerate(header) if "this model" in h), None)
    goal = next((i for i, h in enumerate(header) if "goal met" in h), None)
    if col is None:
        return []
    out = []
    for row in rows[1:]:
        if len(row) <= col or not plain(row[col]) or plain(row[col]) in ("–", "-"):
            continue
        met = plain(row[goal]) if goal is not None and goal < len(row) else ""
        out.append(f"{plain(row[0])}: {plain(row[col])}" + (f" (goal met: {met})" if met not in ("", "–", "-")
                                                              else ""))
    return out


def bundled_card_path(model_path) -> Path | None:
    """The card of a model file shipped in models/: ``<stem>.md`` beside it, else models/README.md for the default
    model. None for any other file."""
    models = _models()
    try:
        path = Path(model_path).resolve()
        if not model_path or path.parent != models.MODELS_DIR.resolve():
            return None
        own = path.with_suffix(".md")
        if own.is_file():
            return own
        return models.MODELS_DIR / "README.md" if path == models.default_model_path().resolve() else None
    except OSError:
        return None


def _bundled_card(model_path) -> str:
    card = bundled_card_path(model_path)
    return read_card(card) if card is not None else ""


def model_info(model=None, *, name: str = "", sha256: str = "") -> ModelInfo:
    """Name, sha256 and, for a bundled model, the first sections of its card and its evaluation."""
    path = getattr(model, "path", None) or ""
    spec = getattr(model, "spec", None) or {}
    card = _bundled_card(path)
    return ModelInfo(name=name or (Path(path).name if path else spec.get("name", "")),
                     sha256=sha256 or (getattr(model, "sha256", None) or ""),
                     card_excerpt=card_excerpt(card), path=str(path), fidelity=fidelity_findings(card))


def stored_model_info(store, sha256: str, name: str) -> ModelInfo:
    """The card of a stored result's model: the bundled card of the model file with that sha256, else the
    registry's card only when its `model.registered` entry records the card's hash (a row inserted or edited
    behind the app's back must never speak as the card)."""
    record = None
    if sha256:
        try:
            record = store.get_model(sha256)
        except XfrError:
            pass
    name, path = name or (record.name if record else ""), str(record.path or "") if record else ""
    card, note = _bundled_card(bundled_models_by_sha256().get(sha256, "")), ""
    if not card and record is not None and record.card:
        card, note = _registry_card(store, sha256, record.card)
    card = card[:CARD_MAX_CHARS]
    return ModelInfo(name=name, sha256=sha256, card_excerpt=card_excerpt(card), path=path,
                     fidelity=fidelity_findings(card), card_note=note)


UNVERIFIED_CARD = ("The model's card is not verified (it is neither the bundled card of this model file nor "
                   "recorded in the audit trail), so it is not shown.")
UNSIGNED_CARD = ("The model's card is recorded in the audit trail (entry #{entry}), but no signed checkpoint covers "
                 "that entry: only the unsigned chain vouches for the card.")
REBOUND_CARD = ("The model's card was registered again after the last signed checkpoint (entry #{entry}), and the "
                "signed registration (entry #{signed}) recorded another card, so it is not shown.")


def _registry_card(store, sha256: str, card) -> tuple[str, str]:
    """(the registry card to print, the note to print with it) from the `model.registered` entries of the model
    (system chain, where the app writes them): the newest must record the card's SHA-256, and the newest one a
    signed checkpoint covers must record the same card (a card re-bound after it is not shown; one no checkpoint
    covers yet is shown, with a note saying so)."""
    # imported here: SQLAlchemy and the store take about a second to load, which signing or verifying a report
    # (this package's other users) should not pay; only a registry card needs them
    from sqlalchemy import select

    from ..store.checkpoints import signed_through
    from ..store.schema import AuditLog

    if not isinstance(card, str):
        return "", UNVERIFIED_CARD
    with store.session(write=False) as s:
        entries = s.execute(select(AuditLog.id, AuditLog.details).where(
            AuditLog.action == "model.registered", AuditLog.object_id == sha256, AuditLog.case_id.is_(None))
            .order_by(AuditLog.id.desc())).all()
        signed = signed_through(s, None) if entries else 0
    digest = hashlib.sha256(card.encode("utf-8")).hexdigest()
    recorded = [(entry_id, _card_sha256(details)) for entry_id, details in entries]
    if not recorded or recorded[0][1] != digest:
        return "", UNVERIFIED_CARD
    covered = next(((entry_id, sha) for entry_id, sha in recorded if entry_id <= signed), None)
    if covered is None:
        return card, UNSIGNED_CARD.format(entry=recorded[0][0])
    if covered[1] != digest:
        return "", REBOUND_CARD.format(entry=recorded[0][0], signed=covered[0])
    return card, ""


def _card_sha256(details) -> str | None:
    try:
        return json.loads(details or "{}").get("card_sha256")
    except (ValueError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def bundled_models_by_sha256() -> dict[str, str]:
    """A result stored by the app names its model by sha256 only; every model file shipped in models/ (the default
    and earlier bundled models kept for their stored results) is recognised by its hash."""
    found = {}
    for path in sorted(_models().MODELS_DIR.glob("*.pt")):
        try:
            found[file_sha256(path)] = str(path)
        except OSError:
            continue
    return found
