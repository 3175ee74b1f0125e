#!/usr/bin/env python3
"""The Docker build context of deploy/Dockerfile, and what its runtime stage must contain.

--out DIR        copy the context as Docker sends it (.dockerignore applied by the Docker SDK's
                 own exclude_paths, the rules `docker build` uses) and check that every COPY
                 source of the Dockerfile is in it.
--libraries BIN  check that every shared library BIN links comes from a Debian package the
                 runtime stage installs (or one debian:*-slim already has). The build machine
                 runs the same Debian release as the image (bookworm), so `dpkg -S` answers for it.
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from docker.utils.build import exclude_paths

# Packages every debian:*-slim image has (Priority: required / essential), which the binary may use.
SLIM_BASE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def stages(dockerfile):
    """{stage name: [instruction lines]} with continuation lines joined."""
    text = re.sub(r"\\\n", " ", Path(dockerfile).read_text())
    out, name = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            name = m.group(2) or f"final:{m.group(1)}"
            out[name] = []
            continue
        out.setdefault(name, []).append(line)
    return out


def context(root, dockerfile, out):
    ignore = Path(root, ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    files = exclude_paths(root, patterns, dockerfile=dockerfile)
    for rel in sorted(files):
        src = Path(root, rel)
        if src.is_file():
            dst = Path(out, rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    missing = []
    for name, lines in stages(Path(root, dockerfile)).items():
        for line in lines:
            m = re.match(r"COPY\s+(?!--from)(.*)", line, re.I)
            if m:
                args = [a for a in m.group(1).split() if not a.startswith("--")]
                for src in args[:-1]:
                    if not Path(out, src).exists():
                        missing.append(f"{name}: COPY {src}")
    n = sum(1 for _ in Path(out).rglob("*") if _.is_file())
    if missing:
        print("FAIL not in the build context (.dockerignore): " + ", ".join(missing))
        return 1
    print(f"ok   build context: {n} files after .dockerignore; every COPY source present")
    return 0


def libraries(root, dockerfile, binary):
    runtime = stages(Path(root, dockerfile))["runtime"]
    installed = set(SLIM_BASE)
    for line in runtime:
        for m in re.finditer(r"apt-get install\s+((?:-\S+\s+)*)([^&]+)", line):
            installed |= {p for p in m.group(2).split() if not p.startswith("-")}
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    bad = []
    for line in ldd.splitlines():
        m = re.search(r"=>\s+(/\S+)", line)
        if not m:
            continue
        path = Path(m.group(1)).resolve()
        owner = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
        if owner.returncode != 0:
            # usrmerge: the package may list /lib/... for /usr/lib/...
            alt = str(path).replace("/usr/lib/", "/lib/", 1)
            owner = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
        pkg = owner.stdout.split(":")[0].strip() if owner.returncode == 0 else "?"
        if pkg not in installed:
            bad.append(f"{path.name} ({pkg})")
    if bad:
        print("FAIL the runtime stage lacks the packages of: " + ", ".join(bad))
        return 1
    print(f"ok   every shared library of {Path(binary).name} comes from a runtime-stage package")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--dockerfile", required=True)
    ap.add_argument("--out")
    ap.add_argument("--libraries")
    a = ap.parse_args()
    rc = 0
    if a.out:
        rc |= context(a.root, a.dockerfile, a.out)
    if a.libraries:
        rc |= libraries(a.root, a.dockerfile, a.libraries)
    return rc


if __name__ == "__main__":
    sys.exit(main())
