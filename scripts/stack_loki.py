"""The `loki` component of scripts/stack: a real Grafana Loki behind an authenticating gateway.

    scripts/stack up loki      build Loki (cmd/loki, single binary) from the Go module proxy if
                               the cache lacks it (scripts/build/loki.sh), start it and the
                               gateway, wait until both are ready

Loki (github.com/grafana/loki/v3, LOKI_VERSION in scripts/build/loki.sh) runs as one process
(`-target=all`) on 127.0.0.1 with `auth_enabled: true` (multi-tenant: every request needs
`X-Scope-OrgID`), an in-memory ring, the TSDB index and chunks on the filesystem under
.stack/loki/data, a WAL, `reject_old_samples` with a max age of KES_LOKI_MAX_AGE (default 24h;
an entry older than that is refused with 400 "has timestamp too old") and structured metadata
allowed. Ingestion limits are raised so that benchmarks measure the client, not a rate limit.

Loki itself checks no credentials (its docs put an nginx or other gateway in front). The gateway
here does what such a gateway does: it requires HTTP basic auth (LOKI_USER / LOKI_PASSWORD) or
a bearer token (LOKI_TOKEN) and answers anything else with 401 and a `WWW-Authenticate`
header, before forwarding the request unchanged (X-Scope-OrgID, Content-Encoding and all) to
Loki. It serves plain HTTP (LOKI_URL) and HTTPS (LOKI_TLS_URL, certificate for 127.0.0.1 signed
by LOKI_CA). Run as a script, this module is that gateway.

.stack/env: LOKI_URL (the gateway), LOKI_TLS_URL, LOKI_CA, LOKI_DIRECT_URL (Loki itself: no
credentials, still multi-tenant), LOKI_TENANT, LOKI_USER, LOKI_PASSWORD, LOKI_TOKEN,
LOKI_MAX_AGE.
Ports: KES_LOKI_PORT (default 23100, Loki's HTTP), KES_LOKI_GRPC_PORT (29095),
KES_LOKI_GATEWAY_PORT (23101), KES_LOKI_GATEWAY_TLS_PORT (23102).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __name__ != "__main__":  # imported by scripts/stack (as kes_stack)
    from kes_stack import (
        HOST,
        REPO,
        Component,
        Proc,
        config_path,
        env_port,
        http_get,
        make_server_pki,
        register,
        secret_file,
        write_config,
    )
else:  # run as the gateway: standard library only
    register = None  # type: ignore[assignment]

TENANT = "kube-events"
USER = "shipper"
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip


LOKI_CONFIG = """\
# Written by scripts/stack_loki.py; edits are overwritten on `scripts/stack up loki`.
auth_enabled: true
target: all
server:
  http_listen_address: {host}
  http_listen_port: {port}
  grpc_listen_address: {host}
  grpc_listen_port: {grpc_port}
  log_level: warn
  grpc_server_max_recv_msg_size: 104857600
  grpc_server_max_send_msg_size: 104857600
common:
  instance_addr: {host}
  path_prefix: {data}
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
  storage:
    filesystem:
      chunks_directory: {data}/chunks
      rules_directory: {data}/rules
schema_config:
  configs:
    - from: "2024-01-01"
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
ingester:
  wal:
    enabled: true
    dir: {data}/wal
limits_config:
  reject_old_samples: true
  reject_old_samples_max_age: {max_age}
  creation_grace_period: 10m
  allow_structured_metadata: true
  ingestion_rate_mb: 256
  ingestion_burst_size_mb: 512
  per_stream_rate_limit: 256MB
  per_stream_rate_limit_burst: 512MB
  max_global_streams_per_user: 100000
  max_entries_limit_per_query: 100000
  max_query_series: 100000
  query_timeout: 60s
  volume_enabled: true
query_range:
  results_cache:
    cache:
      embedded_cache:
        enabled: false
  cache_results: false
frontend:
  max_outstanding_per_tenant: 4096
ruler:
  storage:
    type: local
    local:
      directory: {data}/rules
analytics:
  reporting_enabled: false
tracing:
  enabled: false
