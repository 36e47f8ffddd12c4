"""`xfr audit`: verify, list or sign checkpoints of the tamper-evident audit trail (global `--data-dir`)."""
from __future__ import annotations

import os
import sys

from ..core.numbers import json_text


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="verify or list the tamper-evident audit trail")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")

    p = sub.add_parser("verify", help="check the hash chain, signed checkpoints, case rows and evidence files; "
                                      "exit 0 when all hold, 1 naming the first entry, row or file that does not")
    p.add_argument("--case", metavar="ID", help="only this case (id or case number)")
    p.add_argument("--trust", action="append", metavar="CERT.pem",
                   help="checkpoints must be signed by this certificate (repeat for several)")
    p.add_argument("--checkpoint", action="append", metavar="FILE.json",
                   help="also check against checkpoints kept outside the data folder (`audit checkpoint --out`)")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("checkpoint", help="sign the current chain head(s) with the examiner's key")
    p.add_argument("--case", metavar="ID", help="only this case's chain (default: every chain)")
    p.add_argument("--sign", required=True, metavar="FILE.p12", help="the key file (see `xfr keys create`)")
    p.add_argument("--out", metavar="FILE.json", help="also write the signed checkpoints here (keep it elsewhere)")
    from .report import add_passphrase_options

    add_passphrase_options(p)
    p.set_defaults(func=run_checkpoint)

    p = sub.add_parser("list", help="print the audit entries, oldest first")
    p.add_argument("--case", metavar="ID", help="only this case's entries (id or case number)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run_list)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _read_trusted(paths) -> list[bytes] | None:
    from ..core.errors import XfrError
    from ..core.fileio import read_bytes
    from ..store.checkpoints import certificate_fingerprint

    if not paths:
        return None
    certificates = [read_bytes(p, "certificate", XfrError) for p in paths]
    for path, pem in zip(paths, certificates):
        try:
            certificate_fingerprint(pem)
        except ValueError:  # checked here, so that verification never meets it half-way
            raise XfrError(f"{path} holds no PEM or DER certificate") from None
    return certificates


def run_verify(args) -> int:
    from ..store import open_store
    from ..store.checkpoints import load_checkpoint_file

    external = [cp for path in args.checkpoint or [] for cp in load_checkpoint_file(path)]
    with open_store(args.data_dir, create=False) as store:
        case_id = store.find_case(args.case).id if args.case else None
        verification = store.verify_audit(case_id, trusted=_read_trusted(args.trust), external=external)
        missing = missing_reports(store.list_audit(case_id))
    for note in missing:
        print(f"xfr: {note}", file=sys.stderr)
    if verification.ok:
        print(verification.message)
        return 0
    print(f"xfr: audit: {verification.message}", file=sys.stderr)
    return 1


def missing_reports(entries) -> list[str]:
    """One note per report file an entry names that is not there. A report may be moved or handed on, so this is
    stated, not a failure; an older version killed mid-export could also leave such an entry."""
    notes, seen = [], set()
    for e in entries:
        file = e.details_dict.get("file") if e.action.startswith("report.") else None
        if isinstance(file, str) and file not in seen and not os.path.isfile(file):
            seen.add(file)
            notes.append(f"note: audit entry #{e.id} ({e.action}) names the report {file}, which is not there "
                         f"(moved, deleted or never written)")
    return notes


def run_checkpoint(args) -> int:
    from ..core.fileio import atomic_write
    from ..report.signing import load_signing_identity
    from ..store import open_store
    from ..store.checkpoints import export_checkpoints
    from .report import ask_passphrase

    identity = load_signing_identity(args.sign, ask_passphrase(args))
    with open_store(args.data_dir, examiner=args.acting_examiner) as store:
        chains = [store.find_case(args.case).id] if args.case else [None] + [c.id for c in store.list_cases()]
        made = [cp for chain in chains if (cp := store.create_checkpoint(
            chain, identity.sign_bytes, identity.certificate_pem, identity.common_name)) is not None]
    for cp in made:
        print(f"signed {cp.describe()}: {cp.n_entries} entries, head {cp.head_hash}")
    if args.out:
        atomic_write(args.out, lambda f: f.write(export_checkpoints(made).encode("utf-8")), mode=None)
        print(f"wrote {args.out}")
    return 0


def run_list(args) -> int:
    from ..store import open_store

    with open_store(args.data_dir, create=False) as store:
        case_id = store.find_case(args.case).id if args.case else None
        entries = store.list_audit(case_id)
    if args.json:
        print(json_text([{"id": e.id, "time": e.time, "actor": e.actor, "action": e.action, "case_id": e.case_id,
                           "object_type": e.object_type, "object_id": e.object_id, "details": e.details_dict,
                           "prev_hash": e.prev_hash, "hash": e.hash} for e in entries], indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        obj = f"{e.object_type}:{(e.object_id or '')[:12]}" if e.object_type else ""
        case = f"case {e.case_id}" if e.case_id is not None else "system"
        print(f"#{e.id:<5} {e.time[:19].replace('T', ' ')} UTC  {e.actor:<12} {e.action:<18} {case:<9} {obj}  "
              f"{e.hash[:12]}")
    return 0
