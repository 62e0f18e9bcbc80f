"""The notifiers in the daemon, fed by the real kube-apiserver, writing to local vendor stand-ins.

What is shown: a Warning event reaches the webhook with a valid JSON body whatever its message
holds, and Normal ones are filtered by ``level=Warning``; a DingTalk robot (HTTPS, signed,
keyword) gets a burst as a few messages and one digest; events folded into a digest that is
still pending when the process is SIGKILLed are all delivered after the restart; bad
credentials are one clear line without a traceback; no token, secret, signature or webhook key ever reaches the log, even
while sinks fail; bad URIs exit 2 with one line naming the parameter.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.common import ROOT, wait_for
from tests.support.kube import bump, core_event, now
from tests.support.proxy import make_pki, server_tls
from tests.support.receivers import (
    HOSTILE,
    DingTalkReceiver,
    LarkReceiver,
    SlackReceiver,
    TeamsReceiver,
    WebhookReceiver,
    WeComReceiver,
)


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(*sink_args, *flags)`` -> a started shipper for the test's namespace."""

    def start(*args: str) -> object:
        return shipper_factory(
            [
                f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
                *args,
                f"--state-dir={tmp_path / 'state'}",
                "--cluster-name=stack",
                "--grace-period=3s",
            ],
            env={"KUBECONFIG": kube_env["KUBECONFIG"]},
        ).start()

    return start


def metric(shipper, sink: str, outcome: str) -> float:
    return shipper.metric("kube_event_shipper_sink_events_total", sink=sink, outcome=outcome)


def test_warning_events_reach_the_webhook_and_normal_ones_are_filtered(
    run, kube_api, namespace, tmp_path
):
    body = tmp_path / "body.json"
    body.write_text(
        '{"reason": "{{ .Reason }}", "message": "{{ .Message }}", "count": {{ .Count }},'
        ' "object": "{{ .InvolvedObject.Kind }}/{{ .InvolvedObject.Namespace }}/{{ .InvolvedObject.Name }}",'
        ' "cluster": "{{ .ClusterName }}"}'
    )
    with WebhookReceiver() as hook:
        shipper = run(f"--sink=webhook:{hook.url}/events?level=Warning&body_template={body}")
        core_event(
            kube_api, namespace, type_="Normal", reason="Pulled", obj="web-0", message="pulled"
        )
        hostile = "\n".join(HOSTILE).replace("\x00", "")  # the API server stores no NUL
        warning = core_event(
            kube_api, namespace, type_="Warning", reason="BackOff", obj="web-1", message=hostile
        )
        wait_for(lambda: hook.messages, what="the Warning event at the webhook")
        bump(kube_api, namespace, warning["metadata"]["name"], 2, now(1))
        wait_for(
            lambda: len(hook.messages) == 2, what="the count update (a webhook sends every update)"
        )
        wait_for(
            lambda: metric(shipper, "webhook", "filtered") >= 1, what="the Normal event filtered"
        )
        assert metric(shipper, "webhook", "shipped") == 2
        assert shipper.stop() == 0
    assert hook.problems == []
    first, update = hook.messages
    assert first == {
        "reason": "BackOff",
        "message": hostile,
        "count": 1,
        "object": f"Pod/{namespace}/web-1",
        "cluster": "stack",
    }
    assert update["count"] == 2
    assert all(m["reason"] != "Pulled" for m in hook.messages)


def test_dingtalk_burst_is_a_few_messages_and_one_digest(run, kube_api, namespace, tmp_path):
    pki = make_pki(tmp_path)
    secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
    with DingTalkReceiver(
        token="dt-token-123",
        secret=secret,
        keyword="stack-alerts",
        tls=server_tls(pki, require_client_cert=False),
    ) as robot:
        robot.windows.clear()
        robot.limit(5, 4.0)  # the vendor's own count: refusals would show as 130101
        shipper = run(
            f"--sink=dingtalk:{robot.url}/robot/send?access_token=dt-token-123&sign={secret}"
            f"&label=stack-alerts&rate=5/4s&ca_file={pki.ca}&msg_type=markdown"
        )
        core_event(kube_api, namespace, type_="Normal", reason="Scheduled", obj="quiet")
        for i in range(12):
            core_event(
                kube_api, namespace, reason="BackOff" if i % 3 else "OOMKilling", obj=f"web-{i}"
            )
        wait_for(lambda: metric(shipper, "dingtalk", "shipped") == 12, what="12 Warnings handled")
        wait_for(
            lambda: any("more:" in m["markdown"]["title"] for m in robot.messages),
            timeout=20,
            what="the digest",
        )
        assert (
            metric(shipper, "dingtalk", "filtered") >= 1
        )  # the Normal one: level defaults to Warning
        assert shipper.stop() == 0
    assert robot.problems == [] and robot.refused_rate == 0
    singles = [m for m in robot.messages if "more:" not in m["markdown"]["title"]]
    [digest] = [m for m in robot.messages if "more:" in m["markdown"]["title"]]
    assert len(singles) == 5 and all(
        "stack-alerts" in m["markdown"]["text"] for m in robot.messages
    )
    assert digest["markdown"]["title"].startswith("[stack] 7 more: ")


