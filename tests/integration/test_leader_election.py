"""Two replicas against the real kube-apiserver: exactly one ships; a standby takes over.

Both share a Lease and a ConfigMap checkpoint, as two pods of the chart would, and write to one
sqlite store (a shared volume here), which makes "exactly once" visible: one row per event with
its final count, and every event made across the failover present.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper import kube
from tests.support.common import wait_for
from tests.support.kube import bump, core_event, now


def rows(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT uid, count FROM events"))
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


@pytest.fixture
def replica(shipper_factory, kube_env, namespace, tmp_path):
    db = tmp_path / "events.db"

    def make(name: str) -> Any:
        process = shipper_factory(
            [
                f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
                f"--sink=sqlite:{db}",
                f"--state-dir={tmp_path / name}",
                f"--checkpoint=configmap:{namespace}/checkpoint",
                "--leader-elect",
                f"--leader-elect-lease={namespace}/shipper",
                "--leader-elect-lease-duration=6s",
                "--leader-elect-renew-deadline=4s",
                "--leader-elect-retry-period=1s",
            ],
            env={"POD_NAME": name},
        )
        process.db = db
        return process

    return make


def leader(process: Any) -> float:
    return process.metric("kube_event_shipper_leader")


def shipped(process: Any) -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink="sqlite", outcome="shipped")


def holder(kube_api: Any, namespace: str) -> str:
    reply = kube.request(
        kube_api, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/shipper"
    )
    assert reply.status == 200, reply.data
    return orjson.loads(reply.data)["spec"].get("holderIdentity") or ""


def checkpointed(kube_api: Any, namespace: str) -> set[str]:
    """The uids the shared ConfigMap checkpoint records as shipped."""
    import base64
    import zlib

    reply = kube.request(kube_api, "GET", f"/api/v1/namespaces/{namespace}/configmaps/checkpoint")
    if reply.status != 200:
        return set()
    blob = (orjson.loads(reply.data).get("binaryData") or {}).get("checkpoint.json.z")
    return set(orjson.loads(zlib.decompress(base64.b64decode(blob)))["versions"]) if blob else set()


def test_one_ships_and_a_standby_takes_over_after_a_kill_and_a_stop(replica, kube_api, namespace):
    a = replica("a").start()
    wait_for(lambda: leader(a) == 1, what="a to lead")
    b = replica("b").start()  # ready while standing by
    assert leader(b) == 0
    assert holder(kube_api, namespace).startswith("a_")

    first = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    wait_for(lambda: len(rows(a.db)) == 3, what="three rows from the leader")
    assert shipped(a) == 3 and shipped(b) == 0  # the standby ships nothing
    uids = {e["metadata"]["uid"] for e in first}
    wait_for(lambda: uids <= checkpointed(kube_api, namespace), what="a's checkpoint save")

    # SIGKILL the leader: no release, so b waits out the lease (6 s) from its last sighting.
    a.stop(signal.SIGKILL)
    killed = time.monotonic()
    during = [core_event(kube_api, namespace, obj=f"q{i}") for i in range(3)]
    updated = bump(kube_api, namespace, first[0]["metadata"]["name"], 2, now(1))
    wait_for(lambda: leader(b) == 1, timeout=30, what="b to take over")
    takeover = time.monotonic() - killed
    assert 4 <= takeover <= 15, takeover  # lease duration + retry period, with some slack
    assert holder(kube_api, namespace).startswith("b_")
    expected = {e["metadata"]["uid"]: 1 for e in [*first, *during]} | {
        updated["metadata"]["uid"]: 2
    }
    wait_for(lambda: rows(b.db) == expected, what="every event, once, with its final count")
    # b resumed from a's checkpoint: it shipped what was new, not the three a had shipped.
    assert shipped(b) == 4

    # A graceful stop releases the Lease: a standby takes over within a retry period or two.
    c = replica("c").start()
    assert leader(c) == 0
    assert b.stop() == 0
    stopped = time.monotonic()
    wait_for(lambda: leader(c) == 1, timeout=30, what="c to take over")
    assert time.monotonic() - stopped < 4
    last = core_event(kube_api, namespace, obj="r0")
    wait_for(lambda: last["metadata"]["uid"] in rows(c.db), what="the event after the handover")
    assert len(rows(c.db)) == 7
    assert shipped(c) == 1
    assert c.stop() == 0
    assert "Released Lease" in c.stderr()


def test_leader_election_needs_a_shared_checkpoint(kube_env, tmp_path):
    import subprocess
    import sys

    from tests.support.common import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "shipper", f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}",
         "--leader-elect", f"--state-dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--leader-elect: replicas must share the checkpoint" in done.stderr
