"""The test stack's audit API server (scripts/stack_audit.py) feeding a webhook: a small TLS
server written here stands where kube-event-shipper's audit source will, requires the API
server's client certificate, and records every batch it is sent. Requests made to the audit API
server (as its admin, and as alice, who may do nothing) must come back as `audit.k8s.io/v1`
EventLists, at the levels of the chart's example policy (helm/kube-event-shipper/files/
audit-policy.yaml), which is the policy the stack's API server runs with."""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.support.common import ROOT, stack_up, wait_for

#: The API server sends a batch at least every second (--audit-webhook-batch-max-wait=1s).
ARRIVAL = 30.0


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    peer_cn: str
    body: dict[str, Any]
    raw: bytes
    at: float  # time.monotonic() when it arrived
    status: int  # what the receiver answered


@dataclass
class Receiver:
    """What the webhook received, in order. A batch whose body contains `refuse`'s text is
    answered with `refuse`'s status; every other one with 200."""

    posts: list[Post] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: tuple[str, int] | None = None

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [i for post in self.posts if post.status == 200 for i in post.body["items"]]

    def find(self, **want: Any) -> list[dict[str, Any]]:
        """Events whose fields equal want's; `__` reaches into objects (objectRef__name)."""

        def get(event: dict[str, Any], dotted: str) -> Any:
            value: Any = event
            for part in dotted.split("__"):
                value = value.get(part) if isinstance(value, dict) else None
            return value

        return [e for e in self.events() if all(get(e, k) == v for k, v in want.items())]


def serve(env: dict[str, str]) -> tuple[ThreadingHTTPServer, Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the API server's client expects

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            cert = self.connection.getpeercert()  # type: ignore[attr-defined]
            cn = dict(x[0] for x in cert["subject"])["commonName"] if cert else ""
            status = 200
            if receiver.refuse and receiver.refuse[0].encode() in raw:
                status = receiver.refuse[1]
            post = Post(self.path, dict(self.headers.items()), cn, json.loads(raw), raw,
                        time.monotonic(), status)  # fmt: skip
            with receiver.lock:
                receiver.posts.append(post)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(env["AUDIT_WEBHOOK_CERT"], env["AUDIT_WEBHOOK_KEY"])
    context.verify_mode = ssl.CERT_REQUIRED  # no certificate from AUDIT_CLIENT_CA: no handshake
    context.load_verify_locations(env["AUDIT_CLIENT_CA"])
    port = int(env["AUDIT_WEBHOOK_PORT"])
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as e:  # the one URL the API server sends to: one receiver at a time
        pytest.fail(f"cannot receive the audit webhook on 127.0.0.1:{port}: {e} (another "
                    "test or shipper is receiving it)", pytrace=False)  # fmt: skip
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, receiver


@pytest.fixture(scope="module")
def audit() -> Iterator[tuple[dict[str, str], Receiver]]:
    env = stack_up("audit")
    server, receiver = serve(env)
    try:
        yield env, receiver
    finally:
        server.shutdown()
        server.server_close()


def admin_api(env: dict[str, str]) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=env["AUDIT_KUBECONFIG"], client_configuration=configuration)
    return client.ApiClient(configuration)


def request(env: dict[str, str], path: str, token: str) -> int:
    """GET path from the audit API server with a bearer token; the HTTP status."""
    context = ssl.create_default_context(cafile=env["KUBE_CA_FILE"])
    req = urllib.request.Request(
        env["AUDIT_APISERVER_URL"] + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_api_server_posts_event_lists_with_certificate_and_token(audit):
    env, receiver = audit
    api = admin_api(env)
    core = client.CoreV1Api(api)
    ns, secret = f"audit-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_secret(
        ns, {"metadata": {"name": secret}, "stringData": {"password": "hunter2"}}
    )
    # alice is authenticated (token file) but bound to nothing: RBAC denies her the Secret.
    assert request(env, f"/api/v1/namespaces/{ns}/secrets/{secret}", env["AUDIT_USER_TOKEN"]) == 403

    [created] = wait_for(
        lambda: receiver.find(objectRef__resource="secrets", objectRef__name=secret, verb="create"),
        ARRIVAL, "the audit event of the Secret's create",
    )  # fmt: skip
    assert created["user"]["username"] == "admin"
    assert "system:masters" in created["user"]["groups"]
    assert created["objectRef"]["namespace"] == ns
    assert created["objectRef"]["apiVersion"] == "v1"
    assert created["requestURI"] == f"/api/v1/namespaces/{ns}/secrets"
    assert created["responseStatus"]["code"] == 201
    assert created["stage"] == "ResponseComplete"
    assert "127.0.0.1" in created["sourceIPs"]

    [denied] = wait_for(
        lambda: receiver.find(objectRef__name=secret, user__username="alice"),
        ARRIVAL, "the audit event of alice's denied get",
    )  # fmt: skip
    assert denied["verb"] == "get"
    assert denied["responseStatus"]["code"] == 403
    assert denied["annotations"]["authorization.k8s.io/decision"] == "forbid"

    assert created["level"] == "Metadata"  # the policy: Secrets without their bodies
    assert "requestObject" not in created and "responseObject" not in created
    with receiver.lock:
        posts = list(receiver.posts)
    assert posts
    assert not [p for p in posts if b"hunter2" in p.raw or b"aHVudGVyMg" in p.raw]
    token = Path(env["AUDIT_WEBHOOK_TOKEN_FILE"]).read_text().strip()
    for post in posts:
        # The kubeconfig's server URL path, and the client's timeout as a query parameter: a
        # receiver must match the path alone.
        assert post.path == "/?timeout=30s"
        assert post.body["kind"] == "EventList"
        assert post.body["apiVersion"] == "audit.k8s.io/v1"
        assert post.body["items"]
        assert post.headers["Content-Type"] == "application/json"
        assert post.peer_cn == "kube-apiserver-audit"  # the client certificate, verified
        assert post.headers["Authorization"] == f"Bearer {token}"  # and the bearer token


def test_the_docs_kubeconfig_has_the_shape_the_api_server_accepted(audit):
    """docs/audit.md's copy-paste webhook kubeconfig uses the same fields as the stack's, which
    the API server above loaded and used (certificate and token both presented)."""
    doc = (ROOT / "docs" / "audit.md").read_text()
    block = doc.split("<!-- audit-webhook-kubeconfig -->", 1)[1].split("```", 2)[1]
    documented = yaml.safe_load(block.split("\n", 1)[1])
    [stack_file] = (ROOT / ".stack" / "audit").glob("webhook-*.kubeconfig")
    used = yaml.safe_load(stack_file.read_text())

    def shape(config: dict[str, Any]) -> tuple[Any, ...]:
        return (
            config["apiVersion"], config["kind"],
            sorted(config["clusters"][0]["cluster"]), sorted(config["users"][0]["user"]),
            config["current-context"] == config["contexts"][0]["name"],
        )  # fmt: skip

    assert shape(documented) == shape(used)
    assert shape(used)[3] == ["client-certificate", "client-key", "tokenFile"]


def test_the_example_policy_sets_the_levels(audit):
    """The levels of helm/kube-event-shipper/files/audit-policy.yaml, as the API server applies
    them: no Events and health checks; Secrets and ConfigMaps without bodies; RBAC changes with
    both bodies; everything else Metadata; never the RequestReceived stage."""
    env, receiver = audit
    api = admin_api(env)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    ns, tag = f"audit-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": ns}})
    # First what must not be audited, then what must: once the later ones have arrived, the
    # earlier ones would have too.
    core.create_namespaced_event(ns, {
        "metadata": {"name": f"ev-{tag}"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
        "reason": "Test", "message": "not audited", "type": "Normal",
    })  # fmt: skip
    token = env["AUDIT_ADMIN_TOKEN"]
    for path in ("/readyz", "/livez", "/healthz", "/version", f"/api?{tag}"):
        assert request(env, path, token) == 200, path
    core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{tag}"}, "data": {"k": "v"}})
    role = {
        "metadata": {"name": f"r-{tag}"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    rbac.create_namespaced_role(ns, role)
    core.create_namespaced_service_account(ns, {"metadata": {"name": f"sa-{tag}"}})

    wanted = {
        "configmap": {"objectRef__name": f"cm-{tag}", "verb": "create"},
        "role": {"objectRef__name": f"r-{tag}", "verb": "create"},
        "serviceaccount": {"objectRef__name": f"sa-{tag}", "verb": "create"},
        "api": {"requestURI": f"/api?{tag}"},
    }
    found = wait_for(
        lambda: (f := {k: receiver.find(**w) for k, w in wanted.items()}) and all(f.values()) and f,
        ARRIVAL, "the audit events of the ConfigMap, Role, ServiceAccount and /api",
    )  # fmt: skip
    time.sleep(2)  # batches are sent concurrently: give an earlier one time to land

    [configmap] = found["configmap"]
    assert configmap["level"] == "Metadata"
    assert "requestObject" not in configmap and "responseObject" not in configmap
    [created_role] = found["role"]
    assert created_role["level"] == "RequestResponse"
    assert created_role["requestObject"]["rules"] == role["rules"]
    assert created_role["responseObject"]["metadata"]["uid"]
    [sa] = found["serviceaccount"]
    assert sa["level"] == "Metadata" and "requestObject" not in sa
    [api_root] = found["api"]
    assert api_root["level"] == "Metadata" and "objectRef" not in api_root

    assert not receiver.find(objectRef__resource="events", objectRef__namespace=ns)
    assert not [e for e in receiver.events() if e.get("requestURI") in
                ("/readyz", "/livez", "/healthz", "/version")]  # fmt: skip
    assert {e["stage"] for e in receiver.events()} <= {"ResponseComplete", "ResponseStarted"}
    # The policy the stack's API server runs with is the chart's file itself.
    assert (
        Path(env["AUDIT_POLICY_FILE"]) == ROOT / "helm/kube-event-shipper/files/audit-policy.yaml"
    )


@pytest.mark.parametrize("status", [503, 400])
def test_a_failed_batch_is_retried_five_times_then_dropped_and_logged(audit, status):
    """What docs/audit.md says the API server does when the webhook answers an error: any
    error, 4xx as well as 5xx, is retried with the initial backoff (the stack's
    --audit-webhook-initial-backoff=1s) growing by 1.5 (jitter up to +20%), 5 attempts in all;
    then the batch is dropped and its events are logged as "Error in audit plugin 'webhook'"."""
    env, receiver = audit
    assert env["AUDIT_WEBHOOK_INITIAL_BACKOFF"] == "1s"  # the timing below assumes it
    marker = f"/api?refused-{uuid.uuid4().hex[:8]}"
    receiver.refuse = (marker, status)
    try:
        assert request(env, marker, env["AUDIT_ADMIN_TOKEN"]) == 200

        def attempts() -> list[Post]:
            with receiver.lock:
                return [p for p in receiver.posts if marker.encode() in p.raw]

        wait_for(lambda: len(attempts()) >= 5, 30, "5 attempts of the refused batch")
        time.sleep(6)  # a 6th attempt would come 1 * 1.5**4 = 5.1 s (+20%) after the 5th: none
        tries = attempts()
        assert len(tries) == 5
        assert all(p.status == status for p in tries)
        assert len({p.raw for p in tries}) == 1  # the same batch each time
        gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
        for n, gap in enumerate(gaps):
            backoff = 1.0 * 1.5**n
            assert backoff - 0.05 <= gap <= backoff * 1.2 + 0.5, (n, gaps)
    finally:
        receiver.refuse = None

    log = (ROOT / ".stack" / "audit" / "kube-apiserver.log").read_text(errors="replace")
    at = log.find(f'uri="{marker}"')
    assert at > 0, "the dropped event is not in the API server's log"
    head = log.rfind("Error in audit plugin 'webhook' affecting ", 0, at)
    assert head >= 0 and "Impacted events:" in log[head:at], log[max(0, at - 2000) : at]
    assert log.count(f'uri="{marker}"') == 1  # logged once, when the batch was given up
