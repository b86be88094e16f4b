"""Each PyTorch build's index shows its newest torch and the driver it needs, from the page
the proxy fetched: on the status page, and from the cache with `pypi-proxy routes`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from support.process import proxy_process
from support.world import TORCH, World

COMMAND = [sys.executable, "-m", "proxy.cli"]


def test_the_newest_torch_of_each_build_on_the_status_page_and_in_routes(
    world: World, tmp_path: Path
) -> None:
    whl = world.torch.prefix.rsplit("/", 1)[0]  # the fake index's /whl/, cu121 under it
    settings = world.settings(
        pytorch={"url": f"{world.torch_url}{whl}/", "builds": ["cu121", "cpu"], "default": "cu121"}
    )
    del settings["upstreams"]["pytorch"]  # the builds bring their own groups
    with proxy_process(settings, tmp_path) as (_, base):
        status = httpx.get(f"{base}/", timeout=10).text
        assert status.count("torch: not fetched yet") == 2  # nothing asked yet
        assert httpx.get(f"{base}/cu121/simple/torch/", timeout=10).status_code == 200
        status = httpx.get(f"{base}/", timeout=10).text
        # TORCH is torch 2.3.1+cu121; the cpu build's index has no such page.
        assert "torch 2.3.1 (CUDA 12.1, Linux driver 525.60.13 or newer)" in status
        assert status.count("torch: not fetched yet") == 1
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = subprocess.run([*COMMAND, "routes", "--config", str(config)], capture_output=True,
                         text=True, timeout=30, check=True).stdout  # fmt: skip
    assert out.splitlines() == [
        "index 'cu121': torch 2.3.1 (CUDA 12.1, Linux driver 525.60.13 or newer)",
        "index 'cpu': torch: not fetched yet",
    ]
    assert TORCH.filename.startswith("torch-2.3.1+cu121")
