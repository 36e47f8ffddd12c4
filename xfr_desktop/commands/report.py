"""`xfr report` (build and optionally sign a case's PDF report) and `xfr verify-report` (check a signed report)."""
from __future__ import annotations

import sys

from . import add_examiner_option
from ..core.numbers import json_text, positive_int_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write a case's PDF report, optionally signed (PAdES)",
        description="Builds the report from each comparison's report result (the one chosen, by default its first "
                    "full analysis; global --data-dir) and logs the export (and signing) to the case's audit trail.")
    p.add_argument("--case", required=True, metavar="ID", help="case id or case number")
    p.add_argument("--out", required=True, metavar="FILE.pdf", help="the PDF to write")
    p.add_argument("--result", type=positive_int_arg, metavar="N", action="append",
                   help="report result N (its id, as `xfr cases show` lists it) for its comparison; the choice is "
                        "kept and audited; repeat for several comparisons")
    p.add_argument("--sign", metavar="FILE.p12", help="sign with this PKCS#12 key file (see `xfr keys create`)")
    add_passphrase_options(p)
    p.add_argument("--force", action="store_true", help="overwrite FILE.pdf if it exists")
    add_examiner_option(p)
    p.set_defaults(func=run_report)

    v = subparsers.add_parser(
        "verify-report", help="check a signed report: intact, unmodified and signed by a trusted certificate",
        description="Checks every signature (the examiner's and a reviewer's co-signature). Exit status 0 when "
                    "every signature is intact, covers the document (or is followed only by further signatures) "
                    "and chains to a --trust certificate; 3 unsigned, 4 modified or invalid, 5 a signer not "
                    "trusted by the --trust certificates, 6 not a readable PDF, 7 intact but no --trust "
                    "certificate given (the signers are untrusted), 2 other errors.")
    v.add_argument("pdf", metavar="FILE.pdf")
    v.add_argument("--trust", action="append", metavar="CERT.pem",
                   help="trusted signer or CA certificate (PEM or DER); repeat for several (the examiner's and "
                        "the reviewer's). Without it integrity is still checked, and the exit status is 7")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=run_verify)

    c = subparsers.add_parser(
        "cosign-report", help="add a reviewer's signature (ACE-V verification) to a report signed by its examiner",
        description="Signs the reviewer's field that the examiner's certifying signature reserved, as an "
                    "incremental update: the examiner's signature stays valid and `xfr verify-report` checks both.")
    c.add_argument("pdf", metavar="SIGNED.pdf", help="the report signed by its examiner")
    c.add_argument("--sign", required=True, metavar="FILE.p12", help="the reviewer's PKCS#12 key file")
    c.add_argument("--out", required=True, metavar="FILE.pdf", help="the co-signed report to write")
    add_passphrase_options(c)
    c.add_argument("--force", action="store_true", help="overwrite FILE.pdf if it exists")
    c.add_argument("--case", metavar="ID", help="also record the co-signature in this case's audit trail "
                                                "(global --data-dir)")
    c.set_defaults(func=run_cosign)


def add_passphrase_options(parser) -> None:
    parser.add_argument("--passphrase-file", metavar="FILE", help="read the key passphrase from the first line of FILE")
    parser.add_argument("--passphrase-env", metavar="VAR", help="read the key passphrase from environment variable VAR")


def ask_passphrase(args, *, confirm: bool = False, what: str = "key file") -> str:
    """From --passphrase-file/--passphrase-env, else asked on the terminal (twice when ``confirm``)."""
    import getpass

    from ..core.errors import XfrError
    from ..report.signing import read_passphrase

    value = read_passphrase(getattr(args, "passphrase_file", None), getattr(args, "passphrase_env", None))
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise XfrError(f"no terminal to ask for the {what} passphrase; use --passphrase-file or --passphrase-env")
    try:
        value = getpass.getpass(f"Passphrase for the {what}: ")
        if confirm and getpass.getpass("Repeat the passphrase: ") != value:
            raise XfrError("the two passphrases differ")
    except EOFError:  # Ctrl-D
        raise XfrError(f"no passphrase given for the {what}: nothing was done") from None
    return value


def open_key(args, path: str):
    """The signing identity in key file ``path``, its passphrase asked for only once the file is there and readable.
    Callers first check everything else that can refuse without the key: nobody types a passphrase for nothing."""
    from ..core.fileio import read_bytes
    from ..report.signing import SigningError, load_signing_identity

    read_bytes(path, "key file", SigningError)
    return load_signing_identity(path, ask_passphrase(args))


def run_report(args) -> int:
    from ..core.fileio import check_new_file
    from ..report.export import export_case_report
    from ..report.report_data import ReportError
    from ..store import open_store

    if not args.sign and (args.passphrase_file or args.passphrase_env):
        print("xfr: note: a passphrase was given without --sign; the report is not signed", file=sys.stderr)
    check_new_file(args.out, args.force, ReportError)
    with open_store(args.data_dir, create=False, examiner=args.acting_examiner) as store:
        case = store.find_case(args.case)
        choices = [report_choice(store, case, result_id) for result_id in args.result or ()]
        identity = open_key(args, args.sign) if args.sign else None
        for comparison_id, result_id in choices:
            store.choose_report_result(comparison_id, result_id)
        result = export_case_report(store, case.id, args.out, identity=identity, overwrite=args.force)
    print(f"wrote {result.path} ({result.n_pages} pages, sha256 {result.sha256})")
    if not result.recorded:
        print(f"xfr: note: {store.data_dir} is read-only: this export is not recorded in its audit trail",
              file=sys.stderr)
    if result.signed:
        print(f"signed by {result.signer} at {result.signed_at} (this computer's clock; no timestamp authority)")
    return 0


def run_cosign(args) -> int:
    from ..report.export import check_cosign, cosign_report

    check_cosign(args.pdf, args.out, args.force)
    if args.case:
        from ..store import open_store

        with open_store(args.data_dir, create=False) as store:
            case_id = store.find_case(args.case).id
            result = cosign_report(args.pdf, args.out, open_key(args, args.sign), store=store, case_id=case_id,
                                   overwrite=args.force)
        if not result.recorded:
            print(f"xfr: note: {store.data_dir} is read-only: the co-signature is not in its audit trail",
                  file=sys.stderr)
    else:
        result = cosign_report(args.pdf, args.out, open_key(args, args.sign), overwrite=args.force)
    print(f"wrote {result.path}: co-signed by {result.signed.signer} at {result.signed.signed_at} (this computer's "
          f"clock; no timestamp authority)")
    return 0


def report_choice(store, case, result_id: int) -> tuple[int, int]:
    """(comparison id, result id) to make stored result `result_id` the one the report shows for its comparison,
    which must be in `case` (checked here, chosen by the caller)."""
    from ..core.errors import StoreError

    comparison = store.get_comparison(store.get_result(result_id).comparison_id)
    if comparison.case_id != case.id:
        raise StoreError(f"result {result_id} belongs to another case, not to {case.number}")
    return comparison.id, result_id


def run_verify(args) -> int:
    from ..report.signature_check import verify_pdf

    result = verify_pdf(args.pdf, args.trust)
    if args.json:
        print(json_text({"ok": result.ok, "status": result.status, "message": result.message,
                          "signatures": [vars(s) for s in result.signatures]}, indent=2))
    else:
        lines = result.summary_lines()
        print("\n".join(lines), file=sys.stdout if result.ok else sys.stderr)
    return result.exit_code
