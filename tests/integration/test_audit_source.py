"""The audit source against a real kube-apiserver (scripts/stack_audit.py: a second API server on
the stack's etcd, started with --audit-webhook-config-file and the chart's example policy,
posting to 127.0.0.1:AUDIT_WEBHOOK_PORT where the shipper listens).

Requests made through the API (an RBAC change, a Secret read, a request RBAC denies) must land
in sqlite and OpenSearch with the right user and verb, next to the Events the same process
ships; a shipper killed in the middle of a burst of requests must lose none of their audit
events once it is back (the API server retries what was not answered 200)."""

from __future__ import annotations

import signal
import sqlite3
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client, config

from tests.support.common import ShipperProcess, stack_up, wait_for
from tests.support.search import search_hits

ARRIVAL = 60.0  # the API server sends a batch at least every second; a retry after 1 s, 1.5 s...


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return stack_up("audit", "opensearch")


def admin_api(env: dict[str, str]) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=env["AUDIT_KUBECONFIG"], client_configuration=configuration)
    return client.ApiClient(configuration)


def get_as(env: dict[str, str], token: str, path: str) -> int:
    context = ssl.create_default_context(cafile=env["KUBE_CA_FILE"])
    request = urllib.request.Request(
        env["AUDIT_APISERVER_URL"] + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def audit_source(env: dict[str, str], *, auth: str = "cert") -> str:
    base = (
        f"audit:?listen=127.0.0.1:{env['AUDIT_WEBHOOK_PORT']}&cert={env['AUDIT_WEBHOOK_CERT']}"
        f"&key={env['AUDIT_WEBHOOK_KEY']}"
    )
    if auth == "cert":
        return f"{base}&clientCA={env['AUDIT_CLIENT_CA']}"
    return f"{base}&tokenFile={env['AUDIT_WEBHOOK_TOKEN_FILE']}"


def audit_rows(db: Path, where: str = "1", *args: Any) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        connection.row_factory = sqlite3.Row
        try:
            rows = connection.execute(f"SELECT * FROM audit WHERE {where}", args).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
    return [dict(row) for row in rows]


def opensearch_hits(url: str, index: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    return [hit["_source"] for hit in search_hits(url, index, query, size=100, refresh=False)]


def term(**fields: Any) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {k: v}} for k, v in fields.items()]}}


def one(find: Callable[[], list[dict[str, Any]]], what: str) -> dict[str, Any]:
    [found] = wait_for(find, ARRIVAL, what)
    return found


def test_rbac_changes_secret_reads_and_denials_land_in_sqlite_and_opensearch(
    env: dict[str, str], tmp_path: Path, shipper_factory: Callable[..., ShipperProcess]
) -> None:
    api = admin_api(env)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    ns = f"audit-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    db, index = tmp_path / "events.db", f"kes-audit-{uuid.uuid4().hex[:6]}"
    shipper = shipper_factory(
        [
            f"--source=kubernetes:?auth={env['AUDIT_KUBECONFIG']}&namespaces={ns}",
            f"--source={audit_source(env)}",
            f"--sink=sqlite:{db}?flush_interval=0.2",
            f"--sink=opensearch:{env['OPENSEARCH_URL']}?index={index}&flush_interval=0.2",
            f"--state-dir={tmp_path / 'state'}",
        ]
    ).start()

    secret = f"db-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_secret(ns, {"metadata": {"name": secret}, "stringData": {"p": "x1"}})
    core.read_namespaced_secret(secret, ns)
    rbac.create_namespaced_role(ns, {
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    })  # fmt: skip
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "alice-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
    })  # fmt: skip
    denied_path = f"/api/v1/namespaces/{ns}/secrets/{secret}"
    assert get_as(env, env["AUDIT_USER_TOKEN"], denied_path) == 403
    # an Event, so the kubernetes source in the same process has something to ship too
    core.create_namespaced_event(ns, {
        "metadata": {"name": "e1"}, "type": "Warning", "reason": "Audited", "message": "m",
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
    })  # fmt: skip

    # sqlite: one row per request stage, with the user and the verb
    read = one(
        lambda: audit_rows(db, "namespace=? AND resource='secrets' AND verb='get' AND username=?"
                           " AND name=?", ns, "admin", secret),
        "the Secret read in sqlite",
    )  # fmt: skip
    assert read["code"] == 200 and read["stage"] == "ResponseComplete"
    binding = one(
        lambda: audit_rows(db, "namespace=? AND resource='rolebindings' AND verb='create'", ns),
        "the RoleBinding's create in sqlite",
    )
    assert binding["username"] == "admin" and binding["code"] == 201
    assert binding["api_group"] == "rbac.authorization.k8s.io"
    document = orjson.loads(binding["document"])
    # the example policy records RBAC changes with their bodies
    assert orjson.loads(document["kubernetes"]["audit"]["request_object"])["subjects"][0] == {
        "kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"
    }  # fmt: skip
    denial = one(
        lambda: audit_rows(db, "namespace=? AND username='alice' AND name=?", ns, secret),
        "alice's denied read in sqlite",
    )
    assert (denial["verb"], denial["code"], denial["decision"]) == ("get", 403, "forbid")
    # Secrets at Metadata level: no body anywhere
    assert all("x1" not in row["document"] for row in audit_rows(db, "namespace=?", ns))

    # the same in OpenSearch, in the audit index next to the events'
    hits = wait_for(
        lambda: opensearch_hits(
            env["OPENSEARCH_URL"], f"{index}-audit*",
            term(**{"kubernetes.audit.user.username": "alice",
                    "kubernetes.audit.object_ref.name": secret}),
        ),
        ARRIVAL, "alice's denied read in OpenSearch",
    )  # fmt: skip
    [hit] = hits
    assert hit["kubernetes"]["audit"]["verb"] == "get"
    assert hit["http"]["response"]["status_code"] == 403
    assert hit["event"]["outcome"] == "failure" and hit["user"]["name"] == "alice"
    created = wait_for(
        lambda: opensearch_hits(
            env["OPENSEARCH_URL"], f"{index}-audit*",
            term(**{"kubernetes.audit.verb": "create",
                    "kubernetes.audit.object_ref.resource": "rolebindings",
                    "kubernetes.audit.object_ref.namespace": ns}),
        ),
        ARRIVAL, "the RoleBinding's create in OpenSearch",
    )  # fmt: skip
    assert created[0]["user"]["name"] == "admin"

    # and the Event, through the kubernetes source of the same process, to both stores
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        reasons = [r for (r,) in connection.execute("SELECT reason FROM events WHERE namespace=?",
                                                    (ns,))]  # fmt: skip
    assert reasons == ["Audited"]
    assert shipper.metric("kube_event_shipper_audit_batches_total", outcome="accepted") >= 1
    assert shipper.stop() == 0


