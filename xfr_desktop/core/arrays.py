"""Nested dicts of numpy arrays <-> compressed ``.npz`` bytes (no pickle), for maps and face crops in results."""
from __future__ import annotations

import io

import numpy as np

from .errors import StoreError

SEPARATOR = "/"


def _flatten(nested: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in nested.items():
        key = str(key)
        if SEPARATOR in key:
            raise StoreError(f"array name {key!r} must not contain {SEPARATOR!r}")
        name = f"{prefix}{SEPARATOR}{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        elif value is None:
            continue
        else:
            array = np.asarray(value)
            if array.dtype == object:
                raise StoreError(f"array {name!r} holds Python objects; only numeric arrays can be stored")
            flat[name] = array
    return flat


def pack_arrays(nested: dict) -> bytes:
    """``{"a": {"H": arr, ...}, "b": {...}}`` -> ``np.savez_compressed`` bytes (keys joined with '/'); None skipped."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **_flatten(nested))
    return buffer.getvalue()


def unpack_arrays(data: bytes) -> dict:
    """Inverse of :func:`pack_arrays`: nested dict of arrays. Raises StoreError when the bytes are not an npz."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            flat = {name: npz[name] for name in npz.files}
    except Exception as exc:  # zipfile/ValueError/OSError: any unreadable blob is the same problem to the user
        raise StoreError(f"a stored array blob is unreadable ({exc.__class__.__name__}): the database may be damaged") from exc
    nested: dict = {}
    for name, array in flat.items():
        node = nested
        *parents, leaf = name.split(SEPARATOR)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = array
    return nested


def as_npz_bytes(value) -> bytes | None:
    """Accept npz bytes as they are, pack a dict, keep None."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        return pack_arrays(value)
    raise StoreError(f"expected a dict of arrays or npz bytes, got {type(value).__name__}")
