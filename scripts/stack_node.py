"""The `node` component of scripts/stack, and its `image` command: a real Kubernetes node.

    scripts/stack up node      containerd (+ runc, CNI bridge), kube-scheduler,
                               kube-controller-manager and a kubelet, joined to the stack's
                               kube-apiserver (started first if it is not running)
    scripts/stack image        build the stand-in Python base image and the project's image
                               (Dockerfile, with podman) and import both into the node
    scripts/stack down node    stop all of it and leave the machine as it was

Built and installed by itself: kubelet, kube-scheduler, kube-controller-manager, kubectl and a
pause binary come from the Go module proxy (scripts/build/kube-node.sh, the kube-apiserver's
version); helm from scripts/build/helm.sh; containerd, runc, containernetworking-plugins,
podman and debootstrap are Debian packages (.ci/run installs them). No registry is reached:
the pause image is assembled here from the pause binary, the base image is debootstrapped, pods
use `imagePullPolicy: Never`, and containerd's HTTP(S) proxy is a closed loopback port, so a pull
(another test's made-up `nginx:1.27`) fails at once with ErrImagePull, without a DNS lookup.

Keeping the host as it was:
  * containerd runs in a private mount namespace (unshare) in which /var and /run are overlays
    whose writable layers live in .stack/node/ns: everything containerd, its shims, runc, the CNI
    plugins and the kubelet (which joins that namespace with nsenter) write to hard-coded places
    (/run/containerd/s, /run/netns, /var/lib/cni, /var/lib/kubelet/device-plugins,
    /var/log/containers) lands there, and every mount they make (container root filesystems,
    volumes, network namespace handles) is invisible to the host and vanishes with the namespace.
  * In that namespace, plain files holding the values the kubelet wants are bound over the
    /proc/sys entries it would otherwise write (vm.overcommit_memory, kernel.panic, ...);
    protectKernelDefaults makes it fail rather than write the host's.
  * The kubelet keeps away from iptables (makeIPTablesUtilChains: false); the CNI bridge has no
    masquerading or port mapping and is not a gateway, so no iptables rules and no ip_forward.
    The bridge and its address are created here (so the kubelet's node IP exists before it
    starts) and deleted on `down`.
  * Pod cgroups go under one cgroup root of their own (/kube-event-shipper-stack in every v1
    hierarchy); `down` kills what runs there, then removes those cgroups.

Networking: pods get addresses from KES_NODE_POD_CIDR (default 10.213.0.0/24) on the bridge
kes-stack0, whose host address (.1, KUBE_POD_GATEWAY in .stack/env) is the node IP and the pods'
default route; nothing is forwarded beyond it (no ip_forward, no NAT): a pod reaches this host's
addresses on the bridge and nothing else. The stack's servers listen on 127.0.0.1 only; the
node's relay (scripts/stack_node_relay.py, process `relay`) is how pods reach some of them:
  * the API server, in-cluster: the `kubernetes` Service's ClusterIP (10.0.0.1) is put on the
    bridge as a /32 (as kube-proxy's IPVS mode binds ClusterIPs to a dummy interface), the relay
    answers on :443 with TLS (a certificate from the stack's CA naming the Service) and relays to
    the kube-apiserver on 127.0.0.1, so KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount's
    ca.crt work unchanged. Other ClusterIPs lead nowhere (no kube-proxy).
  * ServiceAccount tokens: the kube-apiserver runs without the ServiceAccount admission plugin
    (modules without a controller-manager create Pods with no ServiceAccount); while the node
    runs, a MutatingWebhookConfiguration (failurePolicy Ignore, deleted on `down`) lets the relay
    add the plugin's projected kube-api-access volume to new Pods.
  * OpenSearch's HTTP port and Kafka's `PODS` listener (which advertises the bridge's address)
    on the bridge's address, same ports (KUBE_POD_OPENSEARCH_URL, KUBE_POD_KAFKA_BOOTSTRAP).

.stack/env: KUBECTL, HELM, KUBE_NODE_NAME, KUBE_POD_CIDR, KUBE_POD_GATEWAY, CONTAINERD_ADDRESS,
KES_PAUSE_IMAGE, KUBE_SERVICE_IP, KUBE_POD_OPENSEARCH_URL, KUBE_POD_KAFKA_BOOTSTRAP, and after
`scripts/stack image`: KES_IMAGE (localhost/kube-event-shipper:dev), KES_IMAGE_SIZE (bytes,
podman image inspect) and KES_BASE_IMAGE (the stand-in for python:3.11-slim). The project's
image is rebuilt only when the Dockerfile or its build context (pyproject.toml, README.md,
shipper/) changed.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import io
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kes_stack as stack  # scripts/stack itself, registered under this name before the import
from kes_stack import (
    CACHE,
    HOST,
    REPO,
    STACK,
    Component,
    Proc,
    StackError,
    env_port,
    find_binary,
    http_get,
    register,
    say,
    write_atomic,
)

NODE_NAME = "127.0.0.1"  # the API server dials the kubelet by this name (logs, exec)
BRIDGE = "kes-stack0"
CGROUP_ROOT = "kube-event-shipper-stack"
PAUSE_IMAGE = "localhost/pause:3.10"
BASE_IMAGE = "localhost/kes-python-base:3.11-bookworm"
APP_IMAGE = "localhost/kube-event-shipper:dev"
NO_EGRESS_PROXY = "http://127.0.0.1:9"  # containerd's "proxy": a closed loopback port
# The `kubernetes` Service's ClusterIP (first address of the kube-apiserver's
# --service-cluster-ip-range): put on the bridge, where the relay serves the API (see below).
SERVICE_IP = "10.0.0.1"
WEBHOOK_NAME = "kes-stack-node-serviceaccount"
RELAY = REPO / "scripts" / "stack_node_relay.py"
# What the kubelet sets these to (pkg/kubelet/cm setupKernelTunables); seen only in the node's
# mount namespace.
KERNEL_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


def run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if r.returncode != 0:
        raise StackError(
            f"{what}: {' '.join(argv)} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}"
        )
    return r


def tool(name: str, package: str) -> str:
    found = find_binary(name)
    if not found:
        raise StackError(f"node: {name} not found: apt-get install {package} (.ci/run does)")
    return found


def private_ns(
    layers: Path, binds: dict[str, Path] | None = None, env: dict[str, str] | None = None
) -> list[str]:
    """argv prefix: run the rest in a new private mount namespace where /var and /run are overlays
    whose writable layers are under `layers`, and `binds` (target -> file) are bound over."""
    lines = ["set -e"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    for d in ("run", "var"):
        opts = f"lowerdir=/{d},upperdir={layers / (d + '.upper')},workdir={layers / (d + '.work')}"
        lines.append(f"mount -n -t overlay kes-stack-{d} -o {shlex.quote(opts)} /{d}")
    for target, source in (binds or {}).items():
        lines.append(f"mount -n --bind {shlex.quote(str(source))} {shlex.quote(target)}")
    lines.append('exec "$@"')
    unshare = tool("unshare", "util-linux")
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        "\n".join(lines),
        "kes-node-ns",
    ]


def make_layers(layers: Path) -> None:
    shutil.rmtree(layers, ignore_errors=True)
    for d in ("var", "run"):
        (layers / f"{d}.upper").mkdir(parents=True)
        (layers / f"{d}.work").mkdir(parents=True)


def mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy mounted here (v1 controllers, and v2 in hybrid mode)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[fields.index("-") + 1] in ("cgroup", "cgroup2"):
            mounts.append(Path(fields[4]))
    return mounts


def cgroup_dirs() -> list[Path]:
    """The node's cgroup root in every hierarchy, where it exists."""
    return [m / CGROUP_ROOT for m in cgroup_mounts() if (m / CGROUP_ROOT).is_dir()]


