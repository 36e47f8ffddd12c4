"""`xfr audit`: verify or list the tamper-evident audit trail (global `--data-dir`)."""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="verify or list the tamper-evident audit trail")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")

    p = sub.add_parser("verify", help="recompute the hash chain; exit 0 when intact, 1 naming the first broken entry")
    p.add_argument("--case", metavar="ID", help="only this case's chain (id or case number)")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("list", help="print the audit entries, oldest first")
    p.add_argument("--case", metavar="ID", help="only this case's entries (id or case number)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run_list)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_verify(args) -> int:
    from ..store import open_store

    with open_store(args.data_dir) as store:
        case_id = store.find_case(args.case).id if args.case else None
        verification = store.verify_audit(case_id)
    if verification.ok:
        print(verification.message)
        return 0
    print(f"xfr: audit: {verification.message}", file=sys.stderr)
    return 1


def run_list(args) -> int:
    from ..store import open_store

    with open_store(args.data_dir) as store:
        case_id = store.find_case(args.case).id if args.case else None
        entries = store.list_audit(case_id)
    if args.json:
        print(json.dumps([{"id": e.id, "time": e.time, "actor": e.actor, "action": e.action, "case_id": e.case_id,
                           "object_type": e.object_type, "object_id": e.object_id, "details": e.details_dict,
                           "prev_hash": e.prev_hash, "hash": e.hash} for e in entries], indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        obj = f"{e.object_type}:{(e.object_id or '')[:12]}" if e.object_type else ""
        case = f"case {e.case_id}" if e.case_id is not None else "system"
        print(f"#{e.id:<5} {e.time[:19].replace('T', ' ')} UTC  {e.actor:<12} {e.action:<18} {case:<9} {obj}  "
              f"{e.hash[:12]}")
    return 0
