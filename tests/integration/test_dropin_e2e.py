"""Drop-in, end to end against the real kube-apiserver: configs as their users run them.

- The bitnami chart's default config (a ``file`` receiver on ``/dev/stdout`` with
  ``layout: {}``) with stdout a pipe, as in every container: each event version is written
  once (the original writes ``{}`` for each, its issue #90), across a restart, and the file
  sink never tries to seek in the pipe.
- A webhook receiver whose ``layout`` uses sprig functions posts, for each event, exactly the
  body the original posts for the same event (the peer oracle, tests/peer, renders it from
  the Event objects read back from the API server).
- An opensearch receiver with a ``layout`` and a dateless ``indexFormat`` indexes the documents
  the original indexes, into the one index named, once per version; a teams receiver with a
  ``layout`` posts the original's body byte for byte, with its headers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from kubernetes import client

from tests.integration.test_search_sinks import documents
from tests.peer import oracle
from tests.support.common import ROOT, free_port, wait_for
from tests.support.kube import bump, core_event, now
from tests.support.receivers import TeamsReceiver, WebhookReceiver

CORPUS = ROOT / "tests" / "corpus" / "exporter"
BITNAMI = next(CORPUS.glob("32-bitnami-*.yaml"))


class PipedShipper:
    """``python -m shipper`` with stdout a pipe read by a thread, as a container runtime does."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        self.port = free_port()
        self.stderr_path = workdir / f"stderr.{uuid.uuid4().hex[:6]}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", *args, f"--listen=127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            stderr=self.stderr_path.open("wb"),
            cwd=ROOT,
        )
        self.lines: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def config_args(kube_env: dict[str, str], namespace: str, config: Path, tmp: Path) -> list[str]:
    """The shipper on the test's namespace with a config file, as a user runs it."""
    return [
        f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
        f"--config={config}",
        f"--state-dir={tmp / 'state'}",
    ]


def test_the_bitnami_default_config_under_a_pipe_writes_each_event_version_once(
    kube_env, kube_api, namespace, tmp_path
):
    args = config_args(kube_env, namespace, BITNAMI, tmp_path)
    created = [core_event(kube_api, namespace, obj=f"web-{i}") for i in range(40)]
    first = PipedShipper(args, tmp_path)
    wait_for(lambda: len(first.lines) >= 40, timeout=60, what="40 lines")
    for event in created[:10]:  # count updates, while it runs: each is a version of its own
        bump(kube_api, namespace, event["metadata"]["name"], 2, now())
    wait_for(lambda: len(first.lines) >= 50, timeout=60, what="50 lines")
    assert first.stop() == 0
    more = [core_event(kube_api, namespace, obj=f"late-{i}") for i in range(5)]
    second = PipedShipper(args, tmp_path)
    wait_for(lambda: len(second.lines) >= len(more), timeout=60, what="the events made while down")
    assert second.stop() == 0
    for run in (first, second):
        assert set(run.lines) == {b"{}\n"}, run.lines[:3]  # layout: {} renders {}, as theirs
        assert "Illegal seek" not in run.stderr() and "Traceback" not in run.stderr()
    assert (len(first.lines), len(second.lines)) == (50, 5)


LAYOUT_CONFIG = """\
route:
  routes:
    - match:
        - receiver: hook
receivers:
  - name: hook
    webhook:
      endpoint: "{url}/events"
      headers:
        X-Reason: "{{{{ .Reason }}}}"
      layout:
        title: "{{{{ .Reason | upper }}}} {{{{ .InvolvedObject.Kind | lower }}}}/{{{{ .InvolvedObject.Name }}}}"
        message: "{{{{ .Message | trunc 20 | quote }}}}"
        count: "{{{{ add .Count 100 }}}}"
        ts: "{{{{ .GetTimestampMs }}}}"
        labels: "{{{{ toJson .InvolvedObject.Labels }}}}"
        tags: ["{{{{ .Type | lower }}}}", "{{{{ default \\"none\\" .Source.Host }}}}", 7]
        namespace: "{{{{ .InvolvedObject.Namespace | replace \\"-\\" \\"_\\" }}}}"
"""


