"""The per-comparison "How far to trust these maps" block, printed right after the maps: the faithfulness verdict
and figure, the stability figures and the check told in words (core.trust_display, as in the app)."""
from __future__ import annotations

from reportlab.platypus import KeepTogether, Spacer

from ..core.trust_display import NOT_CHECKED, court_text, faithfulness_short, stability_short, trust_of
from .pdf_blocks import kv_table, para


def trust_rows(trust: dict | None) -> list[tuple[str, str]]:
    if trust is None:
        return [("Faithfulness and stability", NOT_CHECKED)]
    return [("Faithfulness (this pair)", f"the map explains the score {faithfulness_short(trust)}"),
            ("Stability (mean correlation)", stability_short(trust) or "not checked")]


def trust_flowables(section, st) -> list:
    trust = trust_of(section.parameters)
    return [Spacer(1, 4), KeepTogether([para("How far to trust these maps", st["h2"]), kv_table(trust_rows(trust)),
                                        para(court_text(trust), st["small"])])]