def test_a_digest_pending_at_a_crash_loses_nothing(run, kube_api, namespace, tmp_path):
    """Events folded into a digest keep their tickets open until the digest is sent: the
    checkpoint does not pass them, so after a SIGKILL they are read again and delivered."""
    with DingTalkReceiver(token="crash-token", keyword="crash") as robot:
        robot.windows.clear()
        sink = (
            f"--sink=dingtalk:{robot.url}/robot/send?access_token=crash-token&label=crash&name=ding"
        )
        shipper = run(f"{sink}&rate=1/1h")  # one message an hour: the digest cannot go
        core_event(kube_api, namespace, obj="first")
        wait_for(lambda: len(robot.messages) == 1, what="the first event, sent")
        burst = [core_event(kube_api, namespace, obj=f"web-{i}") for i in range(8)]
        folded = lambda: shipper.metric(  # noqa: E731
            "kube_event_shipper_notify_events_total", sink="ding", outcome="digested"
        )
        wait_for(lambda: folded() == 8, what="the burst folded into the pending digest")
        time.sleep(2.5)  # the checkpoint is saved every second: give it the chance to move
        assert metric(shipper, "ding", "shipped") == 1  # held, not shipped
        shipper.proc.kill()  # SIGKILL: no shutdown, no flush
        shipper.proc.wait(timeout=10)
        db = sqlite3.connect(tmp_path / "state" / "checkpoint.db")
        [(position,)] = db.execute("SELECT rv FROM positions").fetchall()
        db.close()
        first_folded = min(int(e["metadata"]["resourceVersion"]) for e in burst)
        assert int(position) < first_folded, "the checkpoint passed events still in the digest"
        assert len(robot.requests) == 1  # no digest was tried: the hour is not over

        # The hour has passed, say: restart with DingTalk's own 20 per minute.
        shipper.args = [sink if a.startswith("--sink=") else a for a in shipper.args]
        shipper.start()
        wait_for(lambda: len(robot.messages) == 9, what="all 8 folded events, after the restart")
        wait_for(lambda: metric(shipper, "ding", "shipped") == 8, what="8 shipped")
        assert shipper.stop() == 0
    assert robot.problems == [] and robot.refused_rate == 0
    names = [m["text"]["content"].split("Name: ")[1].split("\n")[0] for m in robot.messages]
    assert names == ["first", *sorted(names[1:])] and sorted(names[1:]) == [
        f"web-{i}" for i in range(8)
    ]
    assert len(robot.requests) == 9  # nothing sent twice: "first" was checkpointed


