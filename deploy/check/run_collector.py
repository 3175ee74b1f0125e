#!/usr/bin/env python3
"""Start a collector binary with a config for real, on loopback, until its health check
answers: `validate` checks keys and types, but some settings (tail sampling policies, storage
backends) are only built at start. Every listening endpoint is moved to a free 127.0.0.1 port,
Badger directories to a temporary folder; exporters point at a closed loopback port.

Usage: run_collector.py BINARY CONFIG [ENV=VALUE ...]
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback(node, tmp):
    """Rewrite listen addresses and data directories in place."""
    if isinstance(node, dict):
        for k, v in list(node.items()):
            if k == "endpoint" and isinstance(v, str) and v.startswith("0.0.0.0:"):
                node[k] = f"127.0.0.1:{free_port()}"
            elif k == "host" and v == "0.0.0.0":
                node[k] = "127.0.0.1"
                if "port" in node:
                    node["port"] = free_port()
            elif k in ("keys", "values") and isinstance(v, str) and v.startswith("/"):
                node[k] = str(Path(tmp, v.strip("/").replace("/", "_")))
            else:
                loopback(v, tmp)
    elif isinstance(node, list):
        for v in node:
            loopback(v, tmp)


def main():
    binary, config = sys.argv[1], sys.argv[2]
    env = dict(os.environ)
    env.update(a.split("=", 1) for a in sys.argv[3:])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = yaml.safe_load(Path(config).read_text())
        loopback(cfg, tmp)
        health = cfg["extensions"]["healthcheckv2"]["http"]["endpoint"]
        path = Path(tmp, "config.yaml")
        path.write_text(yaml.safe_dump(cfg))
        log = Path(tmp, "log")
        with open(log, "w") as out:
            proc = subprocess.Popen([binary, "--config", str(path)], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        ok = False
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://{health}/status", timeout=2) as r:
                        if r.status == 200:
                            ok = True
                            break
                except OSError:
                    pass
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if not ok:
            print(f"FAIL {config}: the collector did not become healthy")
            print("\n".join(log.read_text().splitlines()[-20:]))
            return 1
        print(f"ok   {config}: started with it and answered its health check")
        return 0


if __name__ == "__main__":
    sys.exit(main())
