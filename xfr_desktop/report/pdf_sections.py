"""The sections of the case report as reportlab flowables: one function per section (building.py puts them in order).

Every paragraph and table names an embedded DejaVu font (:mod:`.pdfa`); images are encoded to PNG in memory.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from xml.sax.saxutils import escape

import numpy as np
from reportlab.lib import colors
from reportlab.lib.units import cm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import CondPageBreak, Flowable, KeepTogether, PageBreak, Spacer, Table

from ..core.calibration import VERBAL_SCALE_TEXT
from ..core.evaluative import labelled_propositions, round_significant
from ..core.image_quality import quality_rows
from ..core.map_style import REGION_FRACTION, colour_bar_caption, kind_scale, lut, map_style, unit
from .audit_trail import detail_pairs
from .calibration_lookup import calibration_source
from .court_words import court_findings
from .images import overlay_map, thumbnail_with_box
from .pdf_blocks import data_table, img, kv_table, markup, para, png, table_style
from .pdfa import BODY_FONT, MONO_FONT
from .report_data import ComparisonSection, ReportData
from .trust_section import trust_flowables

SIGNATURE_BOX_SIZE = (240.0, 70.0)   # points; each of the two signature boxes on the last page
SIGNATURE_BOX_GAP = 12.0
MAP_KINDS = ("S", "S_pos", "S_neg")   # titles, colours and scales: core.map_style, shared with the app and CLI


def short_time(iso: str) -> str:
    """'2026-11-28T02:30:29.297897+00:00' -> '2026-11-28 02:30:29 UTC' (other offsets kept)."""
    if not iso:
        return ""
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if t.tzinfo is None or t.utcoffset() == timezone.utc.utcoffset(None):
        return t.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    return t.replace(microsecond=0).isoformat(sep=" ")


def _time_with_note(text: str) -> str:
    """short_time of an ISO time that may carry a note in brackets after it."""
    iso, _, note = str(text or "").partition(" (")
    return short_time(iso) + (f" ({note}" if note else "")


def _fmt_float(v, digits=4) -> str:
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def _lr_text(section: ComparisonSection) -> str:
    if section.lr is None:
        return "not available: the model has no calibration (run xfr calibrate)"
    return f"LR = {lr_four_digits(section.lr)} ({section.lr_verbal})"


def lr_four_digits(lr: float) -> str:
    """'10.04', '1/62.63', '123,500': the LR to four significant digits (the headline has two), below 1 as a
    fraction."""
    value = round_significant(lr if lr >= 1 else 1 / lr, 4)
    text = f"{value:,.0f}" if value >= 1000 else f"{value:.4g}"
    return text if lr >= 1 else f"1/{text}"


def _images_flowables(section: ComparisonSection, st) -> list:
    """The section's heading, the two photographs with their crops, and the hashes."""
    heading = para(section.title, st["h1"])
    # images and hashes
    cells, caps = [], []
    for info in (section.image_a, section.image_b):
        if info.original is not None:
            notes = section.annotations.get(info.label.lower(), ())
            cells.append(img(thumbnail_with_box(info.photo, info.box, info.landmarks, annotations=notes),
                             5.2 * cm))
        else:
            cells.append(para("(original not available)", st["small"]))
        caps.append(para(f"Image {info.label}: {info.name}", st["caption"]))
    crops = []
    for info in (section.image_a, section.image_b):
        row = [img(a, 2.4 * cm) for a in (info.aligned, info.reconstruction) if a is not None]
        crops.append(Table([row], hAlign="CENTER", style=table_style(grid=False)) if row else para("", st["small"]))
    t = Table([cells, caps, crops, [para("aligned crop | reconstruction", st["caption"])] * 2],
              colWidths=[8.3 * cm, 8.3 * cm])
    t.setStyle(table_style())
    t.setStyle([("ALIGN", (0, 0), (-1, -1), "CENTER")])
    out = [CondPageBreak(4 * cm), KeepTogether([heading, t]), Spacer(1, 4)]
    out.append(kv_table([
        (f"SHA-256 of image {section.image_a.label}", para(section.image_a.sha256 or "n/a", st["mono"])),
        (f"SHA-256 of image {section.image_b.label}", para(section.image_b.sha256 or "n/a", st["mono"])),
        ("Model SHA-256", para(section.model_sha256 or "n/a", st["mono"])),
        ("Analysed at", _time_with_note(section.analysed_at) or "n/a"),
        ("Result shown", f"{section.result_choice} (result id {section.result_id})" if section.result_id else
         "the explanation computed for this report"),
    ]))
    return out


