"""The examiner's own examination of a comparison, kept apart from the model's explanation: the FISWG
feature-by-feature morphological comparison, each photo's quality and provenance, the second examiner's review
(ACE-V verification) and the case's propositions.

Every change is one store call (audited there, under the examiner's name from the preferences); the panel then
re-reads what the store holds, so what is shown is always what was recorded. A removed comparison is read-only.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout,
                               QWidget)

from ..core.errors import XfrError
from ..core.evaluative import DEFAULT_DEFENCE, DEFAULT_PROSECUTION
from ..core.image_quality import QUALITY_ROWS, quality_rows
from ..core.map_style import DISSIMILAR_RGB, SIMILAR_RGB
from ..core.morphology import ASSESSMENT_VALUES, FISWG_FEATURES, VALUE_LABELS, assessment_summary

NOT_ASSESSED = ""
VALUE_COLOURS = {"similar": QColor(*SIMILAR_RGB, 50), "dissimilar": QColor(*DISSIMILAR_RGB, 50)}


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("verbal")
    return label


class ExaminationPanel(QTabWidget):
    message = Signal(str, int)      # status bar text, milliseconds

    def __init__(self, store, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.case_id: int | None = None
        self.comparison_id: int | None = None
        self.read_only = True
        self._loading = False
        self.addTab(self._features_tab(), "Features")
        self.addTab(self._photos_tab(), "Photos")
        self.addTab(self._review_tab(), "Review")
        self.addTab(self._propositions_tab(), "Propositions")
        self.set_target(None, None)

    # --- construction -----------------------------------------------------------------------------------
    def _features_tab(self) -> QWidget:
        self.features = QTableWidget(len(FISWG_FEATURES), 3)
        self.features.setObjectName("featureTable")
        self.features.setHorizontalHeaderLabels(["Feature (FISWG)", "Assessment", "Note"])
        self.features.verticalHeader().setVisible(False)
        self.features.verticalHeader().setDefaultSectionSize(26)
        header = self.features.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.value_boxes: dict[str, QComboBox] = {}
        for row, (key, label) in enumerate(FISWG_FEATURES):
            item = QTableWidgetItem(label)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.features.setItem(row, 0, item)
            box = QComboBox()
            box.addItem("— not assessed", NOT_ASSESSED)
            for value, text in ASSESSMENT_VALUES:
                box.addItem(text, value)
            box.currentIndexChanged.connect(lambda _i, k=key: self._feature_edited(k))
            self.value_boxes[key] = box
            self.features.setCellWidget(row, 1, box)
            self.features.setItem(row, 2, QTableWidgetItem(""))
        self.features.itemChanged.connect(self._note_edited)
        self.feature_summary = _caption("")
        return self._page(_caption("Your morphological comparison, feature by feature. It is recorded apart from"
                                   " the model's maps and printed next to them in the report."),
                          self.features, self.feature_summary)

    def _photos_tab(self) -> QWidget:
        self.quality = QTableWidget(len(QUALITY_ROWS), 2)
        self.quality.setObjectName("qualityTable")
        self.quality.setHorizontalHeaderLabels(["Photo A", "Photo B"])
        self.quality.setVerticalHeaderLabels([label for label, _ in QUALITY_ROWS])
        self.quality.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.quality.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.quality.verticalHeader().setDefaultSectionSize(21)
        self.quality_warnings = QLabel("")
        self.quality_warnings.setObjectName("hint")
        self.quality_warnings.setWordWrap(True)
        return self._page(self.quality, self.quality_warnings)

    def _review_tab(self) -> QWidget:
        self.reviews = QListWidget()
        self.reviews.setObjectName("reviewList")
        self.reviewer_edit = QLineEdit()
        self.reviewer_edit.setPlaceholderText("the second examiner's name")
        self.verdict_combo = QComboBox()
        self.verdict_combo.addItem("Agree with the examination", "agree")
        self.verdict_combo.addItem("Disagree", "disagree")
        self.review_note = QPlainTextEdit()
        self.review_note.setPlaceholderText("What was checked, and why you agree or not")
        self.review_note.setFixedHeight(60)
        self.review_button = QPushButton("Record review")
        self.review_button.clicked.connect(self.record_review)
        self.review_status = QLabel("")
        self.review_status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Reviewer", self.reviewer_edit)
        form.addRow("Verdict", self.verdict_combo)
        form.addRow("Note", self.review_note)
        return self._page(_caption("Verification (ACE-V): a second examiner checks this comparison and records"
                                   " agreement or disagreement. The reviewer must not be the case's examiner."),
                          self.reviews, form, self.review_button, self.review_status)

    def _propositions_tab(self) -> QWidget:
        self.hp_edit, self.hd_edit = QPlainTextEdit(), QPlainTextEdit()
        for edit, default in ((self.hp_edit, DEFAULT_PROSECUTION), (self.hd_edit, DEFAULT_DEFENCE)):
            edit.setPlaceholderText(f"default: {default}")
            edit.setFixedHeight(54)
        self.propositions_button = QPushButton("Save propositions")
        self.propositions_button.clicked.connect(self.save_propositions)
        self.propositions_status = _caption("")
        form = QFormLayout()
        form.addRow("Prosecution (Hp)", self.hp_edit)
        form.addRow("Defence (Hd)", self.hd_edit)
        return self._page(_caption("The likelihood ratio weighs the findings under these two propositions of the"
                                   " case; leave a field empty for the default wording."), form,
                          self.propositions_button, self.propositions_status)

    @staticmethod
    def _page(*parts) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(4, 4, 4, 4)
        for part in parts:
            lay.addLayout(part) if isinstance(part, (QFormLayout, QHBoxLayout)) else lay.addWidget(part)
        return page

    # --- what the store holds -> widgets ------------------------------------------------------------------
    def set_target(self, case_id: int | None, comparison_id: int | None, removed: bool = False) -> None:
        self.case_id, self.comparison_id = case_id, comparison_id
        self.read_only = comparison_id is None or removed
        self.features.setEnabled(not self.read_only)
        for w in (self.reviewer_edit, self.verdict_combo, self.review_note, self.review_button):
            w.setEnabled(not self.read_only)
        for w in (self.hp_edit, self.hd_edit, self.propositions_button):
            w.setEnabled(case_id is not None)
        try:
            self.show_features()
            self.show_quality()
            self.show_reviews()
            self.show_propositions()
        except XfrError as exc:
            self.message.emit(f"Cannot read the examination: {exc}", 8000)

    def show_features(self) -> None:
        current = self.store.feature_assessments(self.comparison_id) if self.comparison_id is not None else {}
        self._loading = True
        try:
            for row, (key, _) in enumerate(FISWG_FEATURES):
                record = current.get(key)
                box = self.value_boxes[key]
                box.setCurrentIndex(box.findData(record.value if record else NOT_ASSESSED))
                note = self.features.item(row, 2)
                note.setText(record.note if record else "")
                note.setToolTip(f"{record.author}, {record.created_at[:16].replace('T', ' ')} UTC" if record else "")
                colour = VALUE_COLOURS.get(record.value if record else "")
                self.features.item(row, 0).setBackground(colour if colour is not None else QColor(0, 0, 0, 0))
        finally:
            self._loading = False
        counts = assessment_summary({k: r.value for k, r in current.items()})
        self.feature_summary.setText(", ".join(f"{VALUE_LABELS[k]}: {n}" for k, n in counts.items())
                                     + f"; not assessed yet: {len(FISWG_FEATURES) - len(current)}")

    def _feature_edited(self, key: str) -> None:
        if self._loading or self.read_only:
            return
        value = self.value_boxes[key].currentData()
        if value == NOT_ASSESSED:
            self.show_features()   # an assessment is never deleted, only replaced by a newer one
            self.message.emit("A recorded assessment can be changed, not withdrawn (the audit trail keeps all).", 6000)
            return
        row = [k for k, _ in FISWG_FEATURES].index(key)
        self._save_feature(key, value, self.features.item(row, 2).text())

    @Slot(object)
    def _note_edited(self, item: QTableWidgetItem) -> None:
        if self._loading or self.read_only or item.column() != 2:
            return
        key = FISWG_FEATURES[item.row()][0]
        value = self.value_boxes[key].currentData()
        if value == NOT_ASSESSED:
            self.message.emit("Choose the assessment first; the note is saved with it.", 6000)
            return
        self._save_feature(key, value, item.text())

    def _save_feature(self, key: str, value: str, note: str) -> None:
        try:
            self.store.set_feature_assessment(self.comparison_id, key, value, note=note.strip())
        except XfrError as exc:
            self.message.emit(f"Not saved: {exc}", 8000)
        self.show_features()

    def show_quality(self) -> None:
        warnings = []
        for col, side in enumerate("ab"):
            record = self.store.image_quality(self.comparison_id, side) if self.comparison_id is not None else None
            data = record.data if record is not None else {}
            for row, (_, text) in enumerate(quality_rows(data)):
                self.quality.setItem(row, col, QTableWidgetItem(text))
            warnings += [f"Photo {side.upper()}: {w}" for w in data.get("warnings") or []]
        self.quality_warnings.setText("⚠ " + "<br>⚠ ".join(warnings) if warnings else
                                      ("No value below its threshold." if self.comparison_id is not None else ""))

    def show_reviews(self) -> None:
        self.reviews.clear()
        for r in self.store.list_reviews(self.comparison_id) if self.comparison_id is not None else []:
            self.reviews.addItem(f"{r.created_at[:16].replace('T', ' ')} UTC · {r.reviewer}: "
                                 f"{'AGREES' if r.verdict == 'agree' else 'DISAGREES'}" + (f" — {r.note}" if r.note
                                                                                           else ""))
        if not self.reviews.count():
            self.reviews.addItem("Not reviewed yet.")

    @Slot()
    def record_review(self) -> None:
        reviewer = self.reviewer_edit.text().strip()
        if not reviewer:
            self.review_status.setText("Enter the reviewer's name.")
            return
        try:
            self.store.add_review(self.comparison_id, self.verdict_combo.currentData(),
                                  note=self.review_note.toPlainText().strip(), reviewer=reviewer)
        except XfrError as exc:
            self.review_status.setText(f"Not recorded: {exc}")
            return
        self.review_note.clear()
        self.review_status.setText("Review recorded.")
        self.show_reviews()

    def show_propositions(self) -> None:
        case = self.store.get_case(self.case_id) if self.case_id is not None else None
        self.hp_edit.setPlainText(case.proposition_prosecution if case else "")
        self.hd_edit.setPlainText(case.proposition_defence if case else "")
        self.propositions_status.setText("")

    @Slot()
    def save_propositions(self) -> None:
        try:
            self.store.set_propositions(self.case_id, prosecution=self.hp_edit.toPlainText().strip(),
                                        defence=self.hd_edit.toPlainText().strip())
        except XfrError as exc:
            self.propositions_status.setText(f"Not saved: {exc}")
            return
        self.propositions_status.setText("Propositions saved (the report states them with the likelihood ratio).")