def make_cgroup_root() -> None:
    """The kubelet's cgroupRoot must exist in every hierarchy; it makes kubepods below it."""
    for mount in cgroup_mounts():
        root = mount / CGROUP_ROOT
        root.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset starts empty: no tasks fit
            if (mount / name).exists() and not (root / name).read_text().strip():
                (root / name).write_text((mount / name).read_text())


def cgroup_tree(root: Path) -> list[Path]:
    """root and the cgroups below it, deepest first (os.walk shrugs off ones that vanish)."""
    return [Path(d) for d, _, _ in os.walk(root, topdown=False)]


def kill_cgroup_tree() -> int:
    """SIGKILL every process in the node's cgroups (the pods' containers); returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = set()
        for root in cgroup_dirs():
            for d in cgroup_tree(root):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.2)
    return len(killed)


def remove_cgroup_tree() -> None:
    deadline = time.monotonic() + 15
    while True:
        for root in cgroup_dirs():
            for d in cgroup_tree(root):
                with contextlib.suppress(OSError):
                    d.rmdir()
        left = cgroup_dirs()
        if not left:
            return
        if time.monotonic() > deadline:
            raise StackError(f"node: cannot remove cgroups {left} (processes still in them?)")
        time.sleep(0.2)


def kill_mount_ns(ns: str) -> int:
    """SIGKILL every process still in mount namespace `ns` (containerd's shims); how many."""
    if ns == mount_ns(os.getpid()):
        return 0  # never the host's own namespace
    killed: set[int] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = {int(d) for d in os.listdir("/proc") if d.isdigit() and mount_ns(int(d)) == ns}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.2)
    return len(killed)


@dataclass
class NsProc(Proc):
    """A Proc started behind an argv prefix (unshare, nsenter) that execs the real binary. The
    pid and argv files describe the real binary, so the usual pid checks work."""

    prefix: Callable[[], list[str]] = list

    def launch(self) -> None:
        real = self.argv
        self.argv = [*self.prefix(), *real]
        try:
            super().launch()
        finally:
            self.argv = real
        write_atomic(self.argvfile, json.dumps(real))
        # Wait until the prefix has exec'd the binary (pid checks compare /proc/PID/exe).
        want = os.path.realpath(real[0])
        assert self.popen is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.popen.poll() is None:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{self.popen.pid}/exe") == want:
                    return
            time.sleep(0.02)
        self.fail(f"{self.name} did not start (namespace setup failed?)")