def test_no_secret_reaches_the_log_and_bad_credentials_are_one_line(run, kube_api, namespace):
    secrets = {
        "dingtalk token": "dtTOKENsecret42",
        "dingtalk sign": "SECsignsecret4242",
        "slack token": "xoxb-11-22-x",
        "wecom secret": "wecomCORPsecret42",
        "lark hook": "larkHOOKsecret-42",
        "lark sign": "larkSIGNsecret42",
        "teams sig": "teamsSIGsecret42",
        "webhook bearer": "bearerTOKENsecret42",
        "webhook query key": "querykeySECRET42",
    }
    s = secrets
    with (
        DingTalkReceiver(token=s["dingtalk token"], secret="SECtheRightOne") as robot,
        SlackReceiver(token=s["slack token"], channels=("C1",)) as slack,
        WeComReceiver(corp_id="ww1", secret="theRightSecret") as wecom,
        LarkReceiver(hook=s["lark hook"], secret="rightLarkSign") as lark,
        TeamsReceiver(sig="theRightSig") as teams,
        WebhookReceiver() as hook,
    ):
        hook.inject += [(401, "bad token")] * 3
        shipper = run(
            "--log-level=debug",
            f"--sink=dingtalk:{robot.url}/robot/send?access_token={s['dingtalk token']}&sign={s['dingtalk sign']}",
            f"--sink=slack:?token={s['slack token']}&channel=C404&api_url={slack.url}/api",
            f"--sink=wechat:?corp_id=ww1&corp_secret={s['wecom secret']}&agent_id=1000002&api_url={wecom.url}",
            f"--sink=feishu:{lark.url}/open-apis/bot/v2/hook/{s['lark hook']}?sign={s['lark sign']}",
            f"--sink=teams:{teams.url}{teams.WORKFLOW}?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig={s['teams sig']}",
            f"--sink=webhook:{hook.url}/in?token={s['webhook query key']}&header=Authorization=Bearer {s['webhook bearer']}",
        )
        core_event(kube_api, namespace, reason="BackOff", obj="web-1")
        for sink in ("dingtalk", "slack", "lark", "teams"):  # feishu: is the lark sink
            wait_for(
                lambda sink=sink: metric(shipper, sink, "retried") > 0,
                what=f"{sink} failing and retried",
            )
        wait_for(
            lambda: metric(shipper, "webhook", "shipped") == 1,
            what="the webhook through after its 401s",
        )
        assert shipper.stop() == 0
    log = shipper.stderr()
    assert "Traceback" not in log, log
    for what, value in secrets.items():
        assert value not in log, f"the {what} is in the log"
    # each failure is one line that says what to fix
    assert (
        "Sink wechat is not reachable yet (WeCom gettoken failed for corp_id ww1 (errcode 40001: invalid credential"
        in log
    )
    assert "check corp_id and corp_secret); retrying in" in log
    assert (
        "Sink dingtalk could not write 1 events (DingTalk refused the robot's request: errcode 310000: sign not match"
        in log
    )
    assert (
        "Sink slack could not write 1 events (Slack refused the request: channel_not_found)" in log
    )
    assert "Sink lark could not write 1 events (Lark refused the bot's request: code 19021" in log
    assert (
        "Sink teams could not write 1 events (Teams answered HTTP 401: DirectApiAuthorizationRequired"
        in log
    )
    assert "Sink webhook could not write 1 events (The webhook answered HTTP 401: bad token)" in log
    wechat_lines = [line for line in log.splitlines() if "Sink wechat" in line]
    assert wechat_lines and all(len(line) < 400 for line in wechat_lines)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return str(path)


BAD = [
    (
        "dingtalk:https://oapi.dingtalk.com/robot/send?level=Warning",
        "--sink dingtalk: you must provide the robot's access_token",
    ),
    (
        "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&lable=prod",
        "--sink dingtalk: unknown parameter 'lable'; did you mean 'label'?",
    ),
    (
        "slack:?token=x&channel=C1&message={{ .Reason | shout }}",
        "--sink slack: parameter message: line 1, col 14: unknown function 'shout'",
    ),
    (
        "webhook:https://h/x?custom_body_configmap=a&body_template=/b",
        "--sink webhook: give body_template or custom_body_configmap, not both",
    ),
    (
        "teams:https://x.webhook.office.com/w?realert=soon",
        "--sink teams: parameter realert='soon': expected a duration",
    ),
]


@pytest.mark.parametrize(("uri", "expected"), BAD, ids=[u for u, _ in BAD])
def test_bad_uris_exit_2_with_one_line(uri, expected, kubeconfig, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "shipper", f"--source=kubernetes:?auth={kubeconfig}", f"--sink={uri}", f"--state-dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_webhook_body_from_a_configmap(run, kube_api, namespace):
    from kubernetes import client

    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {
        "metadata": {"name": "custom-webhook-body"},
        "data": {"content": '{"msgtype": "text", "text": {"content": "{{ .InvolvedObject.Name }}: {{ .Message }}"}}'},
    })  # fmt: skip
    with WebhookReceiver() as hook:
        run(
            f"--sink=webhook:{hook.url}/?custom_body_configmap=custom-webhook-body&custom_body_configmap_namespace={namespace}"
        )
        core_event(kube_api, namespace, obj="web-9", message='said "no"')
        wait_for(lambda: hook.messages, what="the event in the ConfigMap's body")
    assert hook.messages == [{"msgtype": "text", "text": {"content": 'web-9: said "no"'}}]
    assert json.dumps(hook.messages)  # parsed by the receiver, so valid JSON
