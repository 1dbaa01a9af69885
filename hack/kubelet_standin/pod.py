"""Run one pod's containers as local processes in the pod's network namespace and report its status."""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from hack.kubelet_standin.network import HOST_IP, NetworkError, PodNetwork, create_pod_network

log = logging.getLogger(__name__)

Json = dict[str, Any]
OOM_ANNOTATION = "kubeinfer.dev/simulate-oom"
MODEL_CACHE = "model-cache"
MAX_BACKOFF_SECONDS = 30.0
MAX_GRACE_SECONDS = 30
TICK_SECONDS = 0.5


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runnable_image(image: str) -> bool:
    """Only the project's own images have a local equivalent (the venv's commands and the built llama.cpp)."""
    name = image.rsplit("/", 1)[-1]
    return "kubeinfer" in name or "llama" in name


def default_command(image: str) -> list[str]:
    """What the image's entrypoint would be when the container gives no command."""
    return ["llama-server"] if "llama" in image.rsplit("/", 1)[-1] else ["kubeinfer"]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) references to the container's variables; $$ escapes a dollar."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]) if m[1] else "$", value)


def rewrite_path(value: str, mounts: dict[str, Path]) -> str:
    """Map a value that starts with a volume's mountPath onto that volume's local directory (longest mount first)."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        prefix = mount_path.rstrip("/")
        if value == prefix or value.startswith(prefix + "/"):
            return str(mounts[mount_path]) + value[len(prefix) :]
    return value


def tail(path: Path, lines: int = 50) -> str:
    """The last `lines` lines of a log file (at most its last 64 KiB are read)."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        return "\n".join(handle.read().decode(errors="replace").splitlines()[-lines:])


def kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group and give it `grace` seconds, then SIGKILL what is left and reap the leader.

    The group goes too when the leader already exited: a container's processes end with it.
    """
    if grace > 0 and proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


class PodSetupError(Exception):
    """The pod cannot run here; `reason` becomes the pod's status.reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class HostConfig:
    """What every pod of this stand-in shares: the node, paths on this machine and the API server seen from pods."""

    node: str
    state_dir: Path
    path: str
    models_root: Path
    api_server: str
    tls_server_name: str
    ca_data: str


@dataclass
class Probe:
    spec: Json
    next_at: float = 0.0
    failures: int = 0

    def reset(self, now: float) -> None:
        self.next_at = now + self.spec.get("initialDelaySeconds", 0)
        self.failures = 0


@dataclass
class Container:
    spec: Json
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    readiness: Probe | None
    liveness: Probe | None
    startup: Probe | None = None
    #: The startup probe succeeded (or there is none): only then do liveness and readiness probes run.
    started: bool = True
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    started_mono: float = 0.0
    restart_count: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    last: Json | None = None  # the last terminated state
    done: bool = False  # exited and will not be restarted
    ready: bool = False

    def status(self) -> Json:
        last_state: Json = {}
        if self.proc is not None:
            state: Json = {"running": {"startedAt": self.started_at}}
            last_state = {"terminated": self.last} if self.last else {}
        elif self.done and self.last:
            state = {"terminated": self.last}
        elif self.last:
            state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting the exited container"}}
            last_state = {"terminated": self.last}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        return {
            "name": self.spec["name"],
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"standin://{self.proc.pid}" if self.proc else "",
            "ready": self.ready,
            "started": self.proc is not None,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": last_state,
        }


