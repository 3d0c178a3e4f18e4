"""A local Ray instance started by the tool listens on loopback only."""

import subprocess
import sys

from tests.conftest import REPO

PROBE = r"""
import ipaddress, os, psutil
os.environ.pop("RAY_ADDRESS", None)
from qcraft_ray.cli import init_ray
from qcraft_ray.config_loader import load_config
init_ray(load_config("configs/local.yaml"), None)
import ray
ray.get(ray.remote(lambda: 1).remote())
bad = set()
me = psutil.Process()
for proc in [me, *me.children(recursive=True)]:
    try:
        conns = proc.net_connections(kind="inet")
    except psutil.Error:
        continue
    for c in conns:
        ip = ipaddress.ip_address(c.laddr.ip)
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if c.status == psutil.CONN_LISTEN and not ip.is_loopback:
            bad.add((proc.name(), c.laddr.ip, c.laddr.port))
ray.shutdown()
print("LISTEN-NON-LOOPBACK", sorted(bad))
"""


def test_local_instance_binds_loopback_only():
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "LISTEN-NON-LOOPBACK []" in res.stdout, res.stdout[-2000:]
