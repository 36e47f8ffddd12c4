"""`xfr models`: import dlib's face network (`import-dlib`) and describe model files (`info`)."""
from __future__ import annotations

from pathlib import Path

from ..core.numbers import json_text


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="import and inspect face models")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    p = sub.add_parser(
        "import-dlib", help="convert dlib_face_recognition_resnet_model_v1.dat into an XFR joint model file",
        description="Reads dlib's serialized network in pure Python (dlib itself is not needed) and writes a joint "
                    "model with the max-pool head: dense last stages, fc -> 1x1 conv, C = 128x8x8 on a 150 px "
                    "chip. The decoder is untrained (train it, or use the bundled model).")
    p.add_argument("dat", metavar="FILE.dat", help="dlib_face_recognition_resnet_model_v1.dat")
    p.add_argument("--out", required=True, metavar="FILE.pt", help="model file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run_import_dlib)
    p = sub.add_parser("info", help="describe a model file (default: the bundled model)")
    p.add_argument("path", nargs="?", help="model file (.pt)")
    p.add_argument("--json", action="store_true", help="print the spec as JSON")
    p.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_import_dlib(args) -> int:
    from ..core.dlib_import import joint_model_from_dlib
    from ..core.errors import ModelFileError
    from ..core.model import save_model

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ModelFileError(f"{out} exists; pass --force to overwrite it")
    model = joint_model_from_dlib(args.dat)
    sha = save_model(model, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {n:,} parameters, sha256 {sha})")
    print("note: the decoder is untrained and the threshold nominal; the bundled model has both trained")
    return 0


def run_info(args) -> int:
    from ..core.model import load_model

    model = load_model(args.path, device="cpu")
    spec = model.spec
    if args.json:
        print(json_text({"path": model.path, "sha256": model.sha256, "spec": spec}, indent=2))
        return 0
    import torch

    h, w = model.input_size
    with torch.inference_mode():
        C, _ = model.embed(torch.zeros(1, 3, h, w))
        R = model.reconstruct(C)
    n_bb = sum(p.numel() for p in model.backbone.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters())
    prov = spec.get("provenance", {})
    print(f"file:       {model.path}")
    print(f"sha256:     {model.sha256}")
    print(f"name:       {spec.get('name')}  (family {spec.get('family')}{', depth ' + str(spec['depth']) if 'depth' in spec else ''})")
    print(f"input:      {w}x{h} aligned face; conv map C {tuple(C.shape[1:])}; embedding {C.shape[1]}-d (max pool)")
    print(f"decoder:    {len(spec['decoder']['layers'])} transposed convs -> {tuple(R.shape[1:])}")
    print(f"parameters: backbone {n_bb:,}, decoder {n_dec:,}")
    print(f"threshold:  {model.threshold:.4f} (cosine)")
    for key in ("backbone", "training_data", "threshold_source"):
        if key in prov:
            print(f"{key + ':':<12}{prov[key]}")
    return 0