"""


if register is not None:

    @register
    class Loki(Component):
        """Loki single binary (multi-tenant) + an authenticating gateway (basic auth, bearer)."""

        name = "loki"
        binaries = ("loki",)
        build_script = "scripts/build/loki.sh"
        build_time = "about 7 min on 2 cores, ~500 MB of modules"

        def settings(self) -> dict:
            return {
                "port": env_port("KES_LOKI_PORT", 23100),
                "grpc_port": env_port("KES_LOKI_GRPC_PORT", 29095),
                "gateway_port": env_port("KES_LOKI_GATEWAY_PORT", 23101),
                "gateway_tls_port": env_port("KES_LOKI_GATEWAY_TLS_PORT", 23102),
                "max_age": os.environ.get("KES_LOKI_MAX_AGE") or "24h",
            }

        def config_text(self, s: dict) -> str:
            return LOKI_CONFIG.format(
                host=HOST, port=s["port"], grpc_port=s["grpc_port"], data=self.dir / "data",
                max_age=s["max_age"],
            )  # fmt: skip

        def credentials(self) -> tuple[str, str]:
            """(password, token), each made once and kept in a 0600 file."""
            self.dir.mkdir(parents=True, exist_ok=True)
            return secret_file(self.dir / "password"), secret_file(self.dir / "token")

        def urls(self, s: dict) -> tuple[str, str, str]:
            """Loki itself, the gateway, the gateway over TLS."""
            return (
                f"http://{HOST}:{s['port']}",
                f"http://{HOST}:{s['gateway_port']}",
                f"https://{HOST}:{s['gateway_tls_port']}",
            )

        def prepare(self, s: dict) -> None:
            (self.dir / "data").mkdir(parents=True, exist_ok=True)
            text = self.config_text(s)
            write_config(config_path(self.dir, "loki", ".yaml", text), text)
            make_server_pki(self.dir / "pki", "loki-gateway")
            self.credentials()

        def processes(self, s: dict) -> list[Proc]:
            direct, gateway, _ = self.urls(s)
            # The config file's name carries a hash of its content: a new config restarts Loki.
            config = config_path(self.dir, "loki", ".yaml", self.config_text(s))
            loki = Proc(
                self,
                "loki",
                [str(self.bin / "loki"), f"-config.file={config}"],
                ready=lambda: self.loki_ready(direct),
                address=direct,
                ports=[s["port"], s["grpc_port"]],
                timeout=120,
            )
            script = REPO / "scripts" / "stack_loki.py"
            rev = hashlib.sha256(script.read_bytes()).hexdigest()[:10]  # an edit restarts it
            pki = self.dir / "pki"
            gateway_proc = Proc(
                self,
                "gateway",
                [
                    sys.executable,
                    str(script),
                    f"--rev={rev}",
                    f"--listen={HOST}:{s['gateway_port']}",
                    f"--listen-tls={HOST}:{s['gateway_tls_port']}",
                    f"--cert={pki / 'server.crt'}",
                    f"--key={pki / 'server.key'}",
                    f"--upstream={HOST}:{s['port']}",
                    f"--password-file={self.dir / 'password'}",
                    f"--token-file={self.dir / 'token'}",
                    f"--user={USER}",
                ],
                ready=lambda: http_get(f"{gateway}/_gateway/health")[0] == 200,
                address=gateway,
                ports=[s["gateway_port"], s["gateway_tls_port"]],
                timeout=30,
            )
            return [loki, gateway_proc]

        def loki_ready(self, url: str) -> bool:
            status, body = http_get(f"{url}/ready")
            return status == 200 and body.strip() == b"ready"

        def env(self, s: dict) -> dict[str, str]:
            direct, gateway, tls = self.urls(s)
            password, token = self.credentials()
            return {
                "LOKI_URL": gateway,
                "LOKI_TLS_URL": tls,
                "LOKI_CA": str(self.dir / "pki" / "ca.crt"),
                "LOKI_DIRECT_URL": direct,
                "LOKI_TENANT": TENANT,
                "LOKI_USER": USER,
                "LOKI_PASSWORD": password,
                "LOKI_TOKEN": token,
                "LOKI_MAX_AGE": s["max_age"],
            }


# ---------------------------------------------------------------------------------------------
# The gateway (run as a script)


class Gateway(BaseHTTPRequestHandler):
    """Check basic auth or a bearer token, then forward the request to Loki unchanged."""

    protocol_version = "HTTP/1.1"
    upstream = ("127.0.0.1", 3100)
    user = USER
    password = ""
    token = ""

    def log_message(self, fmt: str, *args: object) -> None:  # quiet: one line per refusal only
        pass

    def authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self.user) and hmac.compare_digest(
                password, self.password
            )
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip(), self.token)
        return False

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_gateway/health":
            self.reply(200, b"ok\n", {"Content-Type": "text/plain"})
            return
        if not self.authorized():
            sys.stderr.write(f"401 {self.command} {self.path.split('?')[0]}\n")
            self.reply(
                401,
                b"<html><head><title>401 Authorization Required</title></head>"
                b"<body><center><h1>401 Authorization Required</h1></center></body></html>\n",
                {"Content-Type": "text/html", "WWW-Authenticate": 'Basic realm="loki"'},
            )
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.pop("Authorization", None)
        try:
            conn = http.client.HTTPConnection(*self.upstream, timeout=120)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            conn.close()
        except OSError as exc:  # Loki down: a gateway answers 502
            self.reply(502, f"502 Bad Gateway: {exc}\n".encode(), {"Content-Type": "text/plain"})
            return
        self.reply(resp.status, data, out)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 refuses connections under a benchmark's load


def serve(args: argparse.Namespace) -> None:
    import threading

    host, port = args.upstream.rsplit(":", 1)
    Gateway.upstream = (host, int(port))
    Gateway.user = args.user
    Gateway.password = Path(args.password_file).read_text().strip()
    Gateway.token = Path(args.token_file).read_text().strip()

    def server(listen: str) -> ThreadingHTTPServer:
        host, port = listen.rsplit(":", 1)
        httpd = Server((host, int(port)), Gateway)
        httpd.daemon_threads = True
        return httpd

    plain = server(args.listen)
    tls = server(args.listen_tls)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    print(f"gateway on {args.listen} and {args.listen_tls} (TLS) -> {args.upstream}", flush=True)
    plain.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description="authenticating gateway in front of Loki")
    ap.add_argument("--rev", default="")  # changes with this file and the config: restarts it
    ap.add_argument("--listen", required=True)
    ap.add_argument("--listen-tls", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--user", default=USER)
    serve(ap.parse_args())


if __name__ == "__main__":
    main()