def test_a_webhook_layout_with_sprig_posts_exactly_the_originals_body(
    kube_env, kube_api, namespace, tmp_path
):
    with WebhookReceiver() as hook:
        config = tmp_path / "config.yaml"
        config.write_text(LAYOUT_CONFIG.format(url=hook.url))
        messages = ['Back-off <restarting> & "failed" container é', "Pulled image web:1.2"]
        for i, message in enumerate(messages):
            core_event(kube_api, namespace, obj=f"app-{i}", message=message)
        shipper = PipedShipper(config_args(kube_env, namespace, config, tmp_path), tmp_path)
        wait_for(lambda: len(hook.requests) >= 2, timeout=60, what="two requests")
        assert shipper.stop() == 0
    listed = client.CoreV1Api(kube_api).list_namespaced_event(namespace, _preload_content=False)
    answer = oracle.run(config, json.loads(listed.data)["items"])
    theirs = sorted(d["body"] for d in answer["deliveries"])
    ours = sorted(request.body.decode() for request in hook.requests)
    assert len(theirs) == 2 and ours == theirs
    for request in hook.requests:  # the templated header too
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers.get("x-reason") == "BackOff"


SEARCH_AND_TEAMS_CONFIG = """\
route:
  routes:
    - match:
        - receiver: search
        - receiver: teams
receivers:
  - name: search
    opensearch:
      hosts: ["{search}"]
      index: "{index}"
      indexFormat: "{index}"
      deDot: true
      layout:
        msg: "{{{{ .Message }}}}"
        where: "{{{{ .InvolvedObject.Namespace }}}}/{{{{ .InvolvedObject.Name }}}}"
        count: "{{{{ .Count }}}}"
        at: "{{{{ .GetTimestampISO8601 }}}}"
  - name: teams
    teams:
      endpoint: "{teams}"
      headers:
        X-Team: ops
      layout:
        message: "{{{{ .Message }}}}"
        reason: "{{{{ .Reason }}}}"
        metadata:
          kind: "{{{{ .InvolvedObject.Kind }}}}"
          name: "{{{{ .InvolvedObject.Name }}}}"
"""


def test_opensearch_and_teams_layouts_send_what_the_original_sends(
    kube_env, kube_api, namespace, tmp_path, opensearch_url
):
    index = f"layout-{uuid.uuid4().hex[:8]}"
    with TeamsReceiver() as teams:
        config = tmp_path / "config.yaml"
        config.write_text(
            SEARCH_AND_TEAMS_CONFIG.format(
                search=opensearch_url, index=index, teams=teams.url + teams.CONNECTOR
            )
        )
        messages = ['Back-off <restarting> & "failed" é', "Pulled image web:1.2"]
        created = [
            core_event(kube_api, namespace, obj=f"app-{i}", message=m, type_="Warning")
            for i, m in enumerate(messages)
        ]
        shipper = PipedShipper(config_args(kube_env, namespace, config, tmp_path), tmp_path)
        wait_for(lambda: len(teams.requests) >= 2, timeout=60, what="two Teams posts")
        wait_for(lambda: len(documents(opensearch_url, index)) >= 2, timeout=60, what="2 docs")
        assert shipper.stop() == 0, shipper.stderr()[-2000:]
    listed = client.CoreV1Api(kube_api).list_namespaced_event(namespace, _preload_content=False)
    answer = oracle.run(config, json.loads(listed.data)["items"])
    theirs_teams = sorted(oracle.bodies(answer, "teams"))
    assert len(theirs_teams) == 2
    assert sorted(r.body.decode() for r in teams.requests) == theirs_teams
    for request in teams.requests:
        assert {k.lower(): v for k, v in request.headers.items()}.get("x-team") == "ops"
    hits = documents(opensearch_url, index)
    assert {hit["_index"] for hit in hits} == {index}  # indexFormat without a date: that index
    by_id = {hit["_id"]: hit["_source"] for hit in hits}
    expected_ids = {f"{e['metadata']['uid']}.1" for e in created}
    assert set(by_id) == expected_ids  # once per version, under <uid>.<count>
    theirs_docs = sorted(
        json.dumps(json.loads(b), sort_keys=True) for b in oracle.bodies(answer, "search")
    )
    ours_docs = sorted(json.dumps(doc, sort_keys=True) for doc in by_id.values())
    assert ours_docs == theirs_docs
