"""What the model card measured, in words for a court reader (Appendix A of the report).

The card's evaluation rows (:attr:`~.report_data.ModelInfo.fidelity`, "measure: value (goal met: …)") are turned
into sentences: the figures are the card's own, only the words around them change. Recognition measures the card
names (benchmark accuracy, accuracy at the model's threshold, error rates, calibration cost) get a sentence each;
the tests of the explanation maps are named in plain words with whether the developers' target was met. Nothing
here reads a file or invents a figure.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"[\d][\d,]*(?:\.\d+)?"


@dataclass(frozen=True)
class Finding:
    measure: str        # the card's name of the measure, without its goal in brackets
    goal: str           # the goal as the card states it ("≥ 98.0 %"), or ""
    value: str          # the card's value for this model
    met: str            # "yes", "no …", or "" when the card sets no goal


def parse_finding(line: str) -> Finding | None:
    """One :func:`~.model_cards.fidelity_findings` line back into its parts; None if it is not one."""
    head, sep, rest = line.partition(": ")
    if not sep:
        return None
    met = ""
    m = re.search(r" \(goal met: (.*)\)$", rest)
    if m:
        met, rest = m.group(1).strip(), rest[:m.start()]
    goal = ""
    g = re.search(r"\s*\(([^()]*)\)\s*$", head)
    if g and re.search(r"[≥≤<>]", g.group(1)):
        goal, head = g.group(1).strip(), head[:g.start()]
    return Finding(head.strip(), goal, rest.strip(), met)


def _target(f: Finding) -> str:
    if not f.met:
        return ""
    reached = f.met.lower().startswith("yes")
    goal = f.goal.lstrip("≥ ").strip() if f.goal.startswith("≥") else f.goal
    if goal.startswith("≤"):   # a ceiling ("≤ 0.09") in words
        goal = "at most " + goal.lstrip("≤ ").strip()
    return (f" The developers' target of {goal} was " + ("reached." if reached else "not reached.")) if goal else ""


def recognition_sentence(f: Finding) -> str | None:
    """A sentence for a recognition measure of the card, or None when ``f`` is not one."""
    name = f.measure.lower()
    first = re.match(rf"\s*({_NUMBER})\s*(%?)", f.value)
    if first is None:
        return None
    number = first.group(1) + (" %" if first.group(2) else "")
    spread = re.search(rf"±\s*({_NUMBER})", f.value)
    pairs = re.search(rf"({_NUMBER}) pairs", f.measure)
    if "10-fold" in name and "accuracy" in name:
        where = (f"on a public benchmark of {pairs.group(1)} pairs of face photographs" if pairs else
                 "on a public benchmark of pairs of face photographs")
        return (f"Recognition: {where} (Labeled Faces in the Wild), half of them of the same person and half of "
                f"two different people, the model was right {number} of the time"
                + (f" (standard deviation {spread.group(1)} between its 10 parts)" if spread else "")
                + ", with its decision threshold set on nine tenths of the pairs and checked on the remaining "
                  "tenth, in turn." + _target(f))
    if "accuracy" in name and "threshold" in name:
        tau = re.search(rf"τ = ({_NUMBER})", f.value)
        return (f"At the model's own fixed decision threshold{f' (τ = {tau.group(1)})' if tau else ''}, it was right "
                f"{number} of the time on the same benchmark." + _target(f))
    if name.startswith("tar") and "far" in name:
        rates = re.findall(rf"({_NUMBER})\s*%", f.value)
        if len(rates) == 2 and "1e-3" in name:
            return (f"Set so that only 1 in 1,000 pairs of different people is wrongly taken for the same person, it "
                    f"recognised {rates[0]} % of the same-person pairs; at the setting where both kinds of error are "
                    f"equally frequent, each occurred in {rates[1]} % of the comparisons." + _target(f))
        return None
    if name.startswith("cllr"):
        return (f"How well its scores convert into likelihood ratios on that benchmark (Cllr, from 0 for perfect "
                f"to 1 for likelihood ratios that carry no information): {number}." + _target(f))
    if "accuracy" in name:
        return f"Recognition accuracy ({f.measure}): {number}." + _target(f)
    return None


MAP_TESTS = (   # (words in the card's measure name, the test in plain words)
    (("region-swap",), "whether the maps point at a face region that was replaced by another person's"),
    (("deletion",), "whether hiding the regions the maps rank as most important first changes the model's "
                    "decision sooner than with other explanation methods"),
    (("hiding",), "whether hiding the regions the maps rank as least important first leaves the model's decision "
                  "in place longer than a simple guess or other explanation methods"),
    (("psnr", "reconstruction"), "how faithfully the model redraws the face, which the maps are built from"),
    (("modal_share", "cells_used"), "whether the model's features are spread over the whole face rather than one "
                                    "spot"),
    (("residual_mean_corr",), "whether the features' individual maps differ from one another"),
    (("partner_corr",), "whether a face's map changes with the face it is compared with"),
    (("randomized",), "whether the maps depend on what the model learned (the same maps from an untrained model "
                      "would mean they do not)"),
)


def map_test(f: Finding) -> str:
    name = f.measure.lower()
    return next((words for keys, words in MAP_TESTS if any(k in name for k in keys)),
                "a further technical test of the maps")


def target_status(met: str) -> str:
    """'reached', 'partly reached' (the card's "no (… yes …)") or 'not reached'."""
    met = met.lower()
    if met.startswith("yes"):
        return "reached"
    return "partly reached" if "yes" in met else "not reached"


def court_findings(fidelity: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(recognition sentences, [(map test in words, target_status)]) from the card's evaluation lines; map tests
    without a target are left out (the card has their figures), and a test measured twice is listed once."""
    recognition, maps = [], []
    for line in fidelity:
        f = parse_finding(line)
        if f is None:
            continue
        sentence = recognition_sentence(f)
        if sentence is not None:
            recognition.append(sentence)
        elif f.met:
            row = (map_test(f), target_status(f.met))
            if row not in maps:
                maps.append(row)
    return recognition, maps
