"""Real local services for integration tests: a loopback Ray cluster and SeaweedFS."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path

S3_KEY, S3_SECRET, S3_BUCKET = "qcraft-test-key", "qcraft-test-secret", "qcraft-test"


_HANDED_OUT: set[int] = set()


def free_port(low: int = 20000, high: int = 50000) -> int:
    """A free TCP port whose +10000 neighbour (gRPC ports of SeaweedFS) is free too, never
    one handed out before in this process: the kernel can give the same free port to two
    calls in a row, and Ray refuses a node whose components were given one port twice."""
    for _ in range(200):
        with closing(socket.socket()) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if (low <= port < high and port not in _HANDED_OUT
                and all(_is_free(p) for p in (port, port + 10000))):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def _is_free(port: int) -> bool:
    with closing(socket.socket()) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited early:\n{log.read_text()[-3000:]}")
        with closing(socket.socket()) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class SeaweedFS:
    proc: subprocess.Popen
    endpoint: str
    env: dict[str, str]
    cmd: list[str]
    log: Path
    port: int

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def restart(self, down_seconds: float) -> None:
        """An outage: stop the server, wait, start it again on the same ports and data."""
        self.stop()
        time.sleep(down_seconds)
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT)
        _wait_port(self.port, 60, self.proc, self.log)
        _wait_bucket(self.env)


def start_seaweedfs(workdir: Path) -> SeaweedFS:
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "s3.json").write_text(json.dumps({"identities": [{
        "name": "qcraft", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {k: free_port() for k in ("s3", "master", "filer", "volume")}
    log = workdir / "weed.log"
    cmd = [weed, "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-s3.config={workdir / 's3.json'}", "-admin.ui=false", "-webdav=false",
           f"-s3.port={ports['s3']}", f"-master.port={ports['master']}",
           f"-filer.port={ports['filer']}", f"-volume.port={ports['volume']}",
           f"-bucket={S3_BUCKET}"]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    _wait_port(ports["s3"], 60, proc, log)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    env = {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
           "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    _wait_bucket(env)
    return SeaweedFS(proc, endpoint, env, cmd, log, ports["s3"])


def _wait_bucket(env: dict[str, str], timeout: float = 60) -> None:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(access_key=env["AWS_ACCESS_KEY_ID"],
                           secret_key=env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_override=env["AWS_ENDPOINT_URL"].split("//")[1],
                           scheme="http", region="us-east-1")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with fs.open_output_stream(f"{S3_BUCKET}/_ready") as f:
                f.write(b"ok")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class RayCluster:
    address: str  # GCS address for `qcraft run --address`
    dashboard: str  # http address for `ray job submit`
    env: dict[str, str]
    temp_dir: str

    def _processes(self) -> list:
        import psutil

        procs = []
        for proc in psutil.process_iter(["cmdline"]):
            if any(self.temp_dir in part for part in (proc.info["cmdline"] or [])):
                procs.append(proc)
                procs.extend(proc.children(recursive=True))
        return procs

    def kill(self) -> None:
        """SIGKILL the whole cluster at once (a lost head: its driver dies with it)."""
        import psutil

        for proc in self._processes():
            with suppress(psutil.Error):
                proc.kill()

    def stop(self) -> None:
        """Stop this cluster only (not `ray stop`, which would end every Ray on the host):
        the processes whose command line names this cluster's temp dir, and their children.
        What has not ended 3 s after SIGTERM is killed: Ray's GCS and autoscaler monitor
        outlast even 15 s, and nothing of a test cluster needs keeping."""
        import psutil

        procs = self._processes()
        for proc in procs:
            with suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=3)
        for proc in alive:
            with suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_ray(extra_env: dict[str, str], num_cpus: int = 4) -> RayCluster:
    """`ray start --head` bound to loopback; the env (S3 credentials) reaches workers."""
    temp_dir = tempfile.mkdtemp(prefix="qray-", dir="/tmp")
    port, dash = free_port(), free_port()
    # Token auth on, with a token of this cluster's own, passed to every client by env.
    env = {**os.environ, **extra_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
           f"--num-cpus={num_cpus}", "--num-gpus=0", "--node-ip-address=127.0.0.1",
           f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp_dir}",
           # Ray's fixed default ports (52365 for the job agent...) would clash with any
           # other Ray on the host, and the job API then finds "no available agent".
           *(f"--{flag}={free_port()}" for flag in (
               "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
               "runtime-env-agent-port", "metrics-export-port"))]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{res.stdout}\n{res.stderr}")
    cluster = RayCluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", env, temp_dir)
    deadline = time.monotonic() + 60
    while not _dashboard_up(cluster.dashboard):
        if time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError("Ray dashboard (job API) did not come up")
        time.sleep(0.5)
    return cluster


@dataclass
class WorkerNode:
    manager_port: int  # --node-manager-port: on the raylet's command line, to find it
    gpus: int
    model_cache: str = ""  # this node's QCRAFT_MODEL_CACHE (node-local model copies)


@dataclass
class MultiNodeCluster(RayCluster):
    """A head without GPUs plus worker nodes, each its own `ray start` on this machine."""

    head_port: int = 0
    workers: list[WorkerNode] = field(default_factory=list)

    def add_worker(self, gpus: int = 2, cpus: int = 2) -> WorkerNode:
        node = WorkerNode(free_port(), gpus)
        # each node its own temp dir (under the head's, so stop() finds its processes):
        # nodes sharing one would unpack the job's working dir into the same folder at
        # once, and a driver saw half of it
        temp_dir = tempfile.mkdtemp(prefix="node-", dir=self.temp_dir)
        node.model_cache = f"{temp_dir}/models"
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start",
               f"--address=127.0.0.1:{self.head_port}", f"--num-cpus={cpus}",
               f"--num-gpus={gpus}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
               f"--node-manager-port={node.manager_port}", f"--temp-dir={temp_dir}",
               *_agent_ports()]
        env = {**self.env, "QCRAFT_MODEL_CACHE": node.model_cache}  # the node's processes'
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise RuntimeError(f"ray start (worker) failed:\n{res.stdout}\n{res.stderr}")
        self.workers.append(node)
        return node

    def kill_worker(self, node: WorkerNode) -> None:
        """SIGKILL the node: its raylet and every process under it (workers, agents)."""
        import psutil

        flag = f"--node_manager_port={node.manager_port}"
        raylets = [p for p in psutil.process_iter(["cmdline"])
                   if flag in (p.info["cmdline"] or [])]
        assert raylets, f"no raylet with {flag}"
        procs = [q for p in raylets for q in [p, *p.children(recursive=True)]]
        for p in procs:
            with suppress(psutil.Error):
                p.kill()
        self.workers.remove(node)


def _agent_ports() -> list[str]:
    """Ray's fixed default agent ports (52365 for the job agent...) would clash with any
    other Ray on the host, and the job API then finds "no available agent"."""
    return [f"--{flag}={free_port()}" for flag in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port")]


def start_multinode(extra_env: dict[str, str], worker_gpus: tuple[int, ...] = (2, 2),
                    head_cpus: int = 2, worker_cpus: int = 2) -> MultiNodeCluster:
    """A head (no GPUs) and one worker node per entry of ``worker_gpus``, with logical
    GPUs, token auth and free ports. Several nodes on one machine need Ray's multi-node
    switch on (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1), so some of Ray's ports listen beyond
    loopback (ENVIRONMENT.md)."""
    temp_dir = tempfile.mkdtemp(prefix="qray-mn-", dir="/tmp")
    port, dash = free_port(), free_port()
    env = {**os.environ, **extra_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           # the GCS declares a killed node dead after 3 failed health checks 1 s apart
           # (Ray's default: 5, 3 s apart), to keep the node-loss tests short
           "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
           f"--num-cpus={head_cpus}", "--num-gpus=0", "--node-ip-address=127.0.0.1",
           f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp_dir}",
           f"--node-manager-port={free_port()}", *_agent_ports()]
    head_env = {**env, "QCRAFT_MODEL_CACHE": f"{temp_dir}/models"}
    res = subprocess.run(cmd, env=head_env, capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        raise RuntimeError(f"ray start (head) failed:\n{res.stdout}\n{res.stderr}")
    cluster = MultiNodeCluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", env,
                               temp_dir, head_port=port)
    try:
        for gpus in worker_gpus:
            cluster.add_worker(gpus, worker_cpus)
        deadline = time.monotonic() + 60
        while not _dashboard_up(cluster.dashboard):
            if time.monotonic() > deadline:
                raise RuntimeError("Ray dashboard (job API) did not come up")
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _dashboard_up(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/api/version", timeout=2) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 401  # up, with token auth on (the job CLI sends the token)
    except OSError:
        return False