def test_a_shipper_killed_during_a_burst_loses_no_audit_event(
    env: dict[str, str], tmp_path: Path, shipper_factory: Callable[..., ShipperProcess]
) -> None:
    """SIGKILL while the API server posts batches: what was answered 200 is in the spool, what
    was not is sent again by the API server, so every request's audit event arrives, once."""
    api = admin_api(env)
    core = client.CoreV1Api(api)
    ns = f"burst-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    db = tmp_path / "events.db"
    shipper = shipper_factory(
        [
            f"--source={audit_source(env, auth='token')}",
            f"--sink=sqlite:{db}?flush_interval=0.2",
            f"--state-dir={tmp_path / 'state'}",
        ]
    ).start()
    errors_before = webhook_errors(env)
    total, made = 300, []
    failures: list[BaseException] = []

    def burst() -> None:
        try:
            for i in range(total):
                name = f"cm-{i:04d}"
                core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
                made.append(name)
                time.sleep(0.02)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    writer = threading.Thread(target=burst)
    writer.start()
    wait_for(lambda: len(made) >= total // 3, 60, "a third of the burst")
    wait_for(
        lambda: audit_rows(db, "namespace=? AND resource='configmaps'", ns), ARRIVAL,
        "the first configmaps shipped",
    )  # fmt: skip
    assert len(made) < total  # the burst goes on while the shipper is away
    assert shipper.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(1.0)  # down while the API server keeps posting: it retries what fails
    shipper.start()
    writer.join(timeout=120)
    assert not failures, failures
    assert len(made) == total

    def creates() -> list[dict[str, Any]]:
        rows = audit_rows(db, "namespace=? AND resource='configmaps' AND verb='create'", ns)
        return rows if len(rows) >= total else []

    rows = wait_for(creates, ARRIVAL * 2, f"the {total} creates in sqlite")
    assert sorted(row["name"] for row in rows) == sorted(made)
    assert len({row["audit_id"] for row in rows}) == total  # one row per request, no duplicate
    assert shipper.metric("kube_event_shipper_audit_batches_total", outcome="accepted") >= 1
    # and the API server gave up on no batch (its retries outlasted the outage)
    assert webhook_errors(env) == errors_before
    assert shipper.stop() == 0


def webhook_errors(env: dict[str, str]) -> float:
    """apiserver_audit_error_total{plugin="webhook"}: audit events the API server dropped."""
    context = ssl.create_default_context(cafile=env["KUBE_CA_FILE"])
    request = urllib.request.Request(
        env["AUDIT_APISERVER_URL"] + "/metrics",
        headers={"Authorization": f"Bearer {env['AUDIT_ADMIN_TOKEN']}"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_audit_error_total") and 'plugin="webhook"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
