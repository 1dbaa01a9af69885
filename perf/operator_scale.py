"""Operator scale benchmark: many BenchmarkMatrix objects on many simulated nodes; the operator's own overhead.

Starts its own control plane (testbed/controlplane.py, cluster `kubeinfer-scale` in a temporary
directory) with `--nodes` kwok nodes from hack/controlplane/nodes.sh (the CPU and GPU pools, same labels
and taints), applies crds/ and the operator's least-privilege RBAC, and runs the real operator process
(`kubeinfer operator run`, the tests' command, as its ServiceAccount). Then it creates `--matrices`
BenchmarkMatrix objects of `--cells` cells each, a quarter of them on the GPU pool, and waits for all of
them to complete.

What is simulated, and why: kwok's nodes run no containers, so the model-server pods on the CPU/GPU pools
are only made Running and Ready by kwok, and the runner Jobs run on a small `runner` pool served by
perf/sim_runner.py, which writes the result ConfigMap each `kubeinfer step` would write and then
reports the pod Succeeded. Every cell therefore walks the operator's real code path (prepare Job, pre-flight,
server pod, measure Job, status checkpoint, report), but no model is loaded and nothing is measured on a
model: the figures are the **operator's own overhead**, not inference performance.

Measured:
- reconcile latency per matrix, from the return of its create call to kopf's finalizer (picked up), its first
  runner Job, the operator's first status write and Completed (p50/p95/max);
- API calls the operator makes, counted one by one by perf/apiproxy.py, a reverse proxy that only the
  operator's kubeconfig points at (startup calls separated from the run), per cell and by verb/resource;
- the operator process's RSS from /proc (peak, final, the kernel's high-water mark) and its thread count;
- total wall time and cells per second.

Run: `python -m perf.operator_scale --out results/bench/operator-scale.json` (from the repository root;
`--matrices 5 --nodes 50` for a smoke run). Ctrl-C stops everything and deletes the cluster.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi

from kubeinfer import __version__
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix
from kubeinfer.settings import Settings
from perf.apiproxy import COUNTS_PATH
from perf.proc_sampler import ProcSampler
from perf.scale_timeline import GROUP, PLURAL, VERSION, Timeline
from perf.sim_runner import RUNNER_POOL, RunnerPool, prepare_result
from testbed.controlplane import K8S_VERSION, REPO_ROOT, Cluster, bin_dir, start_cluster
from testbed.namespace_env import OPERATOR_SA, prepare_namespace, service_account_kubeconfig
from testbed.operator_process import CLI, OperatorProcess
from testbed.wait import wait_for

CLUSTER_NAME = "kubeinfer-scale"
NAMESPACE = "kubeinfer-scale"
MODEL = "smollm2-135m"
QUANTIZATIONS = ["Q4_1", "Q8_0", "Q4_K_M"]
GPU_EVERY = 4  # every 4th matrix places its servers on the GPU pool
#: kopf's sync handlers and daemons share a default ThreadPoolExecutor: Python's min(32, CPUs + 4) threads.
KOPF_DEFAULT_THREADS = min(32, (os.cpu_count() or 1) + 4)


class BenchmarkFailed(RuntimeError):
    """The run could not finish; the message says which matrices and why."""


def matrix_manifest(name: str, cells: int, gpu: bool) -> dict[str, Any]:
    """A small matrix: the SmolLM2 ladder's first `cells` quantizations, the interactive profile only."""
    files = {"Q4_1": f"pypi:{MODEL}", "Q8_0": "quantize:Q4_1", "Q4_K_M": "quantize:Q4_1"}
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BenchmarkMatrix",
        "metadata": {"name": name},
        "spec": {
            "models": [{"name": MODEL, "size": "135M", "files": {q: files[q] for q in QUANTIZATIONS[:cells]}}],
            "engine": {"ctxSize": 2048, "threads": 2},
            "limits": {"maxLoadTimeSeconds": 120},
            "placement": {"pool": "gpu", "gpus": 1} if gpu else {"pool": "cpu"},
            "profiles": {
                "interactive": {"maxTokens": 32, "runs": 1},
                "longContext": {"enabled": False},
                "batch": {"enabled": False},
                "quality": {"enabled": False},
                "stress": {"enabled": False},
            },
        },
    }
    BenchmarkMatrix.model_validate(manifest)
    return manifest


