"""Report data from the case store: per comparison the result the examiner chose (else the first full analysis),
with its photos, stored LR, calibration, the examiner's work and reviews; the comparisons without a result and why;
the case's conclusion and its verified audit trail. No model is needed.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..core.arrays import unpack_arrays
from ..core.errors import XfrError
from ..core.evaluative import case_propositions, lr_statement, result_model_decision
from ..core.morphology import FEATURE_LABELS, VALUE_LABELS
from ..core.serialize import explanation_from_result
from .audit_trail import audit_rows, audit_status
from .calibration_lookup import calibration_note, calibration_summary, find_calibration, stored_lr
from .from_explanation import TOP_CHANNELS, comparison_from_explanation
from .images import load_original
from .model_cards import stored_model_info
from .report_data import ComparisonSection, ImageInfo, ReportData, ReportError, UnreportedComparison


def _comparison_section(store, case_id: int, n: int, comp, record, calibration, k: int):
    """The report section of one stored comparison's latest result, and the calibration its LR came from."""
    faces = {}
    if record.faces_npz:
        try:
            faces = unpack_arrays(record.faces_npz)
        except Exception:  # noqa: BLE001 - a damaged blob costs the pictures, not the report
            faces = {}
    images = []
    for label, sha, side in (("A", comp.image_a, "a"), ("B", comp.image_b, "b")):
        meta = store.get_image(sha)
        f = faces.get(side, {})
        photo = load_original(store, sha)
        images.append(ImageInfo(label=label, name=meta.original_name or "", sha256=sha,
                                original=None if photo is None else photo.pixels, box=f.get("box"),
                                landmarks=f.get("landmarks"), aligned=f.get("aligned"),
                                reconstruction=f.get("reconstruction"), scale=1 if photo is None else photo.scale))
    cal = find_calibration(record.model_sha256, calibration)
    lr = stored_lr(record.parameters) or (cal.describe(record.score) if cal is not None else None)
    concl = store.latest_conclusion(case_id, comparison_id=comp.id)
    title = _comparison_title(n, images[0].name or comp.image_a[:12], images[1].name or comp.image_b[:12])
    try:
        result = explanation_from_result(record)
    except (ValueError, KeyError) as exc:
        raise ReportError(f"the stored result of comparison {n} cannot be read ({exc}); "
                          f"analyse it again") from None
    section = comparison_from_explanation(
        result, title=title, image_a=images[0], image_b=images[1], lr=lr, parameters=record.parameters,
        analysed_at=_analysis_time(record), model_sha256=record.model_sha256 or "",
        conclusion=concl.text if concl is not None and concl.comparison_id == comp.id else "", k=k)
    # the stored decision is the one the examiner saw
    section.score, section.threshold, section.decision_label = record.score, record.threshold, \
        record.decision_label
    section.number = n
    _add_evaluation(section, record, cal, case_propositions(store.get_case(case_id)))
    _add_examination(store, section, comp)
    return section, cal


def _add_evaluation(section: ComparisonSection, record, cal, propositions: tuple[str, str]) -> None:
    """The LR as the report states it (its verbal equivalent naming the case's propositions), what it rests on,
    and the model's decision kept apart."""
    stored = (record.parameters or {}).get("likelihood_ratio")
    limits = tuple(10 ** b for b in cal.log10_lr_bounds) if cal is not None else None
    section.lr_statement = lr_statement(stored if isinstance(stored, dict) else section.lr, limits, propositions)
    if section.lr_statement is not None:   # the technical table's words name the same propositions
        section.lr_verbal = section.lr_statement.verbal
    about = stored.get("calibration") if isinstance(stored, dict) else None
    if about and cal is not None and about.get("created_at") == cal.created_at:
        about = {**about, "reference": cal.reference}   # the same calibration: named as its file names it now
    section.calibration_note = calibration_note(about or calibration_summary(cal))
    section.model_decision = result_model_decision(record)


def _add_examination(store, section: ComparisonSection, comp) -> None:
    """The examiner's own work on the comparison: FISWG features, annotations, photo quality, reviews."""
    for key, a in store.feature_assessments(comp.id).items():
        section.features.append((FEATURE_LABELS.get(key, key), VALUE_LABELS.get(a.value, a.value), a.note,
                                 a.author))
    section.annotations = {side: store.list_annotations(comp.id, side=side) for side in "ab"}
    for side in "ab":
        q = store.image_quality(comp.id, side)
        if q is not None:
            section.quality[side] = q.data
    section.reviews = store.list_reviews(comp.id)


