"""`xfr keys create`: a self-signed examiner identity (PKCS#12 key file + certificate PEM) for signing reports."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("keys", help="examiner signing identities")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    p = sub.add_parser(
        "create", help="create a self-signed examiner identity (for labs without their own PKI)",
        description="Writes FILE.p12 (private key + certificate, encrypted with the passphrase, which is asked for "
                    "twice and never stored) and the certificate as FILE.pem next to it: give the PEM to whoever "
                    "checks your reports (`xfr verify-report REPORT.pdf --trust FILE.pem`).")
    p.add_argument("--name", required=True, help="the examiner's name (certificate common name)")
    p.add_argument("--out", required=True, metavar="FILE.p12", help="the key file to write")
    p.add_argument("--organisation", default="", help="organisation (certificate O=)")
    p.add_argument("--email", default="", help="e-mail address in the certificate")
    p.add_argument("--years", type=int, default=5, help="validity in years (default 5)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    from .report import add_passphrase_options

    add_passphrase_options(p)
    p.set_defaults(func=run_create)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_create(args) -> int:
    from ..core.errors import XfrError
    from ..report.signing import create_identity, identity_paths, load_signing_identity
    from .report import ask_passphrase

    if not 1 <= args.years <= 30:
        raise XfrError("--years must be between 1 and 30")
    identity_paths(args.out, args.force)      # refused before the passphrase is typed (twice)
    passphrase = ask_passphrase(args, confirm=True, what="new key file")
    p12, pem = create_identity(args.name, args.out, passphrase, organisation=args.organisation, email=args.email,
                               years=args.years, overwrite=args.force)
    ident = load_signing_identity(p12, passphrase)  # proves the file opens with what was typed
    print(f"wrote {p12} (key + certificate, passphrase-protected) and {pem} (certificate)")
    print(f"subject {ident.subject}; valid until {ident.not_after:%Y-%m-%d}; "
          f"certificate SHA-256 {ident.fingerprint_sha256}")
    return 0
