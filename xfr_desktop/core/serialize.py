"""A :class:`~xfr_desktop.core.explain.PairExplanation` <-> nested dicts of arrays (and the store's result payload).

The layout keeps everything :meth:`PairExplanation.recombine` needs, so a result reopened from disk recombines
exactly like the one computed in memory::

    {"pair": {"score", "threshold", "products", "selected", "channels" (absent = all), "top_k" (-1 = None),
              "normalization", "engine", "device"},
     "a": {"residuals/...": ResidualStack.to_npz_dict, "embedding", "argmax", "contributing", "weights",
           "H", "S", "S_pos", "S_neg", "reconstruction", "aligned"},
     "b": {...}}

For the store the same content is split over the result's three blobs: ``residuals`` (pair + residual stacks and
per-channel data: what recombination needs), ``maps`` (H, S, S⁺, S⁻, weights) and ``faces`` (aligned crop,
reconstruction, and any detection data the caller adds: box, landmarks, transform). Only numeric and string
arrays are written (no pickle). Torch is imported only when an explanation is rebuilt.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .arrays import pack_arrays, unpack_arrays  # torch-free, Qt-free: shared with the store

if TYPE_CHECKING:  # pragma: no cover
    from .explain import PairExplanation

FORMAT_VERSION = 1
MAP_KEYS = ("H", "S", "S_pos", "S_neg", "weights")
FACE_KEYS = ("aligned", "reconstruction")
SIDE_KEYS = ("embedding", "argmax", "contributing")


def _pair_arrays(result: "PairExplanation") -> dict[str, np.ndarray]:
    pair = {
        "format_version": np.asarray(FORMAT_VERSION),
        "score": np.asarray(result.score, np.float64),
        "threshold": np.asarray(result.threshold, np.float64),
        "products": np.asarray(result.products, np.float64),
        "selected": np.asarray(result.selected, bool),
        "top_k": np.asarray(-1 if result.top_k is None else int(result.top_k)),
        "normalization": np.asarray(result.normalization),
        "engine": np.asarray(result.engine),
        "device": np.asarray(result.device),
    }
    if result.channels is not None:
        pair["channels"] = np.asarray(result.channels, np.int64)
    return pair


def _residual_side(side) -> dict[str, np.ndarray]:
    out = {"residuals": side.residuals.to_npz_dict()}
    out.update({k: np.asarray(getattr(side, k)) for k in SIDE_KEYS})
    return out


def split_explanation(result: "PairExplanation") -> dict[str, dict]:
    """``{"residuals": nested, "maps": nested, "faces": nested}`` (see the module docstring)."""
    residuals = {"pair": _pair_arrays(result), "a": _residual_side(result.a), "b": _residual_side(result.b)}
    maps = {s: {k: np.asarray(getattr(getattr(result, s), k)) for k in MAP_KEYS} for s in "ab"}
    faces = {s: {k: np.asarray(getattr(getattr(result, s), k)) for k in FACE_KEYS} for s in "ab"}
    return {"residuals": residuals, "maps": maps, "faces": faces}


def explanation_to_dict(result: "PairExplanation") -> dict:
    """One nested dict holding the whole explanation (residuals, maps and faces merged per side)."""
    parts = split_explanation(result)
    merged = {"pair": parts["residuals"]["pair"]}
    for s in "ab":
        merged[s] = {**parts["residuals"][s], **parts["maps"][s], **parts["faces"][s]}
    return merged


def _scalar(value, kind=float):
    return kind(np.asarray(value).item())


def explanation_from_dict(data: dict, maps: dict | None = None, faces: dict | None = None) -> "PairExplanation":
    """Rebuild a PairExplanation from :func:`explanation_to_dict` output (or the store's three blobs).

    When ``maps`` are missing (or were not stored) the maps are recomputed from the residuals, which gives the
    same numbers.
    """
    from .explain import PairExplanation, ResidualStack, SideExplanation, channel_weights

    pair = data["pair"]
    version = int(np.asarray(pair.get("format_version", 1)).item())
    if version > FORMAT_VERSION:
        raise ValueError(f"explanation written by a newer XFR Desktop (format {version})")
    products = np.asarray(pair["products"], np.float64)
    selected = np.asarray(pair["selected"], bool)
    threshold = _scalar(pair["threshold"])
    top_k = _scalar(pair["top_k"], int)
    channels = [int(c) for c in np.asarray(pair["channels"]).ravel()] if "channels" in pair else None
    sides = {}
    for s in "ab":
        side = data[s]
        side_maps = (maps or {}).get(s) or side
        side_faces = (faces or {}).get(s) or side
        stack = ResidualStack.from_npz_dict(side["residuals"])
        h, w = stack.image_size
        zeros = np.zeros((h, w), np.float32)
        weights = side_maps.get("weights")
        if weights is None:
            weights = channel_weights(products, threshold, selected)
        sides[s] = SideExplanation(
            H=np.asarray(side_maps.get("H", zeros), np.float32), S=np.asarray(side_maps.get("S", zeros), np.float32),
            S_pos=np.asarray(side_maps.get("S_pos", zeros), np.float32),
            S_neg=np.asarray(side_maps.get("S_neg", zeros), np.float32),
            weights=np.asarray(weights, np.float32), residuals=stack,
            reconstruction=np.asarray(side_faces.get("reconstruction", np.zeros((h, w, 3), np.uint8)), np.uint8),
            aligned=np.asarray(side_faces.get("aligned", np.zeros((h, w, 3), np.uint8)), np.uint8),
            embedding=np.asarray(side["embedding"], np.float64), argmax=np.asarray(side["argmax"], np.int64),
            contributing=np.asarray(side["contributing"], bool),
        )
    result = PairExplanation(
        score=_scalar(pair["score"]), threshold=threshold, a=sides["a"], b=sides["b"], products=products,
        selected=selected, channels=channels, top_k=None if top_k < 0 else top_k,
        normalization=str(np.asarray(pair["normalization"]).item()), engine=str(np.asarray(pair["engine"]).item()),
        device=str(np.asarray(pair["device"]).item()),
    )
    if maps is None and not all(k in data["a"] for k in ("H", "S")):
        result = result.recombine(threshold=threshold, channels=channels, top_k=result.top_k)
    return result


def explanation_to_npz_bytes(result: "PairExplanation") -> bytes:
    return pack_arrays(explanation_to_dict(result))


def explanation_from_npz_bytes(data: bytes) -> "PairExplanation":
    return explanation_from_dict(unpack_arrays(data))


# --- the store's result payload -----------------------------------------------------------------------------
def result_parameters(result: "PairExplanation", **extra) -> dict:
    """The JSON parameters that identify how a result was computed (compared by the store for audit)."""
    params = {
        "threshold": round(float(result.threshold), 6),
        "normalization": result.normalization,
        "channels": None if result.channels is None else [int(c) for c in result.channels],
        "top_k": result.top_k,
        "engine": result.engine,
    }
    params.update(extra)
    return params


def result_payload(result: "PairExplanation", *, model_sha256: str | None = None, model_name: str | None = None,
                   faces_extra: dict | None = None, parameters: dict | None = None) -> dict:
    """A payload for ``Store.save_result``: all three blobs, so the result reopens without the model.

    ``faces_extra``: ``{"a": {"box": ..., "landmarks": ..., "transform": ...}, "b": {...}}`` from detection.
    """
    parts = split_explanation(result)
    faces = parts["faces"]
    for s, extra in (faces_extra or {}).items():
        faces.setdefault(s, {}).update({k: v for k, v in extra.items() if v is not None})
    return {
        "score": float(result.score), "threshold": float(result.threshold), "decision": bool(result.decision),
        "parameters": parameters if parameters is not None else result_parameters(result),
        "model_sha256": model_sha256, "model_name": model_name,
        "timings": {k: round(float(v), 3) for k, v in result.timings_ms.items()},
        "maps": pack_arrays(parts["maps"]), "residuals": pack_arrays(parts["residuals"]),
        "faces": pack_arrays(faces),
    }


def explanation_from_result(record) -> "PairExplanation":
    """Rebuild the explanation stored in a store ``ResultRecord`` (needs its residuals blob)."""
    if not record.residuals_npz:
        raise ValueError(f"result {record.id} has no stored residuals; run the analysis again to explain it")
    data = unpack_arrays(record.residuals_npz)
    return explanation_from_dict(data, maps=record.maps() or None, faces=record.faces() or None)

