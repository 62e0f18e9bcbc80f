"""The `audit` component of scripts/stack: a second kube-apiserver that sends its audit events to a
webhook, the way a cluster's API server feeds kube-event-shipper's audit source.

    scripts/stack up audit     start the `kubernetes` component if it is not running (its etcd is
                               shared), then a second kube-apiserver on 127.0.0.1 with
                               --audit-policy-file and --audit-webhook-config-file

The `kubernetes` component's kube-apiserver is left as it is (other tests share it; a running one
is never restarted from here, whatever the environment asks of it). The second one uses the same
binary, etcd, serving certificate, client CA, service-account keys and issuer, so tokens and
objects are valid on both; it does not reconcile the `kubernetes` Service's endpoints
(--endpoint-reconciler-type=none: those stay the first API server's) and has no identity Lease
(APIServerIdentity=false: its name, a hash of the host name, would be the first one's). Its
token file holds the first one's admin token (group system:masters) and `alice`, a user with no
RBAC binding at all: anything alice asks beyond discovery is denied (403), which makes a denied
request to audit.

Audit: the policy is the chart's example, helm/kube-event-shipper/files/audit-policy.yaml (one
file, shared with the docs: docs/audit.md); batch mode, --audit-webhook-batch-max-wait=1s (a batch
is sent within about a second) and --audit-webhook-initial-backoff=KES_AUDIT_WEBHOOK_INITIAL_BACKOFF
(default 1s: a failed batch is retried after ~1, 1.5, 2.25, 3.4 s, then dropped and logged, so a
receiver that starts late misses only what is older than ~8 s). Nothing needs to listen on the
webhook port: the API server starts and serves without it (failed batches are logged as
"Error in audit plugin 'webhook' affecting N audit events" in .stack/audit/kube-apiserver.log).

The webhook kubeconfig points at https://127.0.0.1:KES_AUDIT_WEBHOOK_PORT/ (default 29443), trusts
the CA that signed the webhook's server certificate (AUDIT_WEBHOOK_CA; server certificate
AUDIT_WEBHOOK_CERT / AUDIT_WEBHOOK_KEY, SAN IP:127.0.0.1), and its user presents both a client
certificate (CN kube-apiserver-audit, signed by AUDIT_CLIENT_CA, a CA of its own) and a bearer
token (the content of AUDIT_WEBHOOK_TOKEN_FILE, no trailing newline), so a receiver can check
either. Certificates are made once with openssl under .stack/audit/.

.stack/env: AUDIT_APISERVER_URL, AUDIT_KUBECONFIG (admin, on the audit API server),
AUDIT_ADMIN_TOKEN, AUDIT_USER (alice), AUDIT_USER_TOKEN, AUDIT_WEBHOOK_PORT, AUDIT_WEBHOOK_URL,
AUDIT_WEBHOOK_CERT, AUDIT_WEBHOOK_KEY, AUDIT_WEBHOOK_CA, AUDIT_CLIENT_CA, AUDIT_CLIENT_CERT,
AUDIT_CLIENT_KEY (the API server's client certificate, for tests that post as it would),
AUDIT_WEBHOOK_TOKEN_FILE, AUDIT_WEBHOOK_INITIAL_BACKOFF, AUDIT_POLICY_FILE.
Ports: KES_AUDIT_APISERVER_PORT (default 26444), KES_AUDIT_WEBHOOK_PORT (default 29443; only
written into the webhook kubeconfig, nothing of the stack listens there).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
from pathlib import Path

import kes_stack as stack  # scripts/stack itself, registered under this name before the import
from kes_stack import (
    HOST,
    REPO,
    Component,
    Proc,
    StackError,
    config_path,
    env_port,
    http_get,
    make_server_pki,
    register,
    say,
    secret_file,
    write_atomic,
    write_config,
)

POLICY = REPO / "helm" / "kube-event-shipper" / "files" / "audit-policy.yaml"
CLIENT_CN = "kube-apiserver-audit"
USER = "alice"


def make_client_pki(folder: Path, cn: str) -> None:
    """A client CA (ca.crt/ca.key) and a client certificate signed by it (client.crt/client.key,
    extendedKeyUsage clientAuth, CN cn), made once with openssl."""
    if (folder / ".complete").exists():
        return
    tmp = folder.with_name(f"{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    def openssl(command: str, *more: str) -> None:
        argv = ["openssl", *command.split(), *more]
        r = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            raise StackError(f"{shlex.join(argv)} failed:\n{r.stdout}{r.stderr}")

    new_key = "-new -nodes -newkey rsa:2048 -sha256"
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_ext += ["-addext", "keyUsage=critical,keyCertSign,cRLSign", "-subj", f"/CN={cn}-client-ca"]
    openssl(f"req -x509 {new_key} -days 3650 -keyout ca.key -out ca.crt", *ca_ext)
    openssl(f"req {new_key} -keyout client.key -out client.csr", "-subj", f"/CN={cn}")
    (tmp / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n"
    )
    openssl(
        "x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 "
        "-extfile client.ext -out client.crt"
    )
    (tmp / ".complete").write_text("")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@register
class Audit(Component):
    """A second kube-apiserver (the `kubernetes` component's binary and etcd) with an audit
    webhook on 127.0.0.1:KES_AUDIT_WEBHOOK_PORT; see the module's docstring."""

    name = "audit"

    @property
    def kube(self) -> stack.Kubernetes:
        return stack.REGISTRY["kubernetes"]  # type: ignore[return-value]

    def settings(self) -> dict:
        k = self.kube.current_settings()  # the running one's, never what the env would change
        return {
            "apiserver_port": env_port("KES_AUDIT_APISERVER_PORT", 26444),
            "webhook_port": env_port("KES_AUDIT_WEBHOOK_PORT", 29443),
            "initial_backoff": os.environ.get("KES_AUDIT_WEBHOOK_INITIAL_BACKOFF") or "1s",
            "etcd_port": k["etcd_port"],
            "issuer_port": k["apiserver_port"],
            "event_ttl": k["event_ttl"],
            "watch_cache": k["watch_cache"],
        }

    # --- files
    @property
    def webhook_pki(self) -> Path:
        return self.dir / "webhook-pki"

    @property
    def client_pki(self) -> Path:
        return self.dir / "client-pki"

    @property
    def webhook_token_file(self) -> Path:
        return self.dir / "webhook-token"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def url(self, s: dict) -> str:
        return f"https://{HOST}:{s['apiserver_port']}"

    def webhook_url(self, s: dict) -> str:
        return f"https://{HOST}:{s['webhook_port']}/"

    @property
    def user_token_file(self) -> Path:
        return self.dir / f"{USER}-token"

    def user_token(self) -> str:
        """alice's token (made by prepare_certs; "" before, so `status` writes nothing)."""
        try:
            return self.user_token_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def webhook_token(self) -> str:
        if not self.webhook_token_file.exists():
            write_atomic(self.webhook_token_file, secrets.token_hex(24), mode=0o600)
        return self.webhook_token_file.read_text().strip()

    def tokens_text(self) -> str:
        admin = self.kube.tokens.read_text().splitlines()[0]
        return f"{admin}\n{self.user_token()},{USER},uid-{USER}\n"

    def policy_text(self) -> str:
        try:
            return POLICY.read_text()
        except FileNotFoundError:
            raise StackError(f"{self.name}: the audit policy {POLICY} is missing") from None

    def webhook_kubeconfig_text(self, s: dict) -> str:
        wp, cp = self.webhook_pki, self.client_pki
        # The certificates' digest makes the file's name (hence the API server's argv) change
        # when they are made anew, so `up` restarts the API server with them.
        return "\n".join(
            [
                "# generated by scripts/stack (audit): the audit API server's webhook",
                f"# certificates {digest(wp / 'ca.crt', cp / 'client.crt', cp / 'client.key')}",
                "apiVersion: v1",
                "kind: Config",
                "clusters:",
                "- name: kube-event-shipper",
                "  cluster:",
                f"    server: {self.webhook_url(s)}",
                f"    certificate-authority: {wp / 'ca.crt'}",
                "users:",
                "- name: kube-apiserver",
                "  user:",
                f"    client-certificate: {cp / 'client.crt'}",
                f"    client-key: {cp / 'client.key'}",
                f"    tokenFile: {self.webhook_token_file}",
                "contexts:",
                "- name: webhook",
                "  context:",
                "    cluster: kube-event-shipper",
                "    user: kube-apiserver",
                "current-context: webhook",
                "",
            ]
        )

    def processes(self, s: dict) -> list[Proc]:
        pki = self.kube.pki
        etcd_url = f"http://{HOST}:{s['etcd_port']}"
        url = self.url(s)
        tokens = self.tokens_text() if self.kube.tokens.exists() else ""
        policy = config_path(self.dir, "audit-policy", ".yaml", self.policy_text())
        webhook = self.webhook_kubeconfig_text(s) if self.certs_made() else ""
        apiserver = Proc(
            self,
            "kube-apiserver",
            [
                str(self.kube.bin / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={s['apiserver_port']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # The first API server's issuer: the tokens of either are valid on both.
                f"--service-account-issuer=https://{HOST}:{s['issuer_port']}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--token-auth-file={config_path(self.dir, 'tokens', '.csv', tokens)}",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                f"--event-ttl={s['event_ttl']}",
                "--etcd-compaction-interval=0",  # the tests force compaction themselves
                f"--watch-cache={s['watch_cache']}",
                "--enable-priority-and-fairness=false",
                # The `kubernetes` Service's endpoints are the first API server's (another port).
                "--endpoint-reconciler-type=none",
                # Its identity Lease would be the first one's (its name is a hash of the host
                # name): the two would overwrite each other's every 10 s.
                "--feature-gates=APIServerIdentity=false",
                f"--cert-dir={self.dir / 'generated'}",  # unused (certs given)
                f"--audit-policy-file={policy}",
                "--audit-webhook-config-file="
                + str(config_path(self.dir, "webhook", ".kubeconfig", webhook)),
                "--audit-webhook-mode=batch",
                "--audit-webhook-batch-max-wait=1s",
                f"--audit-webhook-initial-backoff={s['initial_backoff']}",
                "--v=1",
            ],
            ready=lambda: self.ready(url),
            address=url,
            ports=[s["apiserver_port"]],
            timeout=180,
        )
        return [apiserver]

    def ready(self, url: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.kube.pki / "ca.crt"))
        status, body = http_get(
            f"{url}/readyz", context=ctx, headers={"Authorization": f"Bearer {self.kube.token()}"}
        )
        return status == 200 and body.strip() == b"ok"

    def certs_made(self) -> bool:
        return (self.webhook_pki / ".complete").exists() and (
            self.client_pki / ".complete"
        ).exists()

    # --- start / state
    def build(self) -> None:
        self.kube.build()  # the same kube-apiserver binary

    def start(self) -> None:
        if not self.kube.running():
            say(f"{self.name}: the kubernetes component (its etcd) is not running: starting it")
            self.kube.start()
        self.prepare_certs()  # before settings/processes: the webhook kubeconfig names them
        super().start()

    def prepare_certs(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.certs_made():
            say(f"{self.name}: generating the webhook's certificates in .stack/{self.name}")
        make_server_pki(self.webhook_pki, "kes-stack-audit-webhook")
        make_client_pki(self.client_pki, CLIENT_CN)
        self.webhook_token()
        secret_file(self.user_token_file)

    def prepare(self, s: dict) -> None:
        self.prepare_certs()
        policy = self.policy_text()
        write_config(config_path(self.dir, "audit-policy", ".yaml", policy), policy)
        tokens = self.tokens_text()
        write_config(config_path(self.dir, "tokens", ".csv", tokens), tokens, mode=0o600)
        webhook = self.webhook_kubeconfig_text(s)
        write_config(config_path(self.dir, "webhook", ".kubeconfig", webhook), webhook, 0o600)
        ca = base64.b64encode((self.kube.pki / "ca.crt").read_bytes()).decode()
        write_atomic(
            self.kubeconfig,
            "\n".join(
                [
                    "apiVersion: v1",
                    "kind: Config",
                    "clusters:",
                    "- name: stack-audit",
                    "  cluster:",
                    f"    server: {self.url(s)}",
                    f"    certificate-authority-data: {ca}",
                    "users:",
                    "- name: admin",
                    "  user:",
                    f"    token: {self.kube.token()}",
                    "contexts:",
                    "- name: stack-audit",
                    "  context:",
                    "    cluster: stack-audit",
                    "    user: admin",
                    "current-context: stack-audit",
                    "",
                ]
            ),
            mode=0o600,
        )

    def env(self, s: dict) -> dict[str, str]:
        wp, cp = self.webhook_pki, self.client_pki
        return {
            "AUDIT_APISERVER_URL": self.url(s),
            "AUDIT_KUBECONFIG": str(self.kubeconfig),
            "AUDIT_ADMIN_TOKEN": self.kube.token(),
            "AUDIT_USER": USER,
            "AUDIT_USER_TOKEN": self.user_token(),
            "AUDIT_WEBHOOK_PORT": str(s["webhook_port"]),
            "AUDIT_WEBHOOK_URL": self.webhook_url(s),
            "AUDIT_WEBHOOK_CERT": str(wp / "server.crt"),
            "AUDIT_WEBHOOK_KEY": str(wp / "server.key"),
            "AUDIT_WEBHOOK_CA": str(wp / "ca.crt"),
            "AUDIT_CLIENT_CA": str(cp / "ca.crt"),
            "AUDIT_CLIENT_CERT": str(cp / "client.crt"),
            "AUDIT_CLIENT_KEY": str(cp / "client.key"),
            "AUDIT_WEBHOOK_TOKEN_FILE": str(self.webhook_token_file),
            "AUDIT_WEBHOOK_INITIAL_BACKOFF": s["initial_backoff"],
            "AUDIT_POLICY_FILE": str(POLICY),
        }
