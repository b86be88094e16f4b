"""A fake `nvidia-smi` on a PATH of its own, printing what the real one prints at its top."""

from __future__ import annotations

from pathlib import Path

HEADER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI {driver}             Driver Version: {driver}     CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|   0  NVIDIA GeForce RTX 3060        Off |   00000000:01:00.0  On |                  N/A |
+-----------------------------------------+------------------------+----------------------+
"""


def fake_nvidia_smi(folder: Path, cuda: str, driver: str = "550.54.15") -> Path:
    """Writes `nvidia-smi` into `folder` (put it on PATH), reporting this CUDA version."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    lines = HEADER.format(driver=driver, cuda=cuda).splitlines()
    smi.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in lines))  # builtins only
    smi.chmod(0o755)
    return smi
