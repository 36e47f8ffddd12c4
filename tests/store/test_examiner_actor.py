"""Who an audited action is recorded under (issue 14): `--examiner NAME`, else the preference, else the case's
examiner, and only then the login -- one resolution (store.actor_name) for the CLI and the app."""
from __future__ import annotations

import getpass

import pytest

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.store import open_store

LOGIN = getpass.getuser()


@pytest.fixture
def data_dir(tmp_path):
    assert LOGIN not in ("Jane Doe", "Rex Reviewer", "Dr. Pref")
    d = tmp_path / "data"
    assert xfr_main(["--data-dir", str(d), "cases", "create", "C-1", "--examiner", "Jane Doe"]) == 0
    assert xfr_main(["--data-dir", str(d), "cases", "create", "C-2"]) == 0      # no examiner named
    return d


def _actors(data_dir, number: str) -> list[tuple[str, str]]:
    with open_store(data_dir, create=False) as store:
        return [(e.action, e.actor) for e in store.list_audit(store.find_case(number).id)]


def test_cli_conclude_is_recorded_under_the_case_examiner_not_the_login(data_dir, capsys):
    assert xfr_main(["--data-dir", str(data_dir), "cases", "conclude", "C-1", "--text", "support for Hp"]) == 0
    assert "(Jane Doe," in capsys.readouterr().out
    assert _actors(data_dir, "C-1") == [("case.created", "Jane Doe"), ("conclusion.edited", "Jane Doe")]
    # a case without an examiner, no preference, no --examiner: only then the login
    assert xfr_main(["--data-dir", str(data_dir), "cases", "conclude", "C-2", "--text", "x"]) == 0
    assert _actors(data_dir, "C-2")[-1] == ("conclusion.edited", LOGIN)


def test_cli_examiner_option_before_preference_before_case_examiner(data_dir):
    with open_store(data_dir) as store:
        store.set_examiner_name("Dr. Pref")
    base = ["--data-dir", str(data_dir)]
    assert xfr_main(base + ["cases", "conclude", "C-1", "--text", "a"]) == 0
    assert xfr_main(base + ["cases", "conclude", "C-1", "--text", "b", "--examiner", "Rex Reviewer"]) == 0
    assert xfr_main(base + ["--examiner", "Glo Bal", "cases", "conclude", "C-1", "--text", "c"]) == 0
    assert xfr_main(base + ["--examiner", "Glo Bal", "cases", "remove", "C-1", "--comparison", "1",
                            "--reason", "r"]) == 2      # no comparison: refused, nothing recorded
    assert [a for _, a in _actors(data_dir, "C-1")[1:]] == ["Dr. Pref", "Rex Reviewer", "Glo Bal"]
    with open_store(data_dir, create=False) as store:
        assert [c.author for c in store.list_conclusions(store.find_case("C-1").id)] == [
            "Dr. Pref", "Rex Reviewer", "Glo Bal"]


def test_store_writes_fall_back_to_the_case_examiner(data_dir):
    """What the app calls (no actor passed) resolves the same way: the case's examiner, not the login."""
    with open_store(data_dir) as store:
        case = store.find_case("C-1")
        assert store.actor_name(case_id=case.id) == "Jane Doe"
        assert store.actor_name() == LOGIN                       # no case, no preference
        store.set_propositions(case.id, prosecution="the man in the CCTV still is the suspect")
        store.log_event("report.exported", case_id=case.id)
    assert [a for _, a in _actors(data_dir, "C-1")] == ["Jane Doe"] * 3