@dataclass
class PodWorker:
    """One thread per pod: set up network, volumes and credentials, then supervise containers until deletion."""

    api: CoreV1Api
    host: HostConfig
    pod: Json
    on_done: Callable[[], None]
    containers: list[Container] = field(default_factory=list)
    net: PodNetwork | None = None
    failure: tuple[str, str] | None = None
    start_time: str = field(default_factory=now_iso)
    _delete_grace: float | None = None
    _gone: bool = False
    _shutdown: bool = False
    _wake: threading.Event = field(default_factory=threading.Event)
    _transitions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    _reported: Json | None = None
    _passive: bool = False  # the pod finished before this stand-in saw it: only its deletion is left to do
    _token_value: str | None = None
    _thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def dir(self) -> Path:
        meta = self.pod["metadata"]
        return self.host.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.namespace}/{self.name}", daemon=True)
        self._thread.start()

    def request_delete(self, grace: float) -> None:
        """The pod has a deletionTimestamp: stop its containers within `grace` seconds, then delete it."""
        if self._delete_grace is None:
            self._delete_grace = min(grace, MAX_GRACE_SECONDS)
            self._wake.set()

    def forget(self) -> None:
        """The pod is gone from the API already: stop everything quickly, delete nothing."""
        self._gone = True
        self.request_delete(2)

    def shutdown(self, wait: bool = True) -> None:
        """The stand-in stops: kill this pod's processes and remove its namespace, leave the pod object alone."""
        self._shutdown = True
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join(MAX_GRACE_SECONDS + 10)

    def logs(self, container: str = "", lines: int = 50) -> str:
        name = container or self.pod["spec"]["containers"][0]["name"]
        return tail(self.dir / "logs" / f"{name}.log", lines)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._passive = self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            if not self._passive and not self.pod["metadata"].get("deletionTimestamp"):
                self._setup()
        except PodSetupError as err:
            self.failure = (err.reason, str(err))
        except (ApiException, NetworkError, OSError) as err:
            log.exception("setting up pod %s/%s failed", self.namespace, self.name)
            self.failure = ("StandInSetupError", str(err))
        while not self._shutdown and self._delete_grace is None:
            if not self._passive:
                self._tick()
                self._report()
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
        self._stop_containers(self._delete_grace if self._delete_grace is not None else 2)
        if not self._shutdown and not self._gone:
            if not self._passive:
                self._report()
            try:
                # grace goes in the body: the API server ignores query parameters when a body is sent
                options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self._uid}}
                self.api.delete_namespaced_pod(self.name, self.namespace, body=options)
            except ApiException as err:
                if err.status not in (404, 409):
                    log.warning("deleting pod %s/%s: %s", self.namespace, self.name, err.reason)
        self._cleanup()
        self.on_done()

    @property
    def _uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    def _stop_containers(self, grace: float) -> None:
        for c in self.containers:
            if c.proc is not None:
                kill_group(c.proc, grace)
                self._on_exit(c, restart=False)
            c.done = True

    def _cleanup(self) -> None:
        if self.net is not None:
            self.net.delete()
        for part in ("volumes", "home", "kubeconfig"):
            target = self.dir / part
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)

    # --- setup ------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        spec = self.pod["spec"]
        for c in spec["containers"]:
            if not runnable_image(c.get("image", "")):
                raise PodSetupError(
                    "ImageNotRunnable",
                    f"container {c['name']!r}: image {c.get('image')!r} has no local equivalent; the kubelet "
                    "stand-in runs only images whose name contains 'kubeinfer' or 'llama'",
                )
        if spec.get("automountServiceAccountToken") is not False:
            self._token_value = self._token()
        volumes = {v["name"]: self._volume(v) for v in spec.get("volumes", [])}
        self.net = create_pod_network()
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "home").mkdir(parents=True, exist_ok=True)
        base_env = {"PATH": self.host.path, "HOME": str(self.dir / "home"), "HOSTNAME": self.name}
        kubeconfig = self._kubeconfig()
        if kubeconfig is not None:
            base_env["KUBECONFIG"] = str(kubeconfig)
        for c in spec["containers"]:
            mounts = {m["mountPath"]: volumes[m["name"]] / m.get("subPath", "") for m in c.get("volumeMounts", [])}
            env = dict(base_env)
            for var in c.get("env", []):
                env[var["name"]] = rewrite_path(expand(self._env_value(var), env), mounts)
            command = c.get("command") or default_command(c["image"])
            argv = [rewrite_path(expand(a, env), mounts) for a in [*command, *c.get("args", [])]]
            kinds = ("readinessProbe", "livenessProbe", "startupProbe")
            probes = {kind: Probe(c[kind]) if c.get(kind) else None for kind in kinds}
            if any(p and not ({"httpGet", "tcpSocket"} & p.spec.keys()) for p in probes.values()):
                raise PodSetupError("ProbeNotSupported", f"container {c['name']!r}: only httpGet and tcpSocket probes")
            self.containers.append(
                Container(
                    c,
                    argv,
                    env,
                    self.dir / "logs" / f"{c['name']}.log",
                    probes["readinessProbe"],
                    probes["livenessProbe"],
                    probes["startupProbe"],
                )
            )

    def _env_value(self, var: Json) -> str:
        source = var.get("valueFrom")
        if source is None:
            return str(var.get("value", ""))
        if "fieldRef" in source:
            meta, path = self.pod["metadata"], source["fieldRef"]["fieldPath"]
            fields = {
                "metadata.name": meta["name"],
                "metadata.namespace": meta["namespace"],
                "metadata.uid": meta["uid"],
                "spec.nodeName": self.host.node,
                "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
                "status.podIP": self.net.ip if self.net else "",
                "status.hostIP": HOST_IP,
            }
            if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
                return str(meta.get(match[1], {}).get(match[2], ""))
            if path not in fields:
                raise PodSetupError("FieldRefNotSupported", f"env {var['name']}: fieldPath {path} is not supported")
            return str(fields[path])
        if ref := source.get("configMapKeyRef"):
            return self._config_map(ref["name"], bool(ref.get("optional"))).get(ref["key"], "")
        if ref := source.get("secretKeyRef"):
            return self._secret_key(ref["name"], ref["key"], bool(ref.get("optional")))
        raise PodSetupError(
            "EnvSourceNotSupported",
            f"env {var['name']}: only value, fieldRef, configMapKeyRef, secretKeyRef run here",
        )

    def _config_map(self, name: str, optional: bool) -> dict[str, str]:
        try:
            return dict(self.api.read_namespaced_config_map(name, self.namespace).data or {})
        except ApiException as err:
            if err.status == 404 and optional:
                return {}
            raise PodSetupError("ConfigMapNotFound", f"configmap {self.namespace}/{name}: {err.reason}") from err

    def _secret_keys(self, name: str, optional: bool) -> list[str]:
        """The keys of a Secret mounted as a volume; as a kubelet, a missing Secret fails the pod unless `optional`."""
        try:
            return list(self.api.read_namespaced_secret(name, self.namespace).data or {})
        except ApiException as err:
            if err.status == 404 and optional:
                return []
            raise PodSetupError("SecretNotFound", f"secret {self.namespace}/{name}: {err.reason}") from err

    def _secret_key(self, name: str, key: str, optional: bool) -> str:
        """One key of a Secret; as a kubelet, a missing Secret or key fails the pod unless `optional`."""
        try:
            data = self.api.read_namespaced_secret(name, self.namespace).data or {}
        except ApiException as err:
            if err.status == 404 and optional:
                return ""
            raise PodSetupError("SecretNotFound", f"secret {self.namespace}/{name}: {err.reason}") from err
        if key not in data:
            if optional:
                return ""
            raise PodSetupError("SecretKeyNotFound", f"secret {self.namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()

    def _volume(self, vol: Json) -> Path:
        """The local directory that stands in for a volume; file-backed volumes are written out once."""
        name = vol["name"]
        if name == MODEL_CACHE or vol.get("persistentVolumeClaim", {}).get("claimName") == MODEL_CACHE:
            return self.host.models_root
        if "hostPath" in vol:
            return Path(vol["hostPath"]["path"])
        if claim := vol.get("persistentVolumeClaim", {}).get("claimName"):
            return self._host_path_claim(name, claim)
        local: Path = self.dir / "volumes" / name
        local.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        if source := vol.get("configMap"):
            data = self._config_map(source["name"], bool(source.get("optional")))
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            files = {item["path"]: data.get(item["key"], "") for item in items}
        elif source := vol.get("secret"):  # e.g. the gateway's API-key file (charts/kubeinfer)
            optional = bool(source.get("optional"))
            keys = [item["key"] for item in source.get("items") or []]
            keys = keys or self._secret_keys(source["secretName"], optional)
            paths = {item["key"]: item["path"] for item in source.get("items") or []}
            files = {paths.get(k, k): self._secret_key(source["secretName"], k, optional) for k in keys}
        elif "projected" in vol:  # the ServiceAccount admission plugin's kube-api-access-* volume
            files = {"namespace": self.namespace, "ca.crt": base64.b64decode(self.host.ca_data).decode()}
            if self._token_value:
                files["token"] = self._token_value
        elif "emptyDir" not in vol:
            raise PodSetupError(
                "VolumeNotSupported",
                f"volume {name!r}: only model-cache, emptyDir, configMap, secret, hostPath and projected "
                "ServiceAccount volumes have a local equivalent",
            )
        for path, content in files.items():
            (local / path).parent.mkdir(parents=True, exist_ok=True)
            (local / path).write_text(content)
        return local

    def _host_path_claim(self, volume: str, claim: str) -> Path:
        """A PVC bound to a hostPath PersistentVolume is that path, shared by every pod that mounts it."""
        try:
            pvc = self.api.read_namespaced_persistent_volume_claim(claim, self.namespace)
            pv = self.api.read_persistent_volume(pvc.spec.volume_name) if pvc.spec.volume_name else None
        except ApiException as err:
            raise PodSetupError("ClaimNotFound", f"volume {volume!r}: claim {claim}: {err.reason}") from err
        if pv is None or pv.spec.host_path is None:
            raise PodSetupError(
                "VolumeNotSupported", f"volume {volume!r}: claim {claim} is not bound to a hostPath PersistentVolume"
            )
        return Path(pv.spec.host_path.path)

    def _token(self) -> str:
        """A TokenRequest for the pod's ServiceAccount, bound to the pod (it stops working when the pod is gone)."""
        spec, meta = self.pod["spec"], self.pod["metadata"]
        body = {
            "spec": {
                "expirationSeconds": 86400,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            }
        }
        account = spec.get("serviceAccountName") or "default"
        response = self.api.create_namespaced_service_account_token(account, self.namespace, body)
        return str(response.status.token)

    def _kubeconfig(self) -> Path | None:
        if self._token_value is None:
            return None
        cluster = {"server": self.host.api_server, "certificate-authority-data": self.host.ca_data}
        cluster["tls-server-name"] = self.host.tls_server_name
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "pod", "user": {"token": self._token_value}}],
            "contexts": [
                {"name": "pod", "context": {"cluster": "cluster", "user": "pod", "namespace": self.namespace}}
            ],
            "current-context": "pod",
        }
        path = self.dir / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # --- supervision ----------------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.failure is not None or self.net is None:
            return
        now = time.monotonic()
        oom_after = self.pod["metadata"].get("annotations", {}).get(OOM_ANNOTATION, "")
        for c in self.containers:
            if c.proc is not None and c.proc.poll() is not None:
                self._on_exit(c, restart=True)
            if c.proc is None and not c.done and now >= c.next_start:
                self._start(c)
            if c.proc is None:
                continue
            if oom_after.isdigit() and now - c.started_mono >= int(oom_after):
                kill_group(c.proc, 0)
                continue
            self._probe(c, now)

    def _start(self, c: Container) -> None:
        assert self.net is not None
        if c.last is not None:
            c.restart_count += 1
        with c.log_path.open("ab") as out:
            out.write(f"--- kubelet stand-in: start #{c.restart_count} at {now_iso()}: {c.argv}\n".encode())
            out.flush()
            c.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.net.netns, *c.argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=c.env,
                cwd=c.env["HOME"],
                start_new_session=True,
            )
        c.started_at, c.started_mono = now_iso(), time.monotonic()
        c.ready = c.readiness is None
        c.started = c.startup is None
        for probe in (c.readiness, c.liveness, c.startup):
            if probe is not None:
                probe.reset(c.started_mono)

    def _on_exit(self, c: Container, restart: bool) -> None:
        assert c.proc is not None
        kill_group(c.proc, 0)
        code = c.proc.returncode if c.proc.returncode >= 0 else 128 - c.proc.returncode
        annotations = self.pod["metadata"].get("annotations", {})
        reason = "Completed" if code == 0 else "OOMKilled" if code == 137 and OOM_ANNOTATION in annotations else "Error"
        c.last = {"exitCode": code, "reason": reason, "startedAt": c.started_at, "finishedAt": now_iso()}
        if code != 0:
            c.last["message"] = tail(c.log_path, 20)[-4000:]
        c.proc, c.ready = None, False
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if restart and (policy == "Always" or (policy == "OnFailure" and code != 0)):
            now = time.monotonic()
            if now - c.started_mono > 600:  # it ran well for a while: start the back-off over, as the kubelet does
                c.backoff = 1.0
            c.next_start, c.backoff = now + c.backoff, min(c.backoff * 2, MAX_BACKOFF_SECONDS)
        else:
            c.done = True

    def _probe(self, c: Container, now: float) -> None:
        """As the kubelet: the startup probe alone until it succeeds, then readiness and liveness."""
        if not c.started:
            self._startup(c, now)
            return
        for probe, is_liveness in ((c.readiness, False), (c.liveness, True)):
            if probe is None or now < probe.next_at or c.proc is None:
                continue
            probe.next_at = now + probe.spec.get("periodSeconds", 10)
            ok = self._probe_once(c, probe.spec)
            probe.failures = 0 if ok else probe.failures + 1
            failed = probe.failures >= probe.spec.get("failureThreshold", 3)
            if not is_liveness:
                c.ready = ok or (c.ready and not failed)
            elif failed:
                with c.log_path.open("a") as out:
                    out.write(f"--- kubelet stand-in: liveness probe failed {probe.failures} times, restarting\n")
                grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
                kill_group(c.proc, min(grace, MAX_GRACE_SECONDS))

    def _startup(self, c: Container, now: float) -> None:
        probe = c.startup
        if probe is None or now < probe.next_at or c.proc is None:
            return
        probe.next_at = now + probe.spec.get("periodSeconds", 10)
        if self._probe_once(c, probe.spec):
            c.started = True
            for other in (c.readiness, c.liveness):
                if other is not None:
                    other.reset(now)
            return
        probe.failures += 1
        if probe.failures >= probe.spec.get("failureThreshold", 3):
            with c.log_path.open("a") as out:
                out.write(f"--- kubelet stand-in: startup probe failed {probe.failures} times, restarting\n")
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
            kill_group(c.proc, min(grace, MAX_GRACE_SECONDS))

    def _probe_once(self, c: Container, spec: Json) -> bool:
        assert self.net is not None
        timeout = float(spec.get("timeoutSeconds", 1))
        action = spec.get("httpGet") or spec.get("tcpSocket") or {}
        port = action.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = next((p["containerPort"] for p in c.spec.get("ports", []) if p.get("name") == port), None)
        if port is None:
            return False
        try:
            if "tcpSocket" in spec:
                socket.create_connection((self.net.ip, int(port)), timeout=timeout).close()
                return True
            url = f"{action.get('scheme', 'HTTP').lower()}://{self.net.ip}:{port}{action.get('path', '/')}"
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders", [])}
            response = httpx.get(url, headers=headers, timeout=timeout, trust_env=False, verify=False)  # noqa: S501
            return 200 <= response.status_code < 400
        except (OSError, httpx.HTTPError):
            return False

    # --- status -------------------------------------------------------------------------------------------------
    def _phase(self) -> str:
        if self.failure is not None:
            return "Failed"
        if self.containers and all(c.done for c in self.containers):
            return "Succeeded" if all(c.last and c.last["exitCode"] == 0 for c in self.containers) else "Failed"
        return "Running" if any(c.proc or c.last for c in self.containers) else "Pending"

    def _condition(self, kind: str, ok: bool, reason: str = "") -> Json:
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != ok:
            self._transitions[kind] = previous = (ok, now_iso())
        # reason None removes a reason left from an earlier patch (strategic merge keeps absent keys)
        reason_or_none = reason if reason and not ok else None
        return {"type": kind, "status": str(ok), "reason": reason_or_none, "lastTransitionTime": previous[1]}

    def _status(self) -> Json:
        phase = self._phase()
        ready = phase == "Running" and all(c.ready for c in self.containers)
        not_ready = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        status: Json = {
            "phase": phase,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", self.net is not None),
                self._condition("Initialized", True),
                self._condition("ContainersReady", ready, not_ready),
                self._condition("Ready", ready, not_ready),
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.net is not None:
            status |= {"podIP": self.net.ip, "podIPs": [{"ip": self.net.ip}]}
        if self.failure is not None:
            status |= {"reason": self.failure[0], "message": self.failure[1]}
        return status

    def _report(self) -> None:
        status = self._status()
        if status == self._reported:
            return
        try:
            self.api.patch_namespaced_pod_status(self.name, self.namespace, {"status": status})
            self._reported = status
        except ApiException as err:
            if err.status == 404:
                self.forget()
            else:
                log.warning("patching status of %s/%s: %s", self.namespace, self.name, err.reason)
