"""`xfr cases`: list, show and create cases in the case database (global `--data-dir`)."""
from __future__ import annotations

from ..core.numbers import json_text



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
    from ..store import open_store

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
    from ..store import open_store

    with open_store(args.data_dir, create=False) as store:
        case = store.find_case(args.case)
        comparisons = []
        for comp in store.list_comparisons(case.id):
            latest = store.latest_result(comp.id)
            images = {side: store.get_image(sha) for side, sha in (("a", comp.image_a), ("b", comp.image_b))}
            comparisons.append({
                "id": comp.id, "status": comp.status, "model_name": comp.model_name,
                "model_sha256": comp.model_sha256, "n_results": comp.n_results, "created": comp.created_at,
                "images": {side: {"sha256": img.sha256, "original_name": img.original_name,
                                  "face_index": comp.face_index_a if side == "a" else comp.face_index_b}
                           for side, img in images.items()},
                "latest_result": None if latest is None else {
                    "id": latest.id, "created": latest.created_at, "score": latest.score,
                    "threshold": latest.threshold, "decision": latest.decision_label,
                    "parameters": latest.parameters},
            })
        conclusion = store.latest_conclusion(case.id)
        verification = store.verify_audit(case.id)
    info = _case_summary(case) | {
        "notes": case.notes, "comparisons": comparisons,
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
    print(f"  comparisons:  {len(comparisons)}")
    for comp in comparisons:
        a, b = comp["images"]["a"], comp["images"]["b"]
        line = f"    #{comp['id']} {a['original_name']} vs {b['original_name']} [{comp['status']}]"
        result = comp["latest_result"]
        if result:
            line += (f" score {result['score']:.4f} / T {result['threshold']:.4f} -> {result['decision']} "
                     f"({comp['n_results']} saved)")
        print(line)
    if conclusion:
        scale = f" [{conclusion.scale}]" if conclusion.scale else ""
        print(f"  conclusion:   {conclusion.text}{scale} ({conclusion.author}, {conclusion.created_at})")
    print(f"  audit trail:  {verification.message}")
    return 0


def run_create(args) -> int:
    from ..store import open_store

    with open_store(args.data_dir) as store:
        case = store.create_case(args.number, title=args.title, examiner=args.examiner,
                                 organisation=args.organisation, notes=args.notes)
    if args.json:
        print(json_text(_case_summary(case), indent=2, ensure_ascii=False))
    else:
        print(f"created case {case.number} (id {case.id})")
    return 0


def _clip(text: str, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
