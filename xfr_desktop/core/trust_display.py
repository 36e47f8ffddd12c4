"""How the per-pair trust record (pair_trust.trust_summary, stored as a result's ``parameters["trust"]``) is
shown: one place for the CLI line, the app's Trust box and stable-regions view, and the report, so all three say
the same thing."""
from __future__ import annotations

import numpy as np

NOT_CHECKED = "not checked for these maps"
STABLE_AGREEMENT = 0.8        # a pixel is "stable" when this share of the jitter draws keep H's sign
# cells per face and jitter ranges (shift px, rotation °, scale %) of pair_trust, which takes them from here
# (this module stays free of torch: the app imports it at start-up)
CELLS, JITTER = 64, (2, 2, 3)
DEFAULT_JITTER = 3            # jitter draws of the stability check (app, CLI): about 3 explanations' time
# deletion curves drawn in the app: key in the record -> legend
CURVES = {"map-most": "map on screen, most salient first", "map-least": "map on screen, least salient first",
          "gradient-most": "gradient map, most salient first", "gradient-least": "gradient map, least salient first"}


def trust_of(parameters: dict | None) -> dict | None:
    """The stored trust record, or None (an older result, a recombined one, or an analysis without the check)."""
    trust = (parameters or {}).get("trust")
    return trust if isinstance(trust, dict) and isinstance(trust.get("faithfulness"), dict) else None


def unstable_greyed(values: np.ndarray, agreement: np.ndarray | None) -> np.ndarray:
    """``values`` with the pixels whose H sign held in under STABLE_AGREEMENT of the draws set to 0 (the overlay
    leaves 0 untinted, so they show the grey face); unchanged without a matching agreement map."""
    if agreement is None or np.shape(agreement) != np.shape(values):
        return values
    return np.where(np.asarray(agreement) >= STABLE_AGREEMENT, values, 0).astype(values.dtype, copy=False)


def figure(value) -> str:
    return "undetermined" if value is None else f"{float(value):.2f}"


def faithfulness_short(trust: dict) -> str:
    """'as well as a gradient map (0.97)'."""
    f = trust["faithfulness"]
    return f"{f['verdict']} a gradient map ({figure(f.get('normalised'))})"


def stability_short(trust: dict) -> str | None:
    """'A 0.93 · B 0.88 (3 jitter draws)'; None when stability was not checked."""
    s = trust.get("stability")
    if not s:
        return None
    a, b = s["correlation"]
    return f"A {a:.2f} · B {b:.2f} ({s['draws']} jitter draws)"


def cli_line(trust: dict | None) -> str:
    """The one line `xfr explain` prints."""
    if trust is None:
        return f"map trust: {NOT_CHECKED}"
    stab = stability_short(trust)
    return (f"map trust (this pair): explains the score {faithfulness_short(trust)}; "
            f"stability r {stab if stab else 'not checked'}")


def court_text(trust: dict | None) -> str:
    """What the check did, what its figures mean and that they hold for this pair only, for a court reader."""
    if trust is None:
        return ("Whether these maps point at what the model used was not checked for this result (an older "
                "analysis, or maps recomputed at other settings): no figure is given.")
    text = (f"To check these maps for this pair only, each face was cut into {CELLS} squares and the squares were "
            f"blurred in the order the map ranks them. {trust['faithfulness']['sentence']}")
    s = trust.get("stability")
    if s:
        a, b = s["correlation"]
        share_a, share_b = (round(100 * v) for v in s["stable_share"])
        text += (f" The faces were also moved very slightly (up to {JITTER[0]} pixels, {JITTER[1]} degrees, "
                 f"{JITTER[2]} %) {s['draws']} times and the map recomputed: it stayed alike with a mean correlation "
                 f"of {a:.2f} for image A and {b:.2f} for image B (1 = the same map, 0 = unrelated); {share_a} % and "
                 f"{share_b} % of the pixels kept their sign in at least {round(100 * STABLE_AGREEMENT)} % of the "
                 "draws.")
    return text + (" These figures describe the maps of this comparison only, not the model or the method in "
                   "general, and they do not change the score or the likelihood ratio.")
