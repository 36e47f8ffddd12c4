"""`xfr cases`: list, show and create cases, add and analyse pairs, record conclusions, reviews and propositions in the
case database (global `--data-dir`)."""
from __future__ import annotations

from . import add_examiner_option
from ..core.errors import XfrError
from ..core.numbers import face_number_arg, json_text, positive_int_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser("cases", help="list, show or create cases in the case database")
    sub = parser.add_subparsers(dest="cases_command", metavar="ACTION")

    p = sub.add_parser("list", help="list cases, most recently modified first")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--search", metavar="TEXT", help="only cases whose number, title, examiner, organisation or "
                                                    "notes contain TEXT")
    p.set_defaults(func=run_list)

    p = sub.add_parser("show", help="show one case: details, comparisons, latest results, conclusion")
    p.add_argument("case", metavar="ID", help="case id or case number")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_show)

    p = sub.add_parser("add-pair", help="import two photos into a case as a new comparison")
    p.add_argument("case", metavar="CASE", help="case id or case number")
    p.add_argument("image_a", metavar="IMG_A")
    p.add_argument("image_b", metavar="IMG_B")
    p.add_argument("--face-a", type=face_number_arg, metavar="K", help="face K of photo A (1 = the largest, default)")
    p.add_argument("--face-b", type=face_number_arg, metavar="K", help="face K of photo B (1 = the largest, default)")
    p.add_argument("--aligned", action="store_true", help="the photos are pre-aligned face crops: skip detection")
    add_examiner_option(p)
    p.set_defaults(func=run_add_pair)

    p = sub.add_parser("analyse", help="analyse a case's comparisons (all that are not removed, or one)")
    p.add_argument("case", metavar="CASE", help="case id or case number")
    p.add_argument("--comparison", type=positive_int_arg, metavar="N", help="only comparison N (1 = the first)")
    p.add_argument("--model", help="joint model file (default: the bundled model)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    add_examiner_option(p)
    p.set_defaults(func=run_analyse)

    p = sub.add_parser("conclude", help="record the case's conclusion, or a note on one comparison")
    p.add_argument("case", metavar="CASE", help="case id or case number")
    p.add_argument("--text", required=True, metavar="T")
    p.add_argument("--comparison", type=positive_int_arg, metavar="N", help="a note on comparison N instead")
    p.add_argument("--scale", help="the conclusion scale used (e.g. ENFSI verbal scale)")
    add_examiner_option(p)
    p.set_defaults(func=run_conclude)

    p = sub.add_parser("remove", help="withdraw a comparison with a reason (it stays listed, as removed)")
    p.add_argument("case", metavar="CASE", help="case id or case number")
    p.add_argument("--comparison", type=positive_int_arg, required=True, metavar="N")
    p.add_argument("--reason", required=True, metavar="TEXT")
    add_examiner_option(p)
    p.set_defaults(func=run_remove)

    p = sub.add_parser("review", help="record a second examiner's verification (ACE-V) of one comparison")
    p.add_argument("case", metavar="CASE", help="case id or case number")
    p.add_argument("--comparison", type=positive_int_arg, required=True, metavar="N")
    p.add_argument("--verdict", required=True, choices=["agree", "disagree"])
    p.add_argument("--note", default="", metavar="TEXT")
    add_examiner_option(p)
    p.set_defaults(func=run_review)

    p = sub.add_parser("propositions", help="set the case's propositions (Hp, Hd) the likelihood ratios are for")
    p.add_argument("case", metavar="CASE", help="case id or case number")
    p.add_argument("--prosecution", metavar="TEXT", help="Hp ('' restores the default wording)")
    p.add_argument("--defence", metavar="TEXT", help="Hd ('' restores the default wording)")
    add_examiner_option(p)
    p.set_defaults(func=run_propositions)

    p = sub.add_parser("create", help="create a case")
    p.add_argument("number", help="the case number (unique)")
    p.add_argument("--title", default="")
    p.add_argument("--examiner", default="")
    p.add_argument("--organisation", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--json", action="store_true", help="print the new case as JSON")
    p.set_defaults(func=run_create)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _case_summary(case) -> dict:
    return {"id": case.id, "number": case.number, "title": case.title, "examiner": case.examiner,
            "organisation": case.organisation, "n_comparisons": case.n_comparisons,
            "created": case.created_at, "modified": case.modified_at}


def run_list(args) -> int:
    from ..paths import database_path, resolve_data_dir
    from ..store import open_store

    data_dir = resolve_data_dir(args.data_dir)
    if not database_path(data_dir).is_file():  # nothing to list is no error, and a listing creates nothing
        print("[]" if args.json else f"no cases: there is no case database in {data_dir} yet (check --data-dir)")
        return 0
    with open_store(args.data_dir, create=False) as store:
        cases = store.list_cases(args.search)
    if args.json:
        print(json_text([_case_summary(c) for c in cases], indent=2, ensure_ascii=False))
        return 0
    if not cases:
        print("no cases" + (f" matching {args.search!r}" if args.search else "") + f" in {store.data_dir}")
        return 0
    header = f"{'ID':>4}  {'NUMBER':<16} {'TITLE':<30} {'EXAMINER':<18} {'PAIRS':>5}  MODIFIED"
    print(header)
    for c in cases:
        print(f"{c.id:>4}  {_clip(c.number, 16):<16} {_clip(c.title, 30):<30} {_clip(c.examiner, 18):<18} "
              f"{c.n_comparisons:>5}  {c.modified_at[:19].replace('T', ' ')} UTC")
    return 0


def run_show(args) -> int:
    from ..core.evaluative import case_propositions, labelled_propositions
    from ..store import open_store

    with open_store(args.data_dir, create=False) as store:
        case = store.find_case(args.case)
        comparisons = [_comparison_summary(store, comp) for comp in store.list_comparisons(case.id)]
        conclusion = store.latest_conclusion(case.id)
        verification = store.verify_audit(case.id)
    hp, hd = case_propositions(case)
    info = _case_summary(case) | {
        "notes": case.notes, "propositions": {"prosecution": hp, "defence": hd}, "comparisons": comparisons,
        "conclusion": None if conclusion is None else {"text": conclusion.text, "scale": conclusion.scale,
                                                       "notes": conclusion.notes, "author": conclusion.author,
                                                       "time": conclusion.created_at},
        "audit": {"intact": verification.ok, "entries": verification.n_entries, "message": verification.message},
    }
    if args.json:
        print(json_text(info, indent=2, ensure_ascii=False))
        return 0
    print(f"Case {case.number} (id {case.id}): {case.title}")
    print(f"  examiner:     {case.examiner}")
    print(f"  organisation: {case.organisation}")
    print(f"  created:      {case.created_at}")
    print(f"  modified:     {case.modified_at}")
    if case.notes:
        print(f"  notes:        {case.notes}")
    print("  propositions: {}\n                {}".format(*labelled_propositions((hp, hd))))
    print(f"  comparisons:  {len(comparisons)}")
    for comp in comparisons:
        a, b = comp["images"]["a"], comp["images"]["b"]
        print(f"    {comp['number']}. {a['original_name']} (face {a['face_number']}) vs "
              f"{b['original_name']} (face {b['face_number']}) [{comp['status']}, {comp['n_results']} result{'' if comp['n_results'] == 1 else 's'}]")
        if comp["removed"]:
            removed = comp["removed"]
            print(f"       removed {removed['at']} by {removed['by']}: {removed['reason']}")
        result = comp["report_result"]
        if result:
            print(f"       report uses result {result['id']} (analysed {result['analysed_at']}): "
                  f"LR {result['likelihood_ratio'] or '— (no calibration)'}; {result['model_decision']}")
        for review in comp["reviews"]:
            note = f": {review['note']}" if review["note"] else ""
            print(f"       review: {review['verdict']} ({review['reviewer']}, {review['time']}){note}")
    if conclusion:
        scale = f" [{conclusion.scale}]" if conclusion.scale else ""
        print(f"  conclusion:   {conclusion.text}{scale} ({conclusion.author}, {conclusion.created_at})")
    print(f"  audit trail:  {verification.message}")
    return 0


def _comparison_summary(store, comp) -> dict:
    """One comparison as `cases show` prints it: its number and face numbers counted from 1 ("id": the database
    row, for scripts only)."""
    from ..core.evaluative import case_propositions, lr_statement, result_model_decision

    results = store.list_results(comp.id)
    latest, report = (results[-1] if results else None), store.report_result(comp.id, include_blobs=False)
    statement = lr_statement(report.parameters.get("likelihood_ratio"),
                             propositions=case_propositions(store.get_case(comp.case_id))) if report else None
    images = {side: (store.get_image(sha), index + 1) for side, sha, index in
              (("a", comp.image_a, comp.face_index_a), ("b", comp.image_b, comp.face_index_b))}
    return {
        "number": comp.number, "id": comp.id, "status": comp.status, "model_name": comp.model_name,
        "model_sha256": comp.model_sha256, "n_results": comp.n_results, "created": comp.created_at,
        "images": {side: {"sha256": img.sha256, "original_name": img.original_name, "face_number": face}
                   for side, (img, face) in images.items()},
        "removed": None if not comp.removed else {"at": comp.removed_at, "by": comp.removed_by,
                                                  "reason": comp.removed_reason},
        "reviews": [{"reviewer": r.reviewer, "verdict": r.verdict, "note": r.note, "time": r.created_at}
                    for r in store.list_reviews(comp.id)],
        "latest_result": None if latest is None else {
            "id": latest.id, "created": latest.created_at, "score": latest.score, "threshold": latest.threshold,
            "decision": latest.decision_label, "parameters": latest.parameters},
        "report_result": None if report is None else {
            "id": report.id, "analysed_at": report.analysed_at, "chosen": comp.report_result_id is not None,
            "likelihood_ratio": statement.text if statement else None,
            "verbal_equivalent": statement.verbal if statement else None,
            "model_decision": result_model_decision(report).text},
    }


def run_create(args) -> int:
    from ..store import open_store

    examiner = args.examiner or args.acting_examiner or ""   # `xfr --examiner NAME cases create` names it too
    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.create_case(args.number, title=args.title, examiner=examiner,
                                 organisation=args.organisation, notes=args.notes)
    if args.json:
        print(json_text(_case_summary(case), indent=2, ensure_ascii=False))
    else:
        print(f"created case {case.number} (id {case.id})")
    return 0


def run_add_pair(args) -> int:
    from ..casework import add_pair
    from ..store import open_store

    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        comp = add_pair(store, case.id, args.image_a, args.image_b, face_a=args.face_a, face_b=args.face_b,
                        prealigned=args.aligned)
    print(f"added comparison {comp.number} to case {case.number}: face {comp.face_index_a + 1} of A, "
          f"face {comp.face_index_b + 1} of B")
    return 0


def run_analyse(args) -> int:
    from ..casework import analyse_case
    from ..store import open_store

    from ..core.evaluative import case_propositions

    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        propositions = case_propositions(case)
        done = analyse_case(store, case.id, comparison=args.comparison, model_path=args.model,
                            device=None if args.device == "auto" else args.device,
                            on_done=lambda item: _print_analysis(item, propositions))
    if not done:
        print(f"case {case.number} has no comparison to analyse")
    return 1 if any(item.error for item in done) else 0


def _print_analysis(item, propositions: tuple[str, str]) -> None:
    import sys

    from ..core.evaluative import lr_statement, result_model_decision

    if item.error:
        print(f"comparison {item.number}: failed: {item.error}", file=sys.stderr)
        return
    record = item.outcome.record
    statement = lr_statement(record.parameters.get("likelihood_ratio"), propositions=propositions)
    lr = f"LR {statement.text} ({statement.verbal}); " if statement else "no likelihood ratio (no calibration); "
    print(f"comparison {item.number}: result {record.id}: {lr}{result_model_decision(record).text}")


def run_conclude(args) -> int:
    from ..casework import conclude
    from ..store import open_store

    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        record = conclude(store, case.id, args.text, comparison=args.comparison, scale=args.scale)
    where = f"comparison {args.comparison}" if args.comparison else "the case"
    print(f"recorded a conclusion on {where} of case {case.number} ({record.author}, {record.created_at})")
    return 0


def run_remove(args) -> int:
    from ..casework import comparison_by_number
    from ..store import open_store

    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        comp = store.remove_comparison(comparison_by_number(store, case.id, args.comparison).id, args.reason)
    print(f"removed comparison {args.comparison} of case {case.number} ({comp.removed_by}): {comp.removed_reason}")
    return 0


def run_review(args) -> int:
    from ..casework import comparison_by_number
    from ..store import open_store

    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        review = store.add_review(comparison_by_number(store, case.id, args.comparison).id, args.verdict, args.note)
    print(f"recorded review of comparison {args.comparison} of case {case.number}: {review.verdict} "
          f"({review.reviewer}, {review.created_at})")
    return 0


def run_propositions(args) -> int:
    from ..core.evaluative import case_propositions, labelled_propositions
    from ..store import open_store

    if args.prosecution is None and args.defence is None:
        raise XfrError("give --prosecution, --defence or both")
    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        store.set_propositions(case.id, prosecution=args.prosecution, defence=args.defence)
        hp, hd = labelled_propositions(case_propositions(store.get_case(case.id)))
    print(f"propositions of case {case.number}:\n  {hp}\n  {hd}")
    return 0


def _clip(text: str, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