PARAMETER_LABELS = {"threshold": "Decision threshold τ", "normalization": "Normalization of H",
                    "engine": "Residual engine", "device": "Device", "prealigned": "Inputs already aligned",
                    "model_threshold": "Model's calibrated threshold", "analysed_at": "Analysis time"}
PARAMETERS_SHOWN_ELSEWHERE = ("threshold", "likelihood_ratio", "channels", "top_k", "face_index_a", "face_index_b",
                              "trust")


def parameter_rows(section: ComparisonSection) -> list[tuple[str, str]]:
    """The result's parameters as (name, value) rows: face numbers 1-based, channels summarised, the rest
    flattened whole (nested keys dotted)."""
    p = section.parameters or {}
    channels = p.get("channels")
    chan_text = "all" if not channels else f"{len(channels)} selected: " + ", ".join(str(c) for c in channels[:24]) \
        + (" …" if len(channels) > 24 else "")
    used = "" if section.n_channels_used is None else f" ({section.n_channels_used} of {section.n_channels} used)"
    rows = []
    for side in ("a", "b"):
        k = p.get(f"face_index_{side}")
        if k is not None:
            rows.append((f"Face in image {side.upper()}", f"face {int(k) + 1}" + (" (the largest)" if int(k) == 0
                                                                                    else "")))
    rows += [("Channels", chan_text + used), ("Top-k", str(p.get("top_k") or "off"))]
    for key, value in p.items():
        if key in PARAMETERS_SHOWN_ELSEWHERE:
            continue
        label = PARAMETER_LABELS.get(key, key.replace("_", " "))
        if key == "analysed_at":
            value = short_time(str(value))
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        for sub, text in detail_pairs({label: value}):
            rows.append((sub, text))
    return rows


def _result_flowables(section: ComparisonSection, st) -> list:
    """Score, threshold, decision, LR and the parameters of the analysis (a two-column table)."""
    decision = section.model_decision
    decision_text = decision.text if decision is not None else \
        f"model decision at τ = {section.threshold:.3f}: {section.decision_label}"
    if decision is not None and decision.flags:
        decision_text += "".join(f"\n⚠ {flag}" for flag in decision.flags)
    return [Spacer(1, 4), KeepTogether([
        para("The model's explanation: technical result and parameters", st["h2"]),
        para("What the model computed; the evaluative result is the likelihood ratio above, and the thresholded "
             "decision below is the model's, not a conclusion.", st["small"]),
        kv_table([("Score (cosine similarity)", _fmt_float(section.score)),
                   ("Model decision", decision_text),
                   ("Likelihood ratio (four significant digits)", _lr_text(section))] + parameter_rows(section))])]


