"""Kept so imports of ``xfr_desktop.store.arrays`` keep working: the helpers live in :mod:`xfr_desktop.core.arrays`
(the core serializes explanations with them, and the core must not import the store)."""
from ..core.arrays import as_npz_bytes, pack_arrays, unpack_arrays  # noqa: F401