@register
class Node(Component):
    """containerd + kube-scheduler + kube-controller-manager + kubelet: a real node."""

    name = "node"
    binaries = ("kubelet", "kube-scheduler", "kube-controller-manager", "kubectl", "pause")
    build_script = "scripts/build/kube-node.sh"
    build_time = "3-8 min after kube-apiserver's build"

    def settings(self) -> dict:
        cidr = os.environ.get("KES_NODE_POD_CIDR") or "10.213.0.0/24"
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError:
            raise StackError(f"KES_NODE_POD_CIDR={cidr!r} is not a network") from None
        if not net.is_private or net.version != 4 or net.prefixlen > 28:
            raise StackError(
                f"KES_NODE_POD_CIDR={cidr!r}: want a private IPv4 range, /28 or larger"
            )
        return {
            "pod_cidr": str(net),
            "kubelet_port": env_port("KES_KUBELET_PORT", 20250),
            "kubelet_healthz_port": env_port("KES_KUBELET_HEALTHZ_PORT", 20248),
            "scheduler_port": env_port("KES_SCHEDULER_PORT", 20259),
            "controller_manager_port": env_port("KES_CONTROLLER_MANAGER_PORT", 20257),
            "webhook_port": env_port("KES_NODE_WEBHOOK_PORT", 20443),
            # Host servers the pods reach on the bridge's address, same port (see the relay).
            "forward_ports": sorted(self.forwarded().values()),
        }

    def forwarded(self) -> dict[str, int]:
        """OpenSearch's HTTP port and Kafka's listener for pods (it advertises the bridge's
        address), relayed from the bridge's address to 127.0.0.1: component -> port."""
        ports = {}
        for name, key in (("opensearch", "http_port"), ("kafka", "pods_port")):
            component = stack.REGISTRY.get(name)
            port = component.settings().get(key) if component is not None else None
            if port:
                ports[name] = int(port)
        return ports

    # --- paths
    @property
    def kube(self) -> stack.Kubernetes:
        return stack.REGISTRY["kubernetes"]

    @property
    def sock(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def layers(self) -> Path:
        return self.dir / "ns"

    @property
    def images(self) -> Path:
        return self.cache / "images"

    def gateway(self, s: dict) -> str:
        return str(next(ipaddress.ip_network(s["pod_cidr"]).hosts()))

    # --- configuration files
    def containerd_toml(self, s: dict) -> str:
        d = self.dir / "containerd"

        def q(p: Path | str) -> str:
            return json.dumps(str(p))

        cri = '[plugins."io.containerd.grpc.v1.cri"'
        return "\n".join(
            [
                "# generated by scripts/stack (node)",
                "version = 2",
                f"root = {q(d / 'root')}",
                f"state = {q(d / 'state')}",
                "disabled_plugins = [",
                '  "io.containerd.internal.v1.opt",',  # would create /opt/containerd
                '  "io.containerd.snapshotter.v1.aufs",',
                '  "io.containerd.snapshotter.v1.btrfs",',
                '  "io.containerd.snapshotter.v1.devmapper",',
                '  "io.containerd.snapshotter.v1.zfs",',
                '  "io.containerd.tracing.processor.v1.otlp",',
                "]",
                "[grpc]",
                f"  address = {q(self.sock)}",
                "[ttrpc]",
                f"  address = {q(str(self.sock) + '.ttrpc')}",
                "[debug]",
                '  address = ""',
                '  level = "info"',
                "[metrics]",
                '  address = ""',
                f"{cri}]",
                f"  sandbox_image = {q(PAUSE_IMAGE)}",
                # Without it runc fails ("can't get final child's PID from pipe"): the sandbox
                # asks for an oom_score_adj below ours, which needs CAP_SYS_RESOURCE.
                "  restrict_oom_score_adj = true",
                "  netns_mounts_under_state_dir = true",
                f"  stream_server_address = {q(HOST)}",
                '  stream_server_port = "0"',
                "  enable_selinux = false",
                f"{cri}.containerd]",
                '  snapshotter = "overlayfs"',
                '  default_runtime_name = "runc"',
                f"{cri}.containerd.runtimes.runc]",
                '  runtime_type = "io.containerd.runc.v2"',
                f"{cri}.containerd.runtimes.runc.options]",
                f"  BinaryName = {q(find_binary('runc') or '/usr/sbin/runc')}",
                f"  Root = {q(d / 'runc')}",
                "  SystemdCgroup = false",
                f"{cri}.cni]",
                '  bin_dir = "/usr/lib/cni"',
                f"  conf_dir = {q(self.dir / 'cni' / 'net.d')}",
                "  max_conf_num = 1",
                "",
            ]
        )

    def cni_conflist(self, s: dict) -> str:
        gw = self.gateway(s)
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "kes-stack",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        # Not a gateway (the bridge's address is set by scripts/stack), so the
                        # plugin leaves ip_forward alone; no masquerading, no iptables rules.
                        "isGateway": False,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": s["pod_cidr"], "gateway": gw}]],
                            "routes": [{"dst": "0.0.0.0/0", "gw": gw}],
                            "dataDir": str(self.dir / "cni" / "ipam"),
                        },
                    }
                ],
            },
            indent=2,
        )

    def kubelet_yaml(self, s: dict) -> str:
        cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": HOST,
            "port": s["kubelet_port"],
            "readOnlyPort": 0,
            "healthzBindAddress": HOST,
            "healthzPort": s["kubelet_healthz_port"],
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "imageServiceEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failSwapOn": False,
            "failCgroupV1": False,  # 1.34 still runs on cgroup v1 (this machine's)
            "protectKernelDefaults": True,  # see KERNEL_TUNABLES: fail, never write the host's
            "makeIPTablesUtilChains": False,
            "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE
            "kernelMemcgNotification": False,
            "authentication": {
                "anonymous": {"enabled": True},
                "webhook": {"enabled": False},
                "x509": {},
            },
            "authorization": {"mode": "AlwaysAllow"},  # the API server has no client cert
            # No node-pressure eviction ("0%" turns a signal off): this node shares a machine
            # with the other servers and builds, whose disk and page cache would otherwise get
            # the tests' pods evicted and the node tainted (a full disk on a CI machine, a big
            # page cache counted as used memory). Pods' own limits (the OOM test) still hold.
            "evictionHard": {
                "memory.available": "0%",
                "nodefs.available": "0%",
                "imagefs.available": "0%",
                "nodefs.inodesFree": "0%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "clusterDNS": ["10.0.0.10"],  # none runs; without it every pod gets a warning
            "clusterDomain": "cluster.local",
            "podLogsDir": str(self.dir / "pod-logs"),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            "serializeImagePulls": False,
            "staticPodPath": "",
        }
        return json.dumps(cfg, indent=2) + "\n"  # JSON is YAML

    def config_files(self, s: dict) -> dict[str, tuple[Path, str]]:
        texts = {
            "containerd": (".toml", self.containerd_toml(s)),
            "kubelet": (".yaml", self.kubelet_yaml(s)),
        }
        return {
            key: (stack.config_path(self.dir, key, suffix, text), text)
            for key, (suffix, text) in texts.items()
        }

    # --- processes
    def processes(self, s: dict) -> list[Proc]:
        s = {**self.settings(), **s}  # settings saved by an older version lack newer keys
        files = self.config_files(s)
        kubeconfig = str(self.kube.kubeconfig)
        pki = self.kube.pki
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE

        def healthz(port: int) -> bool:
            status, body = http_get(f"https://{HOST}:{port}/healthz", context=unverified)
            return status == 200 and body.strip() == b"ok"

        containerd = NsProc(
            self,
            "containerd",
            [
                find_binary("containerd") or "/usr/bin/containerd",
                "--config",
                str(files["containerd"][0]),
            ],
            ready=lambda: self.containerd_ready(),
            address=f"unix://{self.sock}",
            timeout=120,  # includes importing the cached images into a fresh containerd
            prefix=self.containerd_prefix,
        )
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={HOST}",
            "--leader-elect=false",
            "--v=1",
        ]
        scheduler = Proc(
            self,
            "kube-scheduler",
            [
                str(self.bin / "kube-scheduler"),
                *common,
                f"--secure-port={s['scheduler_port']}",
                f"--cert-dir={self.dir / 'scheduler-pki'}",
            ],
            ready=lambda: healthz(s["scheduler_port"]),
            address=f"https://{HOST}:{s['scheduler_port']}",
            ports=[s["scheduler_port"]],
            timeout=60,
        )
        controller_manager = Proc(
            self,
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                *common,
                f"--secure-port={s['controller_manager_port']}",
                f"--cert-dir={self.dir / 'controller-manager-pki'}",
                f"--root-ca-file={pki / 'ca.crt'}",  # kube-root-ca.crt ConfigMaps, SA tokens
                f"--service-account-private-key-file={pki / 'sa.key'}",
                "--use-service-account-credentials=false",
                "--cluster-name=kes-stack",
            ],
            ready=lambda: healthz(s["controller_manager_port"]),
            address=f"https://{HOST}:{s['controller_manager_port']}",
            ports=[s["controller_manager_port"]],
            timeout=60,
        )
        relay = Proc(
            self,
            "relay",
            self.relay_argv(s),
            ready=lambda: self.relay_ready(s),
            address=f"https://{SERVICE_IP}:443",
            ports=[s["webhook_port"]],
            timeout=30,
        )
        kubelet = NsProc(
            self,
            "kubelet",
            [
                str(self.bin / "kubelet"),
                f"--config={files['kubelet'][0]}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.dir / 'kubelet'}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.gateway(s)}",  # loopback is refused; the bridge's address
                "--v=1",
            ],
            ready=lambda: self.node_ready(kubelet),
            address=f"https://{HOST}:{s['kubelet_port']}",
            ports=[s["kubelet_port"], s["kubelet_healthz_port"]],
            timeout=120,
            prefix=lambda: self.kubelet_prefix(containerd),
        )
        return [containerd, relay, scheduler, controller_manager, kubelet]

    # --- the relay: pods reach the API server (and OpenSearch, Kafka) on the bridge
    @property
    def relay_pki(self) -> Path:
        return self.dir / "relay-pki"

    def relay_argv(self, s: dict) -> list[str]:
        api_port = self.kube.settings()["apiserver_port"]
        gw = self.gateway(s)
        argv = [
            os.path.realpath(sys.executable),
            str(RELAY),
            f"--cert={self.relay_pki / 'relay.crt'}",
            f"--key={self.relay_pki / 'relay.key'}",
            f"--ca={self.kube.pki / 'ca.crt'}",
            f"--api={SERVICE_IP}:443={HOST}:{api_port}",
            f"--webhook={HOST}:{s['webhook_port']}",
            f"--apiserver={self.kube.urls(self.kube.settings())[2]}",
            f"--token-file={self.kube.tokens}",
        ]
        argv += [f"--forward={gw}:{port}={HOST}:{port}" for port in s["forward_ports"]]
        return argv

    def relay_ready(self, s: dict) -> bool:
        for address in ((SERVICE_IP, 443), (HOST, s["webhook_port"])):
            with socket.create_connection(address, timeout=2):
                pass
        return True

    def relay_cert(self, s: dict) -> None:
        """A serving certificate from the stack's CA for the relay: the `kubernetes` Service's
        names and ClusterIP, the bridge's address, and 127.0.0.1 (the webhook)."""
        sans = ",".join(
            [
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                f"IP:{SERVICE_IP}",
                f"IP:{self.gateway(s)}",
                f"IP:{HOST}",
            ]
        )
        pki, ca = self.relay_pki, self.kube.pki
        stamp = sans + "\n" + hashlib.sha256((ca / "ca.crt").read_bytes()).hexdigest()
        if (pki / "stamp").exists() and (pki / "stamp").read_text() == stamp:
            return
        pki.mkdir(parents=True, exist_ok=True)
        (pki / "ext").write_text(
            f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
        )
        run(["openssl", "req", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256",
             "-keyout", str(pki / "relay.key"), "-out", str(pki / "relay.csr"),
             "-subj", "/CN=kubernetes"], "node: relay key")  # fmt: skip
        run(["openssl", "x509", "-req", "-in", str(pki / "relay.csr"), "-CA", str(ca / "ca.crt"),
             "-CAkey", str(ca / "ca.key"), "-CAcreateserial", "-CAserial", str(pki / "ca.srl"),
             "-out", str(pki / "relay.crt"), "-days", "3650", "-sha256",
             "-extfile", str(pki / "ext")], "node: relay certificate")  # fmt: skip
        (pki / "relay.key").chmod(0o600)
        write_atomic(pki / "stamp", stamp)

    def register_webhook(self, s: dict) -> None:
        """The ServiceAccount admission plugin's pod mutation, served by the relay, for as long
        as the node runs (deleted on `down`)."""
        ca = base64.b64encode((self.kube.pki / "ca.crt").read_bytes()).decode()
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": WEBHOOK_NAME},
            "webhooks": [
                {
                    "name": "serviceaccount.node.kes-stack.local",
                    "clientConfig": {
                        "url": f"https://{HOST}:{s['webhook_port']}/mutate",
                        "caBundle": ca,
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                            "scope": "Namespaced",
                        }
                    ],
                    # Ignore: should the relay be gone, pods are created as without the node.
                    "failurePolicy": "Ignore",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                    "reinvocationPolicy": "IfNeeded",
                }
            ],
        }
        path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        status, got = self.api(f"{path}/{WEBHOOK_NAME}")
        if status == 200:
            body["metadata"]["resourceVersion"] = json.loads(got)["metadata"]["resourceVersion"]
            status, got = self.api(f"{path}/{WEBHOOK_NAME}", method="PUT", body=body)
        else:
            status, got = self.api(path, method="POST", body=body)
        if status not in (200, 201):
            raise StackError(f"node: registering the ServiceAccount webhook: HTTP {status} {got!r}")

    def forget_webhook(self) -> None:
        if self.kube.running():
            path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
            status, body = self.api(f"{path}/{WEBHOOK_NAME}", method="DELETE")
            if status not in (200, 404):
                raise StackError(f"node: deleting the webhook: HTTP {status} {body[:200]!r}")

    def containerd_prefix(self) -> list[str]:
        """A fresh private mount namespace (see the module docstring)."""
        make_layers(self.layers)
        sysctl = self.layers / "sysctl"
        sysctl.mkdir()
        binds = {}
        for key, value in KERNEL_TUNABLES.items():
            f = sysctl / key.replace("/", ".")
            f.write_text(value + "\n")
            binds[f"/proc/sys/{key}"] = f
        # Image pulls (a pod without imagePullPolicy: Never, another test's made-up image) fail
        # at once against a closed local port instead of reaching out to a registry.
        no_registry = {"HTTP_PROXY": NO_EGRESS_PROXY, "HTTPS_PROXY": NO_EGRESS_PROXY}
        return private_ns(self.layers, binds, {**no_registry, "NO_PROXY": "", "no_proxy": ""})

    def kubelet_prefix(self, containerd: Proc) -> list[str]:
        """Join containerd's mount namespace: the volumes the kubelet mounts must be the ones
        containerd hands to runc."""
        pid = containerd.pid()
        if pid is None:
            raise StackError("node: containerd is not running")
        return [tool("nsenter", "util-linux"), f"--mount=/proc/{pid}/ns/mnt", "--"]

    # --- readiness
    def api(
        self, path: str, method: str = "GET", timeout: float = 3.0, body: dict | None = None
    ) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cafile=str(self.kube.pki / "ca.crt"))
        url = self.kube.urls(self.kube.current_settings())[2]
        headers = {"Authorization": f"Bearer {self.kube.token()}"}
        if method == "GET":
            return http_get(f"{url}{path}", context=ctx, headers=headers, timeout=timeout)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"{url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def forget_node(self) -> None:
        """Delete the Node object: with the kubelet and the controller-manager gone, nothing
        would ever mark it NotReady. Its Pods stay bound to it and run again on the next `up`."""
        if self.kube.running():
            status, body = self.api(f"/api/v1/nodes/{NODE_NAME}", method="DELETE")
            if status not in (200, 404):
                raise StackError(f"node: deleting Node {NODE_NAME}: HTTP {status} {body[:200]!r}")

    def node_ready(self, kubelet: Proc) -> bool:
        """The Node is Ready, as reported by this kubelet (not a stale status from before)."""
        status, body = self.api(f"/api/v1/nodes/{NODE_NAME}")
        if status != 200:
            return False
        started = int(kubelet.pidfile.stat().st_mtime)
        for c in json.loads(body).get("status", {}).get("conditions", []):
            if c.get("type") == "Ready" and c.get("status") == "True":
                beat = c.get("lastHeartbeatTime") or ""
                return calendar.timegm(time.strptime(beat, "%Y-%m-%dT%H:%M:%SZ")) >= started
        return False

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        argv = [
            tool("ctr", "containerd"),
            "--address",
            str(self.sock),
            "--namespace",
            "k8s.io",
            *args,
        ]
        return run(argv, "node", timeout=timeout)

    def containerd_images(self) -> set[str]:
        return set(self.ctr("images", "ls", "-q", timeout=30).stdout.split())

    def containerd_ready(self) -> bool:
        if not self.sock.exists():
            return False
        pid = self.processes(self.current_settings())[0].pid()
        ns = mount_ns(pid) if pid else None
        if ns and ns != mount_ns(os.getpid()):
            write_atomic(self.dir / "mntns", ns + "\n")  # for `down`, should containerd die
        try:
            self.ctr("version", timeout=10)
        except StackError:
            return False
        self.import_images()
        return True

    # --- images in containerd
    def import_images(self, only: set[str] | None = None) -> None:
        """Import the cached image archives that containerd does not have yet (or whose
        image changed since the last import)."""
        have = self.containerd_images()
        for ref, archive in self.archives().items():
            if only is not None and ref not in only:
                continue
            marker = self.dir / "imported" / f"{archive.name}.sha256"
            digest = archive.with_suffix(".id").read_text().strip()
            current = marker.read_text().strip() if marker.exists() else ""
            if ref in have and current == digest:
                continue
            t0 = time.monotonic()
            size = archive.stat().st_size / 1e6
            say(f"node: importing {ref} into containerd ({size:.0f} MB)")
            self.ctr("images", "import", str(archive))
            if ref not in self.containerd_images():
                raise StackError(f"node: {archive} imported, but containerd has no {ref}")
            write_atomic(marker, digest + "\n")
            say(f"node: imported {ref} in {time.monotonic() - t0:.1f}s")

    def archives(self) -> dict[str, Path]:
        """image ref -> docker-archive tar in the cache (each with a .id file next to it)."""
        refs = {PAUSE_IMAGE: "pause.tar", BASE_IMAGE: "python-base.tar", APP_IMAGE: "app.tar"}
        return {
            ref: self.images / name
            for ref, name in refs.items()
            if (self.images / name).exists() and (self.images / name).with_suffix(".id").exists()
        }

    def imported(self, ref: str) -> bool:
        archive = self.archives().get(ref)
        if archive is None:
            return False
        marker = self.dir / "imported" / f"{archive.name}.sha256"
        return (
            marker.exists()
            and marker.read_text().strip() == archive.with_suffix(".id").read_text().strip()
        )

    # --- build
    def k8s_version(self) -> str:
        apiserver = self.kube.bin / "kube-apiserver"
        out = run([str(apiserver), "--version"], "node").stdout.split()
        if len(out) != 2 or not out[1].startswith("v1."):
            raise StackError(f"node: cannot tell the version of {apiserver}: {out}")
        return out[1]

    def build(self) -> None:
        missing = [b for b in self.binaries if not os.access(self.bin / b, os.X_OK)]
        if missing:
            version = self.k8s_version()
            with stack.file_lock(CACHE / f".build-{self.name}.lock", f"the {self.name} build"):
                say(f"node: building {', '.join(missing)} {version} into {self.bin} "
                    f"(cold: {self.build_time}; output follows)")  # fmt: skip
                t0 = time.monotonic()
                rc = subprocess.call(
                    [str(REPO / self.build_script), str(self.cache)],
                    stdin=subprocess.DEVNULL,
                    stdout=sys.stderr,
                    stderr=sys.stderr,
                    env={**os.environ, "K8S_VERSION": version},
                )
                if rc != 0:
                    raise StackError(f"node: {self.build_script} failed (exit {rc})")
                say(f"node: built {', '.join(missing)} in {time.monotonic() - t0:.0f}s")
        self.helm()
        self.pause_archive()

    def helm(self) -> str:
        """scripts/build/helm.sh (the chart tests' helm): builds once, prints its path."""
        t0 = time.monotonic()
        r = subprocess.run(
            [str(REPO / "scripts" / "build" / "helm.sh")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        if r.returncode != 0 or not r.stdout.strip():
            raise StackError(f"node: scripts/build/helm.sh failed (exit {r.returncode})")
        if time.monotonic() - t0 > 5:
            say(f"node: helm ready in {time.monotonic() - t0:.0f}s")
        return r.stdout.strip().splitlines()[-1]

    def pause_archive(self) -> None:
        """localhost/pause as a docker-archive tar: one layer holding the pause binary."""
        archive = self.images / "pause.tar"
        binary = (self.bin / "pause").read_bytes()
        digest = hashlib.sha256(binary).hexdigest()
        id_file = archive.with_suffix(".id")
        if archive.exists() and id_file.exists() and id_file.read_text().strip() == digest:
            return
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
            info = tarfile.TarInfo("pause")
            info.size, info.mode, info.mtime = len(binary), 0o755, 0
            t.addfile(info, io.BytesIO(binary))
        layer_bytes = layer.getvalue()
        diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": "scripts/stack: the pause binary of kube-node.sh"}],
            },
            sort_keys=True,
        ).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        manifest = json.dumps(
            [{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": ["layer/layer.tar"]}]
        ).encode()
        self.images.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_suffix(".tar.tmp")
        with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name, data in (
                ("layer/layer.tar", layer_bytes),
                (config_name, config),
                ("manifest.json", manifest),
            ):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                t.addfile(info, io.BytesIO(data))
        os.replace(tmp, archive)
        write_atomic(archive.with_suffix(".id"), digest + "\n")

    # --- state
    def prepare(self, s: dict) -> None:
        for path, text in self.config_files(s).values():
            stack.write_config(path, text)
        write_atomic(self.dir / "cni" / "net.d" / "10-kes-stack.conflist", self.cni_conflist(s))
        for sub in ("cni/ipam", "pod-logs", "volume-plugins", "kubelet", "containerd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.ensure_bridge(s)
        self.relay_cert(s)
        make_cgroup_root()

    def ensure_bridge(self, s: dict) -> None:
        ip = tool("ip", "iproute2")
        net = ipaddress.ip_network(s["pod_cidr"])
        address = f"{self.gateway(s)}/{net.prefixlen}"
        shown = subprocess.run(
            [ip, "-o", "addr", "show", "dev", BRIDGE], capture_output=True, text=True
        )
        if shown.returncode != 0:
            run([ip, "link", "add", BRIDGE, "type", "bridge"], "node: creating the pod bridge")
        service = f"{SERVICE_IP}/32"
        if f" {address} " not in shown.stdout or f" {service} " not in shown.stdout:
            run([ip, "addr", "flush", "dev", BRIDGE], "node")
            run([ip, "addr", "add", address, "dev", BRIDGE], "node: addressing the pod bridge")
            # The `kubernetes` ClusterIP, local on the bridge (as kube-proxy's IPVS mode puts
            # ClusterIPs on a dummy interface): pods route it to this host, the relay answers.
            run([ip, "addr", "add", service, "dev", BRIDGE], "node: the kubernetes ClusterIP")
        run([ip, "link", "set", BRIDGE, "up"], "node")

    def env(self, s: dict) -> dict[str, str]:
        out = {
            "KUBECTL": str(self.bin / "kubectl"),
            "HELM": self.helm_path(),
            "KUBE_NODE_NAME": NODE_NAME,
            "KUBE_POD_CIDR": s["pod_cidr"],
            "KUBE_POD_GATEWAY": self.gateway(s),
            "CONTAINERD_ADDRESS": str(self.sock),
            "KES_PAUSE_IMAGE": PAUSE_IMAGE,
            # What pods reach through the relay (see scripts/stack_node_relay.py).
            "KUBE_SERVICE_IP": SERVICE_IP,
        }
        gw, ports = self.gateway(s), self.forwarded()
        if "opensearch" in ports:
            out["KUBE_POD_OPENSEARCH_URL"] = f"http://{gw}:{ports['opensearch']}"
        if "kafka" in ports:
            out["KUBE_POD_KAFKA_BOOTSTRAP"] = f"{gw}:{ports['kafka']}"
        if self.imported(BASE_IMAGE):
            out["KES_BASE_IMAGE"] = BASE_IMAGE
        if self.imported(APP_IMAGE):
            out["KES_IMAGE"] = APP_IMAGE
            size = self.images / "app.size"
            if size.exists():  # bytes, as podman image inspect reports them
                out["KES_IMAGE_SIZE"] = size.read_text().strip()
        return {k: v for k, v in out.items() if v}

    def helm_path(self) -> str:
        version = os.environ.get("HELM_VERSION") or "v3.19.5"
        for line in (REPO / "scripts" / "build" / "helm.sh").read_text().splitlines():
            if line.startswith("HELM_VERSION=${HELM_VERSION:-"):
                version = os.environ.get("HELM_VERSION") or line.split(":-", 1)[1].rstrip("}")
        path = CACHE / "helm" / version / "bin" / "helm"
        return str(path) if os.access(path, os.X_OK) else ""

    # --- start / stop
    def start(self) -> None:
        if os.geteuid() != 0:
            raise StackError("node: needs root (containerd, mounts, cgroups, a bridge)")
        for name, package in (
            ("containerd", "containerd"),
            ("containerd-shim-runc-v2", "containerd"),
            ("ctr", "containerd"),
            ("runc", "runc"),
            ("unshare", "util-linux"),
            ("nsenter", "util-linux"),
            ("ip", "iproute2"),
        ):
            tool(name, package)
        if not os.access("/usr/lib/cni/bridge", os.X_OK):
            raise StackError("node: no CNI plugins: apt-get install containernetworking-plugins")
        self.kube.start()  # the node joins the stack's kube-apiserver
        s = self.settings()
        procs = self.processes(s)
        containerd = procs[0]
        if containerd.pid() is None or containerd.saved_argv() != containerd.argv:
            # A (re)started containerd is a new mount namespace: start the node from scratch.
            self.teardown(quiet=True)
        else:
            # The kubelet must share containerd's mount namespace; restart it if it does not.
            kubelet = procs[-1]
            kpid, cpid = kubelet.pid(), containerd.pid()
            if kpid and cpid and mount_ns(kpid) != mount_ns(cpid):
                kubelet.stop()
        self.layers.mkdir(parents=True, exist_ok=True)
        super().start()
        self.register_webhook(s)

    def stop(self) -> None:
        self.teardown(quiet=False)

    def teardown(self, quiet: bool) -> None:
        """Stop the processes, kill what is left (pods, shims), remove the cgroups, the bridge
        and the namespace's files. Every step runs even if one before it failed."""
        procs = self.processes(self.current_settings())
        containerd = procs[0]
        saved = self.dir / "mntns"
        pid = containerd.pid()
        ns = mount_ns(pid) if pid else (saved.read_text().strip() if saved.exists() else "")
        errors: list[str] = []

        def step(fn: Callable[[], object]) -> object:
            try:
                return fn()
            except Exception as e:  # report it, go on cleaning up
                errors.append(str(e))
                return None

        step(self.forget_webhook)
        stopped = [p.name for p in reversed(procs[1:]) if step(p.stop)]
        step(self.forget_node)
        killed = step(kill_cgroup_tree) or 0
        if step(containerd.stop):
            stopped.append("containerd")
        leftovers = (step(lambda: kill_mount_ns(ns)) or 0) if ns else 0
        step(remove_cgroup_tree)
        step(self.delete_bridge)
        if ns and any(mount_ns(int(d)) == ns for d in os.listdir("/proc") if d.isdigit()):
            errors.append(f"processes are left in the node's mount namespace {ns}")
        else:
            # Pod network namespaces, IP reservations, whatever the node wrote to /var and /run:
            # gone with the namespace, or here. A fresh start needs none of it.
            shutil.rmtree(self.layers, ignore_errors=True)
            shutil.rmtree(self.dir / "cni" / "ipam", ignore_errors=True)
            saved.unlink(missing_ok=True)
        if not quiet or stopped:
            extra = f"; killed {killed} pod processes" if killed else ""
            extra += f" and {leftovers} left in its mount namespace (shims)" if leftovers else ""
            say(f"node: stopped {', '.join(stopped)}{extra}" if stopped else "node: not running")
        if errors:
            raise StackError("node: not cleaned up completely: " + "; ".join(errors))

    def delete_bridge(self) -> None:
        ip = find_binary("ip")
        if ip and subprocess.run([ip, "link", "show", BRIDGE], capture_output=True).returncode == 0:
            run([ip, "link", "delete", BRIDGE], "node: deleting the pod bridge")


# ---------------------------------------------------------------------------------------------
# `scripts/stack image`


def debian_mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), for debootstrap."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in sources:
        if not f.is_file() or f.suffix not in ("", ".list", ".sources"):
            continue
        for line in f.read_text(errors="replace").splitlines():
            words = line.split()
            urls = (
                words[1:] if words[:1] == ["URIs:"] else words[1:2] if words[:1] == ["deb"] else []
            )
            for url in urls:
                if url.startswith("http") and url.rstrip("/").endswith("/debian"):
                    return url
    return "http://deb.debian.org/debian"


class ImageBuilder:
    """The stand-in base image (debootstrap) and the project's image (podman build)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.images = node.images
        self.storage = node.cache / "podman"
        self.layers = node.dir / "podman-ns"

    def podman(self, *args: str) -> list[str]:
        return [
            *private_ns(self.layers),
            tool("podman", "podman"),
            "--root", str(self.storage / "root"),
            # Transient state: in the namespace's /run overlay (podman wants a short runroot).
            "--runroot", "/run/kes-stack-podman",
            "--tmpdir", "/run/kes-stack-podman/libpod",
            "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "none",
            "--network-config-dir", str(self.storage / "networks"),  # not /etc/containers
            "--runtime", tool("runc", "runc"),  # crun fails on this cgroup v1 hybrid host
            *args,
        ]  # fmt: skip

    def run_podman(self, what: str, *args: str, stream: bool = False) -> str:
        make_layers(self.layers)
        for d in ("root", "tmp"):
            (self.storage / d).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.storage / "tmp")}
        try:
            if stream:
                stack.run_build_step("node", what, self.podman(*args), REPO)
                return ""
            r = subprocess.run(
                self.podman(*args),
                capture_output=True,
                text=True,
                env=env,
                stdin=subprocess.DEVNULL,
            )
            if r.returncode != 0:
                raise StackError(
                    f"node: {what} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}"
                )
            return r.stdout
        finally:
            shutil.rmtree(self.layers, ignore_errors=True)

    def image_id(self, ref: str) -> str:
        out = self.run_podman(
            f"inspect {ref}",
            "images",
            "--noheading",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        )
        for line in out.splitlines():
            name, _, ident = line.partition(" ")
            if name == ref:
                return ident.strip()
        return ""

    def base(self) -> None:
        rootfs_tar = self.images / "python-base-rootfs.tar"
        if not rootfs_tar.exists():
            self.debootstrap(rootfs_tar)
        if not self.image_id(BASE_IMAGE):
            self.run_podman(
                f"podman import {BASE_IMAGE}",
                "import",
                "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change", "ENV LANG=C.UTF-8",
                "--change", 'CMD ["python3"]',
                str(rootfs_tar),
                BASE_IMAGE,
            )  # fmt: skip
        self.save(BASE_IMAGE, "python-base.tar")

    def debootstrap(self, rootfs_tar: Path) -> None:
        """Debian bookworm minbase + Python 3.11, laid out like python:3.11-slim: python3,
        python and pip in /usr/local/bin, pip usable outside a venv, C.UTF-8."""
        debootstrap = tool("debootstrap", "debootstrap")
        rootfs = self.images / "rootfs.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.mkdir(parents=True)
        mirror = debian_mirror()
        t0 = time.monotonic()
        # A private mount namespace: debootstrap's /proc and /sys mounts in the target vanish
        # with it, even if it fails half-way.
        stack.run_build_step(
            "node",
            f"debootstrap bookworm (minbase + python3) from {mirror} (about 2 min cold)",
            [
                tool("unshare", "util-linux"), "--mount", "--propagation", "private", "--",
                debootstrap, "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm", str(rootfs), mirror,
            ],
            REPO,
        )  # fmt: skip
        local = rootfs / "usr" / "local" / "bin"
        local.mkdir(parents=True, exist_ok=True)
        for name, target in (
            ("python3", "/usr/bin/python3"),
            ("python", "python3"),
            ("pip3", "/usr/bin/pip3"),
            ("pip", "pip3"),
        ):
            (local / name).unlink(missing_ok=True)
            (local / name).symlink_to(target)
        for f in (rootfs / "usr" / "lib").glob("python3.*/EXTERNALLY-MANAGED"):
            f.unlink()  # python:3.11-slim lets pip install outside a venv
        # HTTPS from this machine goes through its egress proxy: builds (pip) need the host's CA
        # bundle. It replaces Debian's (which the host bundle includes).
        host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if host_bundle.exists():
            shutil.copyfile(host_bundle, rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (rootfs / d).glob("*"):
                if f.is_file() and f.name != "lock":
                    f.unlink()
        tmp = rootfs_tar.with_suffix(".tar.tmp")
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tmp), "."], "node: tar")
        os.replace(tmp, rootfs_tar)
        shutil.rmtree(rootfs, ignore_errors=True)
        size = rootfs_tar.stat().st_size / 1e6
        say(f"node: stand-in base rootfs {size:.0f} MB in {time.monotonic() - t0:.0f}s")

    def app(self) -> None:
        """podman build of the Dockerfile. Each named build stage is built (and tagged) first:
        a tagged stage keeps its layers, so the prune below can drop older builds' layers
        without losing this build's cache."""
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        dockerfile = REPO / "Dockerfile"
        inputs = self.app_inputs()
        stamp = self.images / "app.inputs"
        if (
            stamp.exists()
            and stamp.read_text().strip() == inputs
            and (self.images / "app.tar").exists()
            and self.image_id(APP_IMAGE)
        ):
            say(f"node: {APP_IMAGE} is up to date (Dockerfile and build context unchanged)")
            return
        stages = re.findall(r"(?im)^\s*FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text())
        common = [
            "--pull=never",
            "--network=host",  # the RUN steps reach Debian's mirror and PyPI as this host does
            "--ulimit", "nofile=20000:20000",
            "--ulimit", "nproc=32768:32768",
            "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
            "--file", str(dockerfile),
        ]  # fmt: skip
        for stage in stages:
            tag = f"{APP_IMAGE.rsplit(':', 1)[0]}-stage-{stage.lower()}:dev"
            self.run_podman(
                f"podman build stage {stage} of Dockerfile (base {BASE_IMAGE})",
                "build", *common, "--target", stage, "--tag", tag, str(REPO),
                stream=True,
            )  # fmt: skip
        self.run_podman(
            f"podman build {APP_IMAGE} from Dockerfile (base {BASE_IMAGE})",
            "build", *common, "--tag", APP_IMAGE, str(REPO),
            stream=True,
        )  # fmt: skip
        self.save(APP_IMAGE, "app.tar")
        write_atomic(stamp, inputs + "\n")
        size = int(self.run_podman("inspect", "image", "inspect", "--format", "{{.Size}}",
                                   APP_IMAGE).strip())  # fmt: skip
        write_atomic(self.images / "app.size", f"{size}\n")
        say(f"node: {APP_IMAGE} is {size / 1e6:.0f} MB (podman image inspect)")
        # Layers of earlier builds that nothing tagged uses any more.
        self.run_podman(
            "podman image prune", "image", "prune", "--force", "--filter", f"until={started}"
        )

    def app_inputs(self) -> str:
        """A digest of what the build reads: the Dockerfile, the build context that
        .dockerignore lets through (pyproject.toml, README.md, shipper/) and the base image."""
        h = hashlib.sha256()
        files = [REPO / "Dockerfile", REPO / ".dockerignore", REPO / "pyproject.toml",
                 REPO / "README.md"]  # fmt: skip
        files += sorted(
            f for f in (REPO / "shipper").rglob("*")
            if f.is_file() and "__pycache__" not in f.parts
        )  # fmt: skip
        for f in files:
            h.update(str(f.relative_to(REPO)).encode() + b"\0")
            h.update(f.read_bytes() if f.exists() else b"")
            h.update(oct(f.stat().st_mode & 0o777).encode() if f.exists() else b"")
        h.update(self.image_id(BASE_IMAGE).encode())
        return h.hexdigest()

    def save(self, ref: str, name: str) -> None:
        """docker-archive of `ref` for containerd, rewritten only when the image changed."""
        ident = self.image_id(ref)
        if not ident:
            raise StackError(f"node: podman has no {ref}")
        archive = self.images / name
        id_file = archive.with_suffix(".id")
        if archive.exists() and id_file.exists() and id_file.read_text().strip() == ident:
            return
        tmp = archive.with_suffix(".tar.tmp")
        tmp.unlink(missing_ok=True)
        self.run_podman(
            f"podman save {ref}", "save", "--format", "docker-archive", "--output", str(tmp), ref
        )
        os.replace(tmp, archive)
        write_atomic(id_file, ident + "\n")


def cmd_image() -> int:
    """Build the stand-in base and the project's image, start the node, import both."""
    node: Node = stack.REGISTRY["node"]  # type: ignore[assignment]
    with stack.file_lock(STACK / ".lock", "another scripts/stack up/down in this work tree"):
        try:
            t0 = time.monotonic()
            builder = ImageBuilder(node)
            with stack.file_lock(CACHE / ".build-node-images.lock", "the image build"):
                builder.base()
                builder.app()
            say(f"node: images built in {time.monotonic() - t0:.0f}s")
            node.start()  # imports what changed (Node.containerd_ready) if containerd starts
            node.import_images({BASE_IMAGE, APP_IMAGE})
        finally:
            stack.write_env()
    say(f"node: {APP_IMAGE} is in the node's containerd; KES_IMAGE in .stack/env")
    return 0