def evaluation_flowables(section: ComparisonSection, data: ReportData, st) -> list:
    """The headline: the LR (two digits, a bound at the calibration's limit) with its verbal equivalent, the two
    propositions and the calibration it rests on."""
    hp, hd = labelled_propositions(data.propositions)
    s = section.lr_statement
    if s is None:
        head, verbal = "No likelihood ratio: the model has no calibration (run xfr calibrate).", ""
    else:
        head, verbal = f"Likelihood ratio {s.equation}", f"The findings provide {s.verbal}."
    rows = [[para(head, st["big"])]]
    if verbal:
        rows.append([para(verbal, st["body"])])
    rows += [[para(f"Propositions — {hp}\n{hd}", st["small"])],
             [para("Calibration: " + (section.calibration_note or "not recorded"), st["small"])]]
    if s is not None and s.at_limit:
        rows.append([para("The LR lies at the limit of what the calibration's reference set can support; the true "
                          "value may be further from 1.", st["small"])])
    t = Table(rows, colWidths=[17.6 * cm], hAlign="LEFT")
    t.setStyle(table_style(grid=False))
    t.setStyle([("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#1a3b6b")),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f2f5fa"))])
    return [Spacer(1, 4), KeepTogether([para("Evaluation", st["h2"]), t])]


def quality_flowables(section: ComparisonSection, st) -> list:
    """Image quality and provenance of both photos side by side, with the warnings."""
    if not section.quality:
        return []
    qa, qb = section.quality.get("a", {}), section.quality.get("b", {})
    rows = [[para(h, st["small"]) for h in ("", f"Image {section.image_a.label}", f"Image {section.image_b.label}")]]
    for (label, a), (_, b) in zip(quality_rows(qa), quality_rows(qb)):
        rows.append([para(label, st["small"]), para(a, st["small"]), para(b, st["small"])])
    warnings = [f"Image {lab}: {w}" for lab, q in (("A", qa), ("B", qb)) for w in (q.get("warnings") or [])]
    out = [para("Image quality and provenance", st["h2"]), data_table(rows, [5.0, 6.4, 6.4])]
    out += [para(f"⚠ {w}", st["small"]) for w in warnings] or [para("No value falls outside the thresholds of the "
                                                                   "examiner guide.", st["small"])]
    return [Spacer(1, 4), KeepTogether(out)]


def morphology_flowables(section: ComparisonSection, st) -> list:
    """The examiner's feature-by-feature (FISWG) comparison -- kept apart from the model's explanation."""
    out = [para("Morphological comparison by the examiner (FISWG features)", st["h2"])]
    if not section.features:
        return [Spacer(1, 4), KeepTogether(out + [para("No feature has been assessed for this comparison.",
                                                       st["small"])])]
    rows = [[para(h, st["small"]) for h in ("feature", "assessment", "note", "by")]]
    rows += [[para(f, st["small"]), para(v, st["small"]), para(n or "", st["small"]), para(a, st["small"])]
             for f, v, n, a in section.features]
    notes = [(side.upper(), a) for side in "ab" for a in section.annotations.get(side, [])]
    out.append(data_table(rows, [4.0, 2.6, 8.4, 2.8]))
    if notes:
        out.append(para("Annotations (magenta, numbered on the photos above): " + "; ".join(
            f"{side}{i}: {a.kind} {a.label or ''}".rstrip() + f" ({a.author})"
            for side in "AB" for i, a in enumerate([a for s_, a in notes if s_ == side], 1)), st["small"]))
    return [Spacer(1, 4), KeepTogether(out)]


def review_flowables(section: ComparisonSection, st) -> list:
    """The ACE-V verification: each reviewer's agreement or disagreement and note."""
    if not section.reviews:
        return [para("Verification (ACE-V): no review recorded for this comparison.", st["small"])]
    rows = [[para(h, st["small"]) for h in ("reviewer", "verdict", "note", "time")]]
    rows += [[para(r.reviewer, st["small"]), para("agrees" if r.verdict == "agree" else "disagrees", st["small"]),
              para(r.note, st["small"]), para(short_time(r.created_at), st["small"])] for r in section.reviews]
    return [para("Verification (ACE-V) by a second examiner", st["h2"]), data_table(rows, [3.4, 2.2, 8.4, 3.8])]


def _maps_flowables(section: ComparisonSection, st) -> list:
    """S, S⁺ and S⁻ over both faces, each kind on its own scale shared by both images (core.map_style.kind_scale,
    as in the app and the CLI), with labelled colour bars that state the unit and the maximum."""
    if not section.maps:
        return []
    normalization = (section.parameters or {}).get("normalization", "sum")
    scales = {k: kind_scale([section.maps[s][k] for s in "ab"], k) for k in MAP_KINDS}
    rows = [[para("", st["small"])] + [para(map_style(k).title, st["caption"]) for k in MAP_KINDS]]
    for s, info in (("a", section.image_a), ("b", section.image_b)):
        row = [para(f"Image {info.label}", st["small"])]
        for key in MAP_KINDS:
            top = scales[key].high if scales[key] is not None else 0.0
            row.append(img(overlay_map(info.aligned, section.maps[s][key], top, key), 3.6 * cm))
        rows.append(row)
    rows.append([para("colour scale", st["small"])] + [_scale_cell(k, scales[k], normalization, st) for k in MAP_KINDS])
    mt = Table(rows, colWidths=[2.0 * cm, 4.1 * cm, 4.1 * cm, 4.1 * cm], hAlign="LEFT")
    mt.setStyle(table_style())
    empty = all(v is None for v in scales.values())
    title = para("Explanation maps (each map on its own scale, shared by both images)", st["h2"])
    return [Spacer(1, 4), KeepTogether([title, mt, para(colour_scale_meaning(normalization, empty), st["small"])])]


def _scale_cell(kind: str, scale, normalization: str, st):
    """A kind's colour bar and caption, or a line saying the map is zero (a bar without a scale would mislead)."""
    if scale is None:
        return para(f"{map_style(kind).symbol} is zero on both images: no scale.", st["caption"])
    return Table([[ColourBar(kind, scale, 3.6 * cm)], [para(colour_bar_caption(kind, scale, normalization),
                                                            st["caption"])]], style=table_style(grid=False))


def colour_scale_meaning(normalization: str, empty: bool = False) -> str:
    """What the colours measure, in words, for the caption under the maps."""
    if empty:
        return "Every map is zero: no region moves the score away from τ, so the colour bars show no scale."
    unit = ("the share of the score margin (score − τ) each pixel carries, in cosine score per pixel: with 'sum' "
            "normalization the pixels of H add up to score − τ" if normalization == "sum" else
            f"the change of the reconstruction per pixel ({normalization} normalization; relative units)")
    return (f"Colour scale: {unit}. An untinted face is 0 (no contribution). Each map has its own scale, from 0 to "
            "its largest value over both images (stated under its bar), so the two images compare within a map; "
            "across maps, compare the numbers under the bars, not the colours (S⁻ of a mated pair is often far "
            "smaller than S).")


class ColourBar:
    """Factory for a flowable: a horizontal colour bar of a map kind with its ticks, labelled in the embedded font."""

    def __new__(cls, kind: str, scale, width: float, height: float = 9.0):
        ramp = np.repeat(lut(kind)[None, :, :], 8, axis=0)
        image = ImageReader(io.BytesIO(png(ramp)))

        class Bar(Flowable):
            def wrap(self, aw, ah):
                self.width, self.height = width, height + 12
                return self.width, self.height

            def draw(self):
                c = self.canv
                c.drawImage(image, 0, 12, width=width, height=height)
                c.setFont(BODY_FONT, 5.8)
                span = (scale.high - scale.low) or 1.0
                for value, label in scale.ticks:
                    x = (value - scale.low) / span * width
                    c.line(x, 10, x, 12)
                    if x <= 1:
                        c.drawString(0, 3, label)
                    elif x >= width - 1:
                        c.drawRightString(width, 3, label)
                    else:
                        c.drawCentredString(x, 3, label)

        return Bar()


def _channels_flowables(section: ComparisonSection, st) -> list:
    """The top similar and dissimilar channels with their regions."""
    out = []
    for label, chans in (("Top similar channels (push towards a match)", section.similar),
                         ("Top dissimilar channels (push towards a non-match)", section.dissimilar)):
        if not chans:
            continue
        rows = [[para(h, st["small"]) for h in ("channel", "weight w = p − T", "product p = uA·uB",
                                              "region in A", "region in B")]]
        for c in chans:
            rows.append([para(str(c.index), st["small"]), para(f"{c.weight:+.5f}", st["small"]),
                         para(f"{c.product:+.5f}", st["small"]),
                         img(c.region_a, 2.2 * cm) if c.region_a is not None else para("", st["small"]),
                         img(c.region_b, 2.2 * cm) if c.region_b is not None else para("", st["small"])])
        out += [Spacer(1, 4), KeepTogether([para(label, st["h2"]), data_table(rows, [1.6, 3.2, 3.0, 2.6, 2.6])])]
    return out + ([para(channel_region_scale(), st["small"])] if out else [])


def channel_region_scale() -> str:
    """The scale rule of the channel regions, stated under their tables."""
    return (f"Regions: the channel's residual over each aligned face ({unit('channel')}), on one scale per channel "
            f"from 0 to its peak over both faces, as in the app; the white box encloses where it reaches "
            f"{REGION_FRACTION * 100:.0f} % of its peak on that face.")


def comparison_section(section: ComparisonSection, st, data: ReportData | None = None) -> list:
    """One comparison: images and hashes, the evaluation (LR), photo quality, the examiner's morphological
    comparison, then -- apart -- the model's explanation (result, maps, channels), the examiner's note and the
    review."""
    data = data or ReportData(case_number="")
    out = _images_flowables(section, st) + evaluation_flowables(section, data, st) + quality_flowables(section, st)
    out += morphology_flowables(section, st)
    out += _result_flowables(section, st) + _maps_flowables(section, st) + trust_flowables(section, st)
    out += _channels_flowables(section, st)
    if section.conclusion:
        out += [para("Examiner's note on this comparison", st["h2"]), para(section.conclusion, st["body"])]
    return out + review_flowables(section, st)


def unreported_section(data: ReportData, st) -> list:
    """Comparisons of the case that have no result in this report, and why: none is left out silently."""
    if not data.unreported:
        return []
    rows = [[para(h, st["small"]) for h in ("comparison", "status")]]
    rows += [[para(u.title, st["small"]), para(u.reason, st["small"])] for u in data.unreported]
    return [para("Comparisons without a reported result", st["h1"]),
            para("These comparisons belong to the case but contribute nothing to this report.", st["small"]),
            data_table(rows, [9.0, 8.8])]


class _SignaturePlaceholder:
    """Factory for a flowable that reserves (and frames) the two signature boxes -- the examiner's and the
    reviewer's (ACE-V verification) -- and records where they landed. A report rendered for signing leaves the
    boxes blank but for their labels: the signatures' appearances fill them, and no "Not signed" text may remain
    underneath (text extraction would still find it)."""

    def __new__(cls, record: dict, signing: bool = False):
        w, h = SIGNATURE_BOX_SIZE
        boxes = (("box", "Examiner's digital signature", "Not signed: this PDF carries no digital signature"),
                 ("review_box", "Reviewer's digital co-signature", "Not co-signed by a reviewer"))

        class Box(Flowable):
            def wrap(self, aw, ah):
                self.width, self.height = 2 * w + SIGNATURE_BOX_GAP, h
                return self.width, self.height

            def draw(self):
                c = self.canv
                for i, (key, label, unsigned) in enumerate(boxes):
                    x0 = i * (w + SIGNATURE_BOX_GAP)
                    c.setStrokeColor(colors.HexColor("#7a7a7a"))
                    c.setDash(3, 2)
                    c.rect(x0, 0, w, h)
                    c.setDash()
                    c.setFont(BODY_FONT, 7.5)
                    c.setFillColor(colors.HexColor("#555555"))
                    c.drawString(x0 + 6, h - 14, label)
                    if not signing:
                        c.drawString(x0 + 6, h - 26, unsigned)
                    x, y = c.absolutePosition(x0, 0)
                    record[key] = (x, y, x + w, y + h)
                record["page"] = c.getPageNumber()

        return Box()


def title_section(data: ReportData, generated_at: str, st) -> list:
    """Title and the case's particulars."""
    return [
        para("Face comparison report", st["title"]),
        para(f"Case {data.case_number}" + (f": {data.title}" if data.title else ""), st["big"]), Spacer(1, 6),
        kv_table([
            ("Case number", data.case_number), ("Title", data.title or "—"), ("Examiner", data.examiner or "—"),
            ("Organisation", data.organisation or "—"), ("Case created", short_time(data.case_created) or "—"),
            ("Case last modified", short_time(data.case_modified) or "—"), ("Report generated", generated_at),
            ("Software", f"XFR Desktop {data.software_version}"),
            ("Comparisons in this report", str(len(data.comparisons))),
        ]),
    ]


def propositions_section(data: ReportData, st) -> list:
    """The case's two propositions, which every likelihood ratio in the report weighs."""
    hp, hd = labelled_propositions(data.propositions)   # the labels the LRs' verbal equivalents name
    return [para("Propositions", st["h1"]),
            para("Each likelihood ratio below weighs the findings under these two propositions:", st["small"]),
            para(hp, st["body"]), para(hd, st["body"])]


def _summary_lr(section: ComparisonSection) -> str:
    s = section.lr_statement
    if s is not None:
        return f"{s.equation}\n{s.verbal}"
    if section.lr is not None:
        return _lr_text(section)
    return "no likelihood ratio: the model has no calibration"


def summary_section(data: ReportData, st) -> list:
    """Page 1's table: each comparison's number, its two images, its likelihood ratio with the verbal equivalent
    and the examiner's conclusion on it; comparisons without a result are listed too."""
    rows = [[para(h, st["small"]) for h in ("No.", "Image A", "Image B", "Likelihood ratio",
                                          "Examiner's conclusion on the comparison")]]
    for c in data.comparisons:
        rows.append([para(str(c.number), st["small"]), para(c.image_a.name or c.image_a.sha256[:12], st["small"]),
                     para(c.image_b.name or c.image_b.sha256[:12], st["small"]), para(_summary_lr(c), st["small"]),
                     para(c.conclusion or "none entered", st["small"])])
    for u in data.unreported:
        rows.append([para(str(u.number), st["small"]), para(u.title, st["small"]), para("", st["small"]),
                     para("no result reported", st["small"]), para(u.reason, st["small"])])
    return [para("The comparisons", st["h1"]), data_table(rows, [1.0, 3.3, 3.3, 5.1, 5.1]), Spacer(1, 3),
            para("Each comparison follows in full on the next pages. How the likelihood ratios were obtained, the "
                 "verbal scale, the method, the model and its limitations: Appendix A.", st["small"])]


def method_section(st) -> list:
    """How the comparison is made: in plain words, then in technical terms for a specialist."""
    return [
        para("How a comparison is made", st["h2"]),
        para("The software finds the face in each photograph and lines it up in a standard position. A "
             "face-recognition model (a neural network trained on many face photographs) turns each face into a "
             "list of numbers; how alike the two lists are gives a similarity score between −1 and 1. The score is "
             "turned into a likelihood ratio by comparing it with the scores of reference pairs of photographs "
             "known to show the same person or two different people. The coloured maps in each comparison show "
             "which regions of the faces moved the model's score up or down; they describe the model, not the "
             "anatomy of the face.", st["body"]),
        para("In technical terms", st["h3"]),
        para("Faces are detected (YuNet), aligned to the model's template and embedded by the model; the score is the "
             "cosine similarity of the two embeddings (F = global max pool of the last convolutional map C) and the "
             "decision compares it with the threshold τ. The explanation follows Xu, Lu & Ebrahimi, 'Discriminative "
             "Deep Feature Visualization for Explainable Face Recognition': each channel's strongest activation is "
             "removed, the face reconstructed by the decoder, and the per-channel reconstruction change weighted by "
             "w[i] = p[i] − T and summed into H, where p[i] = uA[i]·uB[i] is the product of the i-th components of "
             "the two unit-length embeddings (the p[i] sum to the score) and T = τ / channels; with 'sum' "
             "normalization and all channels, H adds up to the margin score − τ. S = |H|; S⁺ = ReLU(H) marks "
             "regions that make the faces look alike to the model, S⁻ = ReLU(−H) regions that make them look "
             "different.", st["small"]),
    ]


def model_section(data: ReportData, st) -> list:
    """The model: its name and fingerprint, and what its card says was measured, in plain words (court_words);
    the card's own text, written for developers, is not reproduced."""
    story = [
        para("The model", st["h2"]),
        kv_table([("Model", data.model.name or "—"),
                  ("Model SHA-256", para(data.model.sha256 or "n/a", st["mono"]))]),
        para("The SHA-256 is a fingerprint of the exact model file used: any change to the file changes it. The "
             "model's documentation (its model card), kept with the software, is identified by the same fingerprint.",
             st["small"]),
    ]
    if not data.model.card_excerpt and not data.model.fidelity:
        return story + [para(data.model.card_note or "No model card is available for this model file, so no "
                             "measurement of its accuracy is reported.", st["small"])]
    recognition, maps = court_findings(data.model.fidelity)
    story.append(para("What was measured", st["h3"]))
    if data.model.card_note:   # a card shown with a reservation (e.g. no signed checkpoint covers it yet)
        story.append(para(data.model.card_note, st["small"]))
    if not recognition and not maps:
        story.append(para("The model card states no measurement of this model: its accuracy and the reliability of "
                          "its maps are unknown.", st["small"]))
    story += [para(f"• {line}", st["body"]) for line in recognition]
    if maps:
        short = sum(status != "reached" for _, status in maps)
        story.append(para(f"The maps were tested in {len(maps)} ways against targets the developers set; "
                          f"{len(maps) - short} were reached and {short} not, or only in part. A target not reached "
                          "limits how far the maps can be relied on; the maps never establish identity on their own.",
                          st["body"]))
        story += [para(f"• {words}: target {status}", st["small"]) for words, status in maps]
    return story


def likelihood_ratio_section(data: ReportData, st) -> list:
    """The calibration behind the likelihood ratios, and the verbal scale."""
    story = [para("How the likelihood ratios were obtained", st["h2"])]
    if data.calibration:
        c = data.calibration
        lo, hi = c.get("bounds", [None, None])
        story.append(para(
            f"Scores are converted into a likelihood ratio LR = P(score | same person) / P(score | different "
            f"people) by {c['method']} calibration on reference pairs of photographs whose truth is known: "
            f"{calibration_source(c)}. How well the likelihood ratios are calibrated on that set "
            f"(Cllr, 0 perfect, 1 no information): {c['cllr']:.3f}; "
            f"the best any calibration of these scores could reach (Cllr_min): {c['cllr_min']:.3f}. LRs are limited "
            f"to [1/{1 / lo:,.0f}, {hi:,.0f}], the range this reference set can support.", st["body"]))
    elif any(c.lr is not None for c in data.comparisons):
        story.append(para("The likelihood ratios are those computed when each result was saved; the "
                          "calibration that produced them is not available for the model file now (the model or its "
                          "calibration changed since).", st["body"]))
    else:
        story.append(para("No calibration is stored for this model, so no likelihood ratio is reported.", st["body"]))
    story.append(para(f"Verbal scale: {VERBAL_SCALE_TEXT}", st["small"]))
    return story


def conclusion_section(data: ReportData, st) -> list:
    """The examiner's conclusion on the case, and the case notes."""
    story = [CondPageBreak(6 * cm), para("Examiner's conclusion on the case", st["h1"])]
    if data.conclusion:
        # long texts go in paragraphs (which split across pages), not in table cells (which cannot)
        story.append(para(data.conclusion, st["body"]))
        rows = [("Scale", data.conclusion_scale or "—"), ("Author", data.conclusion_author or "—"),
                ("Entered", short_time(data.conclusion_time) or "—")]
        story += [Spacer(1, 4), kv_table(rows)]
        if data.conclusion_notes:
            story += [para("Notes", st["h2"]), para(data.conclusion_notes, st["body"])]
    else:
        story.append(para("No conclusion has been entered for this case.", st["body"]))
    if data.case_notes:
        story += [para("Case notes", st["h2"]), para(data.case_notes, st["body"])]
    return story


def limitations_section(data: ReportData, st) -> list:
    """The general limitations."""
    return [para("Limitations", st["h2"]), para(data.limitations, st["body"])]


APPENDIX_A = "Appendix A: the method and the model"


def method_appendix(data: ReportData, st) -> list:
    """Appendix A on a new page, for a court reader: how a comparison is made, the model and what was measured
    about it, how the likelihood ratios were obtained, and the limitations. No repository paths."""
    return ([PageBreak(), para(APPENDIX_A, st["h1"])] + method_section(st) + model_section(data, st)
            + likelihood_ratio_section(data, st) + limitations_section(data, st))


def audit_appendix(data: ReportData, st) -> list:
    """Appendix on a new page: the case's audit trail, one block per entry with its details whole (key: value
    lines, which wrap and may continue on the next page), and its verification at export."""
    story = [PageBreak(), para("Appendix B: audit trail of the case", st["h1"])]
    if data.audit_status:
        story.append(para(f"Chain verification at export: {data.audit_status}", st["small"]))
    if not data.audit:
        return story + [para("No audit trail is attached (report built outside a case).", st["small"])]
    story.append(para("Each entry: number, time (UTC), who, what, on which object (a comparison by its number in "
                      "this report), and the first 16 hex digits of the entry's hash; below it the entry's details.",
                      st["small"]))
    for r in data.audit:
        head = " · ".join(str(v) for v in (f"#{r.get('id', '')}", short_time(r.get("time", "")), r.get("actor", ""),
                                           r.get("action", ""), r.get("object", "")) if v)
        block = [Spacer(1, 3), markup(f"<b>{escape(head)}</b> · <font name='{MONO_FONT}'>"
                                      f"{escape(str(r.get('hash', ''))[:16])}</font>", st["small"])]
        for key, value in r.get("details") or []:
            value = audit_value(key, value)
            block.append(markup(f"{escape(key)}: {escape(value)}" if key else escape(value), st["detail"]))
        story.append(KeepTogether(block))
    return story


def audit_value(key: str, value: str) -> str:
    """A detail's value as the appendix prints it: a stored face index (counted from 0) with the face number the
    rest of the report gives it (counted from 1)."""
    if key.rsplit(".", 1)[-1] in ("face_index_a", "face_index_b") and value.isdigit():
        return f"{value} (face {int(value) + 1})"
    return value


def verification_note(data: ReportData) -> str:
    """What the signature boxes sign, stated once next to them: which comparisons hold a recorded review (ACE-V
    verification) and which none. A reviewer's co-signature is no review of its own, so the page never implies
    one the comparisons do not show."""
    reviewed = [f"comparison {s.number} by " + ", ".join(
        f"{r.reviewer} ({'agrees' if r.verdict == 'agree' else 'disagrees'})" for r in s.reviews)
        for s in data.comparisons if s.reviews]
    missing = [str(s.number) for s in data.comparisons if not s.reviews]
    parts = reviewed + ([f"none for comparison{'s' if len(missing) > 1 else ''} {', '.join(missing)}"]
                        if missing else [])
    return (f"Recorded verification (ACE-V) in this report: {'; '.join(parts) or 'none'}. A reviewer's signature "
            "below co-signs the report as it stands; it records no review of a comparison.")


def signature_section(record: dict, signing: bool = False, note: str = "", st=None) -> list:
    """The signature boxes at the end of the last page, under ``note`` (:func:`verification_note`); ``record``
    learns where they landed."""
    head = [para(note, st["small"]), Spacer(1, 4)] if note else []
    return [Spacer(1, 14), CondPageBreak(SIGNATURE_BOX_SIZE[1] + 60),
            KeepTogether(head + [_SignaturePlaceholder(record, signing)])]