def _analysis_time(record) -> str:
    """When the analysis ran (kept by recombinations), else the save time marked as such (older results)."""
    recorded = (record.parameters or {}).get("analysed_at")
    return record.analysed_at if recorded else f"{record.analysed_at} (saved; analysis time not recorded)"


def _comparison_title(n: int, name_a: str, name_b: str) -> str:
    return f"Comparison {n}: {name_a} vs {name_b}"


def _unreported(store, n: int, comp) -> UnreportedComparison:
    """Why ``comp`` has no section: removed (by whom, when, why) or never successfully analysed."""
    names = []
    for sha in (comp.image_a, comp.image_b):
        try:
            names.append(store.get_image(sha).original_name or sha[:12])
        except XfrError:
            names.append(sha[:12])
    title = _comparison_title(n, *names)
    if getattr(comp, "removed", False):
        return UnreportedComparison(number=n, title=title, status="removed", reason=(
            f"removed by {comp.removed_by or '?'} on {_short_utc(comp.removed_at)}: {comp.removed_reason}"))
    reason = {"new": "not analysed yet", "running": "analysis did not finish", "cancelled": "analysis cancelled",
              "failed": "analysis failed"}.get(comp.status, comp.status)
    return UnreportedComparison(number=n, title=title, status=comp.status,
                                reason=reason + (f": {comp.status_message}" if comp.status_message else ""))


def _short_utc(iso: str | None) -> str:
    try:
        return datetime.fromisoformat(str(iso)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(iso or "?")


def _report_results(store, comparisons) -> dict[int, tuple]:
    """{comparison id: (ResultRecord, which of its results it is and why)} for the comparisons reported: the
    examiner's choice (``xfr report --result N`` or the app), else the first full analysis."""
    out = {}
    for comp in comparisons:
        if getattr(comp, "removed", False):
            continue
        record = store.report_result(comp.id)
        if record is None:
            continue
        ids = [r.id for r in store.list_results(comp.id)]
        how = ("chosen by the examiner" if comp.report_result_id is not None else
               "the first full analysis" if record.is_full_analysis else "the first result (no full analysis)")
        out[comp.id] = (record, f"result {ids.index(record.id) + 1} of {len(ids)}, {how}")
    return out


def build_report_for_case(store, case_id: int, *, calibration=None, model_sha256: str | None = None,
                          k: int = TOP_CHANNELS) -> ReportData:
    """ReportData for a stored case (no model needed): per comparison the result the examiner chose, else the first
    full analysis (store.report_result); removed and unanalysed comparisons are listed apart."""
    case = store.get_case(case_id)
    # verified before anything is read: a report must never present forged rows or a swapped photo as evidence
    verification = store.verify_audit(case_id)
    if not verification.ok:
        raise ReportError(f"case {case.number} fails verification, so no report was built: {verification.message}")
    sections = []
    used_models: dict[str, str] = {}
    cal_used = None
    unreported = []
    comparisons = store.list_comparisons(case_id)
    chosen = _report_results(store, comparisons)
    for comp in comparisons:
        if comp.id not in chosen:
            unreported.append(_unreported(store, comp.number, comp))
            continue
        record, how = chosen[comp.id]
        section, cal = _comparison_section(store, case_id, comp.number, comp, record, calibration, k)
        section.result_id, section.result_choice = record.id, how
        cal_used = cal_used or cal
        sections.append(section)
        if record.model_sha256:
            used_models[record.model_sha256] = record.model_name or ""
    if not sections:
        raise ReportError(f"case {case.number} has no analysed comparison to report")
    sha = model_sha256 or next(iter(used_models), "")
    concl = store.latest_conclusion(case_id)   # case-level only: comparison notes go with their comparison
    return ReportData(propositions=case_propositions(case),
        case_number=case.number, title=case.title, examiner=case.examiner, organisation=case.organisation,
        case_created=case.created_at, case_modified=case.modified_at,
        model=stored_model_info(store, sha, used_models.get(sha, "")),
        calibration=calibration_summary(cal_used), comparisons=sections, unreported=unreported,
        conclusion=concl.text if concl else "", conclusion_scale=(concl.scale or "") if concl else "",
        conclusion_notes=concl.notes if concl else "", conclusion_author=(concl.author or "") if concl else "",
        conclusion_time=concl.created_at if concl else "", case_notes=case.notes,
        audit=audit_rows(store.list_audit(case_id), {str(c.id): c.number for c in comparisons}, case.number),
        audit_status=f"{audit_status(verification)}; verified chain head {verification.head or '(empty)'}",
    )