def pool_sizes(nodes: int) -> tuple[int, int]:
    """(CPU, GPU) kwok nodes: three quarters CPU."""
    gpu = max(1, nodes // 4)
    return nodes - gpu, gpu


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def log(message: str) -> None:
    print(f"[operator-scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the parts, each a context manager that cleans up after itself ---------------------------------------------


@contextmanager
def cluster_with_nodes(workdir: Path, cpu_nodes: int, gpu_nodes: int) -> Iterator[Cluster]:
    os.environ["KUBEINFER_CPU_NODES"] = str(cpu_nodes)
    os.environ["KUBEINFER_GPU_NODES"] = str(gpu_nodes)
    cluster = start_cluster(CLUSTER_NAME, workdir)
    try:
        yield cluster
    finally:
        log("deleting the cluster")
        cluster.stop()


def admin_endpoint(cluster: Cluster, workdir: Path) -> tuple[str, Path]:
    """The apiserver's URL and a CA file for it, from the admin kubeconfig kwokctl wrote."""
    entry = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    ca = workdir / "apiserver-ca.crt"
    if "certificate-authority-data" in entry:
        ca.write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    else:
        shutil.copyfile(entry["certificate-authority"], ca)
    return str(entry["server"]), ca


@contextmanager
def counting_proxy(upstream: str, ca: Path, log_path: Path) -> Iterator[str]:
    """perf/apiproxy.py in its own process (so its CPU is not the operator's); yields its http URL."""
    with log_path.open("ab") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perf.apiproxy", "--upstream", upstream, "--ca", str(ca)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise BenchmarkFailed(f"the counting proxy did not start; see {log_path}")
        yield f"http://127.0.0.1:{line}"
    finally:
        _terminate(proc, "counting proxy")


def proxied_kubeconfig(source: Path, proxy_url: str, dest: Path) -> Path:
    """The operator's ServiceAccount kubeconfig, pointed at the proxy (which verifies the apiserver's TLS)."""
    data = json.loads(source.read_text())
    data["clusters"][0]["cluster"] = {"server": proxy_url}
    dest.write_text(json.dumps(data))
    return dest


@contextmanager
def operator_process(
    kubeconfig: Path, log_path: Path, poll_seconds: float | None, executor_threads: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    """`kubeinfer operator run` as the tests run it, with runner Jobs sent to the simulated runner pool.

    With `executor_threads` (a what-if, never the default) the same CLI runs through perf/kopf_threads.py.
    """
    env = {"KUBEINFER_OPERATOR__RUNNER_POOL": RUNNER_POOL}
    if poll_seconds is not None:
        env["KUBEINFER_OPERATOR__POLL_SECONDS"] = str(poll_seconds)
    entry = CLI if executor_threads is None else ("perf.kopf_threads", str(executor_threads))
    operator = OperatorProcess(kubeconfig, NAMESPACE, log_path, env, base_env={}, entry=entry, cwd=REPO_ROOT)
    operator.start()
    assert operator.proc is not None
    try:
        yield operator.proc
    finally:
        operator.stop()


def _terminate(proc: subprocess.Popen[bytes], what: str) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log(f"{what} ignored SIGTERM for 60 s; killing it")
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def started(thing: Any) -> Iterator[Any]:
    thing.start()
    try:
        yield thing
    finally:
        thing.stop()


# --- the run -----------------------------------------------------------------------------------------------------


def proxy_counts(proxy_url: str) -> dict[str, Any]:
    response = httpx.get(proxy_url + COUNTS_PATH, timeout=30)
    response.raise_for_status()
    counts: dict[str, Any] = response.json()
    return counts


def subtract(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Counts made between two snapshots of the proxy's tally."""
    out: dict[str, Any] = {"total": after["total"] - before["total"]}
    for key in ("by_verb", "by_call", "by_status", "non_2xx"):
        diff = Counter(after[key])
        diff.subtract(Counter(before[key]))
        out[key] = {k: v for k, v in sorted(diff.items()) if v}
    return out


def per_cell(counts: dict[str, Any], cells: int) -> dict[str, Any]:
    return {
        "total": round(counts["total"] / cells, 2),
        "by_verb": {k: round(v / cells, 2) for k, v in counts["by_verb"].items()},
        "by_call": {k: round(v / cells, 3) for k, v in counts["by_call"].items()},
    }


def kwok_nodes_ready(core: CoreV1Api) -> int:
    nodes = core.list_node(label_selector="kubeinfer.dev/pool in (cpu,gpu)").items
    return sum(1 for n in nodes if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])))


def runner_nodes_schedulable(core: CoreV1Api, names: list[str]) -> bool:
    for name in names:
        node = core.read_node(name)
        ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
        if not ready or any(t.key.startswith("node.kubernetes.io/") for t in (node.spec.taints or [])):
            return False
    return True


def wait_all(timeline: Timeline, operator: subprocess.Popen[bytes], matrix_timeout: float, operator_log: Path) -> None:
    """Until every matrix is Completed or Failed; a matrix older than `matrix_timeout` fails the run."""
    last_report = 0.0
    while True:
        if operator.poll() is not None:
            raise BenchmarkFailed(f"the operator exited with {operator.returncode}; see {operator_log}")
        waiting = timeline.unfinished()
        if not waiting:
            return
        now = time.time()
        late = [name for name in waiting if now - timeline.matrices[name].created > matrix_timeout]
        if late:
            details = ", ".join(
                f"{name} (phase {timeline.matrices[name].phase}, "
                f"{timeline.matrices[name].cells_done}/{timeline.matrices[name].cells_total} cells)"
                for name in late[:10]
            )
            raise BenchmarkFailed(
                f"{len(late)} matrices not complete {matrix_timeout:.0f} s after creation: {details}"
                f"{' ...' if len(late) > 10 else ''}; operator log: {operator_log}"
            )
        if now - last_report > 30:
            done = len(timeline.matrices) - len(waiting)
            log(f"{done}/{len(timeline.matrices)} matrices completed")
            last_report = now
        time.sleep(1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    cpu_nodes, gpu_nodes = pool_sizes(args.nodes)
    runner_names = [f"runner-{i}" for i in range(args.runner_nodes)]
    workdir = Path(tempfile.mkdtemp(prefix="kubeinfer-scale-"))
    keep_logs = Path(args.out).with_suffix(".logs")
    load_before = os.getloadavg()
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        stack.callback(_keep_logs, workdir, keep_logs)
        t0 = time.monotonic()
        log(f"starting control plane with {cpu_nodes} CPU + {gpu_nodes} GPU kwok nodes in {workdir}")
        cluster = stack.enter_context(cluster_with_nodes(workdir / "cluster", cpu_nodes, gpu_nodes))
        cluster_seconds = time.monotonic() - t0
        admin = stack.enter_context(kube_config.new_client_from_config(str(cluster.kubeconfig)))
        assert isinstance(admin, ApiClient)
        core = CoreV1Api(admin)
        ready_nodes = kwok_nodes_ready(core)
        if ready_nodes != args.nodes:
            raise BenchmarkFailed(f"only {ready_nodes} of {args.nodes} kwok nodes are Ready")
        prepare_namespace(cluster, NAMESPACE, settings.models_root)
        sa_config = service_account_kubeconfig(cluster, NAMESPACE, OPERATOR_SA, workdir / "operator-sa.kubeconfig")
        upstream, ca = admin_endpoint(cluster, workdir)
        proxy_url = stack.enter_context(counting_proxy(upstream, ca, workdir / "proxy.log"))
        operator_config = proxied_kubeconfig(sa_config, proxy_url, workdir / "operator.kubeconfig")

        log("sizing the cells once on the cached GGUFs (what the simulated prepare step writes)")
        sample = BenchmarkMatrix.model_validate(matrix_manifest("sizing", args.cells, gpu=False))
        for quantization in QUANTIZATIONS[: args.cells]:
            cell = f"{MODEL}/{quantization}"
            if "error" in (prepared := prepare_result(sample, cell, settings.models_root)):
                raise BenchmarkFailed(f"{cell}: {prepared['error']} (run `make models` first)")
        log(f"starting the simulated runner pool ({len(runner_names)} nodes)")
        runners = stack.enter_context(started(RunnerPool(admin, NAMESPACE, runner_names, settings.models_root)))
        wait_for(lambda: runner_nodes_schedulable(core, runner_names), timeout=120, what="runner nodes schedulable")

        operator_log = workdir / "operator.log"
        operator = stack.enter_context(
            operator_process(operator_config, operator_log, args.poll_seconds, args.executor_threads)
        )
        log(f"operator pid {operator.pid}; waiting for its BenchmarkMatrix watch")
        watch_call = f"watch {GROUP}/{PLURAL}"
        wait_for(
            lambda: operator.poll() is None and proxy_counts(proxy_url)["by_call"].get(watch_call),
            timeout=180,
            what="the operator watching BenchmarkMatrix objects",
        )
        startup_counts = proxy_counts(proxy_url)
        sampler = stack.enter_context(started(ProcSampler(operator.pid)))
        timeline = stack.enter_context(started(Timeline(admin, NAMESPACE)))

        custom = CustomObjectsApi(admin)
        log(f"creating {args.matrices} matrices of {args.cells} cells")
        run_started = time.monotonic()
        for i in range(args.matrices):
            name = f"scale-{i:04d}"
            body = matrix_manifest(name, args.cells, gpu=i % GPU_EVERY == GPU_EVERY - 1)
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            timeline.created(name, time.time())
        created_seconds = time.monotonic() - run_started
        wait_all(timeline, operator, args.matrix_timeout, keep_logs / "operator.log")
        wall = time.monotonic() - run_started
        final_counts = proxy_counts(proxy_url)
        sampler.sample()
        load_after = os.getloadavg()

        phases = Counter(t.phase for t in timeline.matrices.values())
        cells_total = sum(t.cells_total for t in timeline.matrices.values())
        statuses = cell_statuses(custom)
        run_counts = subtract(final_counts, startup_counts)
        if runners.errors:
            raise BenchmarkFailed(f"the simulated runner failed {len(runners.errors)} pods: {runners.errors[:5]}")
        return {
            "benchmark": "operator-scale",
            "what": "the operator's own overhead; model servers and runner steps are simulated (see docs/testing.md)",
            "setup": {
                "kwok_nodes": args.nodes,
                "cpu_nodes": cpu_nodes,
                "gpu_nodes": gpu_nodes,
                "simulated_runner_nodes": len(runner_names),
                "matrices": args.matrices,
                "cells_per_matrix": args.cells,
                "gpu_matrices": sum(1 for i in range(args.matrices) if i % GPU_EVERY == GPU_EVERY - 1),
                "operator_poll_seconds": args.poll_seconds or settings.operator.poll_seconds,
                "kopf_sync_threads": args.executor_threads or KOPF_DEFAULT_THREADS,
                "kopf_sync_threads_changed_by_benchmark": args.executor_threads is not None,
                "cpus": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in load_after],
                "versions": versions(),
                "cluster_start_seconds": round(cluster_seconds, 1),
                "matrices_created_in_seconds": round(created_seconds, 2),
            },
            "result": {
                "wall_seconds": round(wall, 1),
                "matrix_phases": dict(phases),
                "cells": cells_total,
                "cell_statuses": statuses,
                "cells_per_second": round(cells_total / wall, 3),
                "runner_pods_simulated": runners.completed,
            },
            "latency": timeline.summary(),
            "api_calls": {
                "startup": startup_counts,
                "run": run_counts,
                "per_cell": per_cell(run_counts, max(cells_total, 1)),
                "per_cell_including_startup": round(final_counts["total"] / max(cells_total, 1), 2),
            },
            "operator_memory": sampler.summary(),
        }
    raise AssertionError("unreachable")


def cell_statuses(custom: CustomObjectsApi) -> dict[str, int]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
    return dict(Counter(cell["status"] for item in items for cell in (item.get("status") or {}).get("cells", [])))


def versions() -> dict[str, str]:
    found = {"kubeinfer": __version__, "python": platform.python_version(), "kubernetes": K8S_VERSION}
    listing = bin_dir() / "VERSIONS"
    if listing.is_file():
        for line in listing.read_text().splitlines():
            key, _, value = line.partition("=")
            if value:
                found[key] = value
    from importlib.metadata import version

    for package in ("kopf", "kubernetes", "aiohttp"):
        found[f"python-{package}"] = version(package)
    return found


def _keep_logs(workdir: Path, dest: Path) -> None:
    """Copy the operator's, the proxy's and the control plane's logs next to the JSON before the cluster goes."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in [workdir / "operator.log", workdir / "proxy.log"]:
        if path.is_file():
            shutil.copyfile(path, dest / path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--matrices", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=1000, help="kwok nodes, three quarters CPU, a quarter GPU")
    parser.add_argument("--cells", type=int, default=3, choices=(1, 2, 3), help="cells per matrix")
    parser.add_argument("--runner-nodes", type=int, default=4, help="nodes of the simulated runner pool")
    parser.add_argument("--matrix-timeout", type=float, default=3600, help="seconds from a matrix's creation")
    parser.add_argument("--poll-seconds", type=float, default=None, help="KUBEINFER_OPERATOR__POLL_SECONDS")
    parser.add_argument(
        "--executor-threads",
        type=int,
        default=None,
        help="what-if: resize kopf's sync thread pool (perf/kopf_threads.py); default: the operator unchanged",
    )
    parser.add_argument("--out", default="results/bench/operator-scale.json")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.matrices < 1:
        parser.error("--nodes must be at least 2 and --matrices at least 1")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run(args)
    except BenchmarkFailed as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cluster and processes stopped")
        return 130
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: result[k] for k in ("result", "latency")}
    summary["api_calls_per_cell"] = result["api_calls"]["per_cell"]["total"]
    memory = result["operator_memory"]
    summary["operator_rss_mib"] = {k: memory.get(k) for k in ("peak_rss_mib", "final_rss_mib", "peak_threads")}
    print(json.dumps(summary, indent=2))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
