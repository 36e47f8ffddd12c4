"""Planning a run before it starts and describing it after: its number of steps, global batch, disk space and time
per step, and the model card of the finished model.

Importing this module loads no torch (the training wizard plans on the GUI thread); the two functions that build
or time a model import it when called.
"""
from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

from .config import TrainingError


def model_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.state_dict().values())


def global_batch_size(requested: int, n_images: int, world_size: int) -> int:
    """The global batch a run uses: ``requested``, or every image when there are fewer, rounded down to a multiple
    of the processes so each takes an equal share. An epoch is ``n_images // batch`` whole batches; the rest of
    the shuffled images sit out that epoch (a new draw each epoch), as DistributedSampler's drop_last does."""
    batch = min(requested, n_images)
    batch -= batch % world_size
    if batch < 1:
        raise TrainingError(f"the dataset's {n_images} images cannot give each of the {world_size} processes "
                            f"one image per step; use fewer processes or more images")
    return batch


def check_disk_space(folder, need_bytes: int) -> int:
    """Raise TrainingError when the disk holding ``folder`` has less than ``need_bytes`` free; return free bytes."""
    p = Path(folder).expanduser().resolve()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise TrainingError(f"not enough disk space in {probe}: {free / 1e6:.0f} MB free, about "
                            f"{need_bytes / 1e6:.0f} MB needed for checkpoints and the model")
    return free


def model_card(spec: dict, sha256: str, history: list[dict]) -> str:
    """A markdown model card for a trained model (stored with it in the model registry)."""
    tr = spec.get("provenance", {}).get("training", {})
    base = tr.get("base", {})
    last = history[-1] if history else {}
    h, w = spec["input_size"]
    lines = [
        f"# {spec.get('name', 'model')}",
        "",
        f"- SHA-256: `{sha256}`",
        f"- Architecture: {spec.get('family')} depth {spec.get('depth')}, input {h}x{w}, "
        f"{spec.get('channels')} channels, max-pool embedding, transposed-convolution decoder",
        f"- Trained: {tr.get('finished', '?')} with `{tr.get('tool', 'xfr train')}` on {tr.get('device', '?')}"
        f" ({tr.get('world_size', 1)} process{'es' if tr.get('world_size', 1) != 1 else ''})",
        f"- Base model: {base.get('name') or base.get('kind', '?')} ({base.get('kind', '?')}"
        + (f", sha256 `{base['sha256'][:16]}…`" if base.get("sha256") else "") + ")",
        f"- Mode: {tr.get('mode')} (loss {tr.get('loss') if tr.get('mode') == 'joint' else 'reconstruction only'}"
        f" + reconstruction MSE), {tr.get('steps')} steps, {tr.get('epochs')} epoch(s), seed {tr.get('seed')}",
        f"- Training data: `{tr.get('data')}`: {tr.get('n_images')} images of {tr.get('n_classes')} identities",
        f"- Decision threshold in the file: {spec.get('threshold')} (cosine); calibrate it on your own data "
        f"before casework",
    ]
    if last.get("val_acc") is not None:
        lines.append(f"- Validation: {last['val_acc'] * 100:.2f}% best-threshold accuracy on {last.get('val_pairs')} "
                     f"pairs (threshold {last.get('val_threshold', float('nan')):.3f}); "
                     f"{last.get('val_acc_at_model_threshold', float('nan')) * 100:.2f}% at the file's threshold")
    if history:
        lines += ["", "| epoch | step | validation accuracy |", "|---|---|---|"]
        for hrow in history:
            acc = hrow.get("val_acc")
            lines.append(f"| {hrow.get('epoch')} | {hrow.get('step')} | "
                         f"{'' if acc is None else f'{acc * 100:.2f}%'} |")
    lines += ["", "Intended use: explaining face comparisons in XFR Desktop; it is not a substitute for an examiner's "
              "judgement. Accuracy on the training images themselves is optimistic."]
    return "\n".join(lines) + "\n"


def estimate_step_seconds(model, batch_size: int, device="cpu", mode: str = "joint", probe_batch: int = 2) -> float:
    """Seconds per training step (forward + backward), measured on random data; weights are untouched.

    On a CPU a small batch is timed and scaled linearly; on a GPU the real batch is timed (a GPU is not linear
    in the batch size), after a warm-up."""
    import torch

    from ..model import resolve_device
    from .losses import reconstruction_loss

    device = resolve_device(device)
    probe = copy.deepcopy(model).to(device).train()
    h, w = probe.input_size
    n = probe_batch if device.type == "cpu" else batch_size
    x = torch.randn(n, 3, h, w, device=device)
    times = []
    for _ in range(2 if device.type == "cpu" else 4):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            if mode == "joint":
                C, emb = probe.embed(x)
            else:
                with torch.no_grad():
                    C, emb = probe.backbone(x), None
            loss = reconstruction_loss(probe.reconstruct(C), x)
            if emb is not None:
                loss = loss + emb.float().pow(2).mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:] if len(times) > 2 else times) * batch_size / n


def planned_steps(n_images: int, batch_size: int, epochs: int, max_steps: int | None = None) -> int:
    """The number of steps a run will take (as the Trainer counts them)."""
    batch = max(1, min(batch_size, n_images))
    total = epochs * max(1, n_images // batch)
    return min(total, max_steps) if max_steps else total


def spec_model_bytes(spec: dict) -> int:
    """Bytes of a model's weights, from its spec alone (built on the meta device: no memory, no time)."""
    import torch

    from ..model import JointModel

    with torch.device("meta"):
        return model_bytes(JointModel(spec))


def required_disk_bytes_for_spec(spec: dict) -> int:
    """Checkpoint (weights + optimizer moments) + its temp copy + the final model, with a margin."""
    return int(spec_model_bytes(spec) * 7 + 20e6)
