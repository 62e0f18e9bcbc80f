"""The node's relay (run by scripts/stack as part of `node`): how pods reach this host's servers.

The stack's servers listen on 127.0.0.1, which a pod (in its own network namespace, on the
bridge kes-stack0) cannot reach. This process listens on addresses of that bridge only and
relays to 127.0.0.1, the way kube-proxy's IPVS mode binds Service ClusterIPs to a local dummy
interface:

  --api LISTEN=UPSTREAM     TLS in (a certificate from the stack's CA naming the `kubernetes`
                            Service's ClusterIP), TLS out to the kube-apiserver on 127.0.0.1,
                            verified with the same CA. In-cluster clients (KUBERNETES_SERVICE_HOST
                            = the ClusterIP, which scripts/stack puts on the bridge) and their
                            ServiceAccount tokens work unchanged; the relay never reads a request.
  --forward LISTEN=UPSTREAM plain TCP, e.g. the bridge's address :29200 -> 127.0.0.1:29200.
  --webhook 127.0.0.1:PORT  the ServiceAccount admission plugin's Pod mutation as a mutating
                            admission webhook (the stack's kube-apiserver runs without that plugin,
                            so that the modules without a controller-manager can create Pods with
                            no ServiceAccount in place): a projected `kube-api-access-*` volume
                            (token, kube-root-ca.crt, namespace) mounted at
                            /var/run/secrets/kubernetes.io/serviceaccount in every container,
                            unless automountServiceAccountToken says no.

Every upstream is 127.0.0.1 (checked). Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import signal
import ssl
import sys
import urllib.error
import urllib.request

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def split_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (OSError, RuntimeError):
            writer.close()


def relay(upstream: tuple[str, int], tls: ssl.SSLContext | None):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    *upstream, ssl=tls, server_hostname=upstream[0] if tls else None
                ),
                timeout=10,
            )
        except (TimeoutError, OSError, ssl.SSLError) as e:
            log(f"relay: {upstream[0]}:{upstream[1]} unreachable: {e}")
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    return handle


class Webhook:
    def __init__(self, api: str, ca: str, token: str) -> None:
        self.api, self.token = api.rstrip("/"), token
        self.ctx = ssl.create_default_context(cafile=ca)

    def automount_of(self, namespace: str, name: str) -> bool | None:
        req = urllib.request.Request(
            f"{self.api}/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=3, context=self.ctx) as resp:
                return json.loads(resp.read()).get("automountServiceAccountToken")
        except (urllib.error.URLError, OSError, ValueError):
            return None  # not there (yet): the kubelet waits for it, as it does for the plugin

    def patch(self, request: dict) -> list[dict]:
        pod = request.get("object") or {}
        spec = pod.get("spec") or {}
        ops: list[dict] = []
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or ""
        if not sa:
            sa = "default"
            ops.append({"op": "add", "path": "/spec/serviceAccountName", "value": sa})
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = self.automount_of(request.get("namespace") or "default", sa)
        if automount is False:
            return ops
        volumes = spec.get("volumes") or []
        if any(v.get("name", "").startswith("kube-api-access-") for v in volumes):
            return ops
        name = "kube-api-access-" + secrets.token_hex(3)[:5]
        volume = {
            "name": name,
            "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
        if volumes:
            ops.append({"op": "add", "path": "/spec/volumes/-", "value": volume})
        else:
            ops.append({"op": "add", "path": "/spec/volumes", "value": [volume]})
        mount = {"name": name, "mountPath": SA_PATH, "readOnly": True}
        for kind in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(kind) or []):
                mounts = c.get("volumeMounts") or []
                if any(m.get("mountPath") == SA_PATH for m in mounts):
                    continue
                if mounts:
                    ops.append({"op": "add", "path": f"/spec/{kind}/{i}/volumeMounts/-",
                                "value": mount})  # fmt: skip
                else:
                    ops.append({"op": "add", "path": f"/spec/{kind}/{i}/volumeMounts",
                                "value": [mount]})  # fmt: skip
        return ops

    async def review(self, body: bytes) -> dict:
        review = json.loads(body)
        request = review.get("request") or {}
        response: dict = {"uid": request.get("uid", ""), "allowed": True}
        if request.get("kind", {}).get("kind") == "Pod" and request.get("operation") == "CREATE":
            ops = await asyncio.to_thread(self.patch, request)
            if ops:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": response}  # fmt: skip

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                if method == "POST" and path.startswith("/mutate"):
                    status, out = "200 OK", json.dumps(await self.review(body)).encode()
                elif method == "GET" and path == "/healthz":
                    status, out = "200 OK", b'"ok"'
                else:
                    status, out = "404 Not Found", b'"not found"'
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(out)}\r\n\r\n".encode()
                    + out
                )
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError, ValueError, asyncio.IncompleteReadError):
            pass
        except Exception as e:  # one bad request must not end the relay
            log(f"webhook: {type(e).__name__}: {e}")
        finally:
            writer.close()


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cert", required=True, help="serving certificate (the stack's CA)")
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True, help="the stack's CA: verifies the kube-apiserver")
    p.add_argument("--api", action="append", default=[], metavar="LISTEN=UPSTREAM")
    p.add_argument("--forward", action="append", default=[], metavar="LISTEN=UPSTREAM")
    p.add_argument("--webhook", metavar="127.0.0.1:PORT")
    p.add_argument("--apiserver", help="https://127.0.0.1:PORT, for ServiceAccount lookups")
    p.add_argument("--token-file", help="tokens.csv of the kube-apiserver (admin token first)")
    args = p.parse_args(argv)

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(args.cert, args.key)
    client_tls = ssl.create_default_context(cafile=args.ca)
    servers = []
    for spec, tls in [(s, True) for s in args.api] + [(s, False) for s in args.forward]:
        listen, _, upstream = spec.partition("=")
        lhost, lport = split_addr(listen)
        uhost, uport = split_addr(upstream)
        if uhost != "127.0.0.1":
            raise SystemExit(f"relay: upstream {upstream}: only 127.0.0.1 is relayed to")
        handler = relay((uhost, uport), client_tls if tls else None)
        servers.append(
            await asyncio.start_server(
                handler, lhost, lport, ssl=server_tls if tls else None, reuse_address=True
            )
        )
        log(f"relay: {listen} -> {upstream}{' (TLS)' if tls else ''}")
    if args.webhook:
        whost, wport = split_addr(args.webhook)
        if whost != "127.0.0.1":
            raise SystemExit("relay: the webhook listens on 127.0.0.1 only")
        with open(args.token_file) as f:
            token = f.read().split(",", 1)[0].strip()
        hook = Webhook(args.apiserver, args.ca, token)
        servers.append(await asyncio.start_server(hook.handle, whost, wport, ssl=server_tls))
        log(f"relay: ServiceAccount webhook on https://{args.webhook}/mutate")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
