"""What every Python suite needs: the repository root, the Ballast binary, the CLI and free ports.

The binary is $BALLAST_BIN, else .build/release/ballast, else .build/debug/ballast.
"""
import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ballast_bin():
    env = os.environ.get("BALLAST_BIN")
    if env:
        return env
    for p in (ROOT / ".build/release/ballast", ROOT / ".build/debug/ballast"):
        if p.exists():
            return str(p)
    raise RuntimeError("no Ballast binary: build it (swift build -c release --product ballast) or set BALLAST_BIN")


def run(*args, check=True, timeout=600):
    """Runs the CLI from the repository root; with `check`, a non-zero exit fails with both outputs."""
    r = subprocess.run([ballast_bin(), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"ballast {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def free_ports(n):
    """n distinct loopback TCP ports that were free a moment ago (all bound at once, so no repeats)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports
