"""Secured clusters: TLS with a private CA, client certificates, basic auth, AWS SigV4.

The real servers of the stack speak plain HTTP, so a checking proxy (tests/support/proxy.py) stands in
front of them and enforces what a secured cluster or Amazon OpenSearch Service would.
"""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_search_sinks import documents, ids, version_id
from tests.support.common import wait_for
from tests.support.kube import core_event
from tests.support.proxy import CheckingProxy, Checks, make_pki, server_tls

AWS = ("AKIDKUBEEVENTSHIPPER", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-1", "es")


def source(kube_env, namespace):
    return f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}"


def aws_env(secret: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": AWS[0],
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_sigv4_signed_requests_reach_opensearch(
    opensearch_url, shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    index = f"kube-events-sig{uuid.uuid4().hex[:8]}"
    checks = Checks(sigv4=AWS)
    with CheckingProxy(opensearch_url, checks) as proxy:
        sink = f"--sink=opensearch:{proxy.url}?aws_region=eu-west-1&index={index}"
        shipper = shipper_factory(
            [source(kube_env, namespace), sink, f"--state-dir={tmp_path / 'a'}"], aws_env(AWS[1])
        ).start()
        made = [core_event(kube_api, namespace, obj=f"s{i}") for i in range(3)]
        wait_for(lambda: len(documents(opensearch_url, f"{index}*")) == 3, what="three documents")
        assert set(ids(documents(opensearch_url, f"{index}*"))) == {version_id(e) for e in made}
        assert checks.refused == []
        assert any(line.startswith("POST /_bulk") and line.endswith("200") for line in checks.seen)
        assert shipper.stop() == 0
        assert AWS[1] not in shipper.stderr()

        # A wrong secret: the service refuses every request, the sink says so and keeps trying.
        wrong = shipper_factory(
            [
                source(kube_env, namespace),
                sink.replace(index, index + "-x"),
                f"--state-dir={tmp_path / 'b'}",
            ],
            aws_env("not-the-secret"),
        ).start()
        wait_for(lambda: "signature does not match" in wrong.stderr(), what="the refusal logged")
        assert any("signature does not match" in line for line in checks.refused)
        assert wrong.metric("kube_event_shipper_sink_up", sink="opensearch") == 0
        assert wrong.stop() == 0
        assert "not-the-secret" not in wrong.stderr()


@pytest.mark.parametrize("scheme", ["elasticsearch", "opensearch"])
def test_private_ca_client_certificate_and_basic_auth(
    scheme, request, shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    base = request.getfixturevalue(f"{scheme}_url")
    pki = make_pki(tmp_path)
    password = f"pw-{uuid.uuid4().hex}"
    (tmp_path / "password").write_text(password + "\n")
    checks = Checks(basic=("shipper", password))
    tls = server_tls(pki, require_client_cert=True)
    with CheckingProxy(base, checks, tls=tls) as proxy:

        def run(index: str, state: str, grace: str = "25s", **params: str) -> object:
            query = "&".join(
                f"{k}={v}"
                for k, v in {
                    "index": index,
                    "esUserName": "shipper",
                    "esUserSecret_file": tmp_path / "password",
                    "certFile": pki.client_cert,
                    "keyFile": pki.client_key,
                    **params,
                }.items()
            )
            args = [source(kube_env, namespace), f"--sink={scheme}:{proxy.url}?{query}",
                    f"--state-dir={tmp_path / state}", f"--grace-period={grace}"]  # fmt: skip
            return shipper_factory(args).start()

        index = f"kube-events-tls{uuid.uuid4().hex[:8]}"
        shipper = run(index, "a", caFile=str(pki.ca))
        made = core_event(kube_api, namespace, obj="tls")
        wait_for(lambda: len(documents(base, f"{index}*")) == 1, what="the document")
        assert ids(documents(base, f"{index}*")) == [version_id(made)]
        assert shipper.stop() == 0
        assert password not in shipper.stderr()
        assert checks.refused == []

        # Without the CA the server's certificate cannot be verified: said, and retried.
        untrusted = run(index + "-x", "b", grace="2s")
        wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr(), what="the TLS error")
        assert untrusted.metric("kube_event_shipper_sink_up", sink=scheme) == 0
        assert untrusted.stop() == 0

        # insecure=true skips verification (and still presents the client certificate).
        trusting = run(index + "-y", "c", insecure="true")
        wait_for(
            lambda: len(documents(base, f"{index}-y*")) == 1,
            what="the document through an unverified connection",
        )
        assert trusting.stop() == 0


def test_429_and_503_replies_are_retried_until_the_batch_lands(
    elasticsearch_url, shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    index = f"kube-events-busy{uuid.uuid4().hex[:8]}"
    checks = Checks(inject={"/_bulk": [429, 503, 429]})
    with CheckingProxy(elasticsearch_url, checks) as proxy:
        shipper = shipper_factory(
            [source(kube_env, namespace), f"--state-dir={tmp_path}",
             f"--sink=elasticsearch:{proxy.url}?index={index}&max_backoff=1s"]
        ).start()  # fmt: skip
        made = [core_event(kube_api, namespace, obj=f"busy{i}") for i in range(3)]
        wait_for(
            lambda: len(documents(elasticsearch_url, f"{index}*")) == 3, what="three documents"
        )
        assert set(ids(documents(elasticsearch_url, f"{index}*"))) == {version_id(e) for e in made}
        bulk = [line for line in checks.seen if line.startswith("POST /_bulk")]
        assert [line.rsplit(" ", 1)[1] for line in bulk[:4]] == ["429", "503", "429", "200"]
        assert (
            shipper.metric(
                "kube_event_shipper_sink_events_total", sink="elasticsearch", outcome="retried"
            )
            >= 3
        )
        assert (
            shipper.metric(
                "kube_event_shipper_sink_events_total",
                sink="elasticsearch",
                outcome="dead_lettered",
            )
            == 0
        )
        assert shipper.stop() == 0
        assert "es_rejected_execution_exception" in shipper.stderr()
