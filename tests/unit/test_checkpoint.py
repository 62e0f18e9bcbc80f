"""The ledger: the position only moves over a done prefix; handled versions are never re-sent."""

import pytest

from shipper.checkpoint import Ledger, MemoryStore, SqliteStore


def test_position_waits_for_the_slowest_event(tmp_path):
    ledger = Ledger(SqliteStore(str(tmp_path / "cp.db")))
    first = ledger.begin("", "a", "10", "10", sinks=2)
    second = ledger.begin("", "b", "11", "11", sinks=1)
    second.done()
    assert ledger.position("") is None  # "a" is still on its way
    assert ledger.handled("b", "11") and ledger.handled("a", "10")  # in flight counts as handled
    first.done()
    assert ledger.position("") is None
    first.done()
    assert ledger.position("") == "11"
    ledger.flush()
    reloaded = Ledger(SqliteStore(str(tmp_path / "cp.db")))
    assert reloaded.position("") == "11"
    assert reloaded.handled("a", "10") and reloaded.handled("b", "11")
    assert not reloaded.handled("a", "12")


def test_open_ticket_is_not_handled_after_restart(tmp_path):
    ledger = Ledger(SqliteStore(str(tmp_path / "cp.db")))
    ledger.begin("", "a", "10", "10", sinks=1).done()
    ledger.begin("", "b", "11", "11", sinks=1)  # never done: a crash mid-write
    ledger.flush()
    reloaded = Ledger(SqliteStore(str(tmp_path / "cp.db")))
    assert reloaded.position("") == "10"
    assert not reloaded.handled("b", "11")


def test_bookmark_moves_position_only_behind_done_events():
    ledger = Ledger(MemoryStore())
    ticket = ledger.begin("", "a", "10", "10", sinks=1)
    ledger.mark("", "20")
    assert ledger.position("") is None
    ticket.done()
    assert ledger.position("") == "20"


def test_older_versions_forgotten_once_behind_the_position():
    ledger = Ledger(MemoryStore())
    ledger.begin("", "a", "10", "10", sinks=1).done()
    ledger.begin("", "a", "15", "15", sinks=1).done()
    assert ledger.handled("a", "15")
    assert not ledger.handled("a", "10")  # no replay can reach 10 any more


def test_older_version_kept_while_a_replay_could_still_bring_it():
    ledger = Ledger(MemoryStore())
    slow = ledger.begin("", "x", "5", "5", sinks=1)
    ledger.begin("", "a", "10", "10", sinks=1).done()
    ledger.begin("", "a", "15", "15", sinks=1).done()
    # The position is still before 10 (x is unsent): a restart would replay a@10.
    assert ledger.handled("a", "10") and ledger.handled("a", "15")
    slow.done()
    assert not ledger.handled("a", "10") and ledger.handled("a", "15")


def test_deleted_and_missing_uids_are_forgotten():
    ledger = Ledger(MemoryStore())
    ledger.begin("", "a", "10", "10", sinks=1).done()
    ledger.begin("", "b", "11", "11", sinks=1).done()
    ledger.mark("", "12", deleted_uid="a")
    assert not ledger.handled("a", "10")
    assert ledger.forget_missing("", present=set()) == 1
    assert ledger.tracked_uids() == 0


def test_streams_are_independent():
    ledger = Ledger(MemoryStore())
    ledger.begin("ns1", "a", "10", "10", sinks=1)
    ledger.begin("ns2", "b", "11", "11", sinks=1).done()
    assert ledger.position("ns2") == "11"
    assert ledger.position("ns1") is None


def test_reset_forgets_everything(tmp_path):
    store = SqliteStore(str(tmp_path / "cp.db"))
    ledger = Ledger(store)
    ledger.begin("", "a", "10", "10", sinks=0)
    ledger.flush()
    ledger.reset()
    assert ledger.position("") is None and not ledger.handled("a", "10")
    assert Ledger(SqliteStore(str(tmp_path / "cp.db"))).position("") is None


def test_checkpoint_of_another_api_server_is_not_used(tmp_path):
    path = str(tmp_path / "cp.db")
    ledger = Ledger(SqliteStore(path), source="https://a:6443 v1")
    ledger.begin("", "a", "10", "10", sinks=0)
    ledger.flush()
    assert Ledger(SqliteStore(path), source="https://a:6443 v1").position("") == "10"
    other = Ledger(SqliteStore(path), source="https://b:6443 v1")
    assert other.position("") is None and not other.handled("a", "10")


def test_reset_keeps_the_source_claim(tmp_path):
    path = str(tmp_path / "cp.db")
    ledger = Ledger(SqliteStore(path), source="https://a:6443 v1")
    ledger.begin("", "a", "10", "10", sinks=0)
    ledger.flush()
    ledger.reset()
    assert SqliteStore(path).load().source == "https://a:6443 v1"
    assert Ledger(SqliteStore(path), source="https://a:6443 v1").position("") is None


class PartedStore(MemoryStore):
    """A store taking at most ``save_part`` entries a save, failing on the save numbered
    ``fail_at`` (counting from 1) once."""

    save_part = 3

    def __init__(self, fail_at: int = 0) -> None:
        super().__init__()
        self.saves: list[tuple[dict, int]] = []
        self.fail_at = fail_at

    def save(self, positions, changed) -> None:  # type: ignore[no-untyped-def]
        if len(self.saves) + 1 == self.fail_at:
            self.fail_at = 0
            self.saves.append(({"failed": ""}, len(changed)))
            raise OSError("disk full")
        self.saves.append((dict(positions), len(changed)))
        super().save(positions, changed)


def test_a_flush_saves_in_parts_and_the_position_comes_last():
    store = PartedStore()
    ledger = Ledger(store)
    for n in range(10):
        ledger.begin("", f"u{n}", str(100 + n), str(100 + n), sinks=1).done()
    ledger.flush()
    assert store.saves == [({}, 3), ({}, 3), ({}, 3), ({"": "109"}, 1)]
    reloaded = Ledger(store)
    assert reloaded.position("") == "109"
    assert all(reloaded.handled(f"u{n}", str(100 + n)) for n in range(10))
    ledger.flush()  # nothing changed: nothing saved
    assert len(store.saves) == 4
    ledger.mark("", "120")
    ledger.flush()
    assert store.saves[-1] == ({"": "120"}, 0)


def test_a_flush_failing_midway_saves_everything_at_the_next():
    store = PartedStore(fail_at=2)
    ledger = Ledger(store)
    for n in range(7):
        ledger.begin("", f"u{n}", str(100 + n), str(100 + n), sinks=1).done()
    with pytest.raises(OSError, match="disk full"):
        ledger.flush()
    assert Ledger(store).position("") is None  # the position waits for every part
    ledger.flush()
    assert Ledger(store).position("") == "106"
    assert all(Ledger(store).handled(f"u{n}", str(100 + n)) for n in range(7))
