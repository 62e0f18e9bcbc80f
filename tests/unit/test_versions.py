"""The ledger's version record (packed entries, tuples, dicts) against a plain dict model."""

from __future__ import annotations

import random
import uuid

from shipper.versions import Versions, uid_key


class Model:
    """What Versions must answer: uid -> (stream, {rv: seq}), kept as plainly as possible."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, dict[str, int]]] = {}

    def add(self, stream: str, uid: str, rv: str, seq: int) -> None:
        old_stream, rvs = self.entries.get(uid, (stream, {}))
        self.entries[uid] = (old_stream, {**rvs, rv: seq})


def uids(rng: random.Random, n: int) -> list[str]:
    made = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]
    # Keys that share their low 64 bits, a uid that is no UUID, the zero UUID.
    base = rng.getrandbits(64)
    made += [str(uuid.UUID(int=(rng.getrandbits(60) << 68) | base)) for _ in range(40)]
    return [*made, "not-a-uuid", str(uuid.UUID(int=0))]


def test_versions_answer_as_the_model_through_adds_drops_and_forgets():
    rng = random.Random(18)
    versions, model = Versions({}), Model()
    pool = uids(rng, 3000)
    seq = 0
    for step in range(20000):
        uid = rng.choice(pool)
        key = uid_key(uid)
        action = rng.random()
        if action < 0.6:
            seq += 1
            rv = str(rng.randrange(1, 10**12)) if rng.random() < 0.95 else f"0{seq}"  # opaque
            stream = "ns-a" if rng.random() < 0.8 else "ns-b"
            versions.add(stream, key, rv, seq)
            model.add(stream, uid, rv, seq)
        elif action < 0.75:
            assert versions.drop(key) == (model.entries.pop(uid, None) is not None), step
        elif action < 0.85 and uid in model.entries:
            cut = rng.choice(list(model.entries[uid][1].values()))
            stream, rvs = model.entries[uid]
            kept = {rv: s for rv, s in rvs.items() if s >= cut}
            assert versions.forget_older(key, cut) == (len(kept) != len(rvs)), step
            model.entries[uid] = (stream, kept)
        expected = model.entries.get(uid)
        assert versions.expanded(key) == expected, step
        for rv in expected[1] if expected else {"1": 0}:
            assert versions.has(key, rv) == (expected is not None), step
        assert not versions.has(key, "999999999999999"), step
        assert len(versions) == len(model.entries), step
    present = set(rng.sample(sorted(model.entries), len(model.entries) // 2))
    for stream in ("ns-a", "ns-b"):
        missing = versions.missing(stream, present)
        want = {u for u, (s, _) in model.entries.items() if s == stream and u not in present}
        assert set(missing.values()) == want
        assert all(uid_key(uid) == key for key, uid in missing.items())
    assert versions.max_seq() == max(max(r.values()) for _, r in model.entries.values())
    reloaded = Versions(dict(model.entries))
    assert all(reloaded.expanded(uid_key(u)) == e for u, e in model.entries.items())
