#!/usr/bin/env python3
"""Readiness probes for the local stack (stdlib only).

  probe.py kafka  [host:port]   Kafka Metadata request (v4) -> prints brokers/cluster id
  probe.py cql    [host:port]   CQL native protocol v4: STARTUP + QUERY
                                "SELECT release_version FROM system.local" -> prints version
  probe.py http   URL           HTTP GET, expects 2xx -> prints body (truncated)

Exit 0 when the service answered the request, 1 otherwise.
"""
import socket
import struct
import sys
import urllib.request

TIMEOUT = 3.0


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _hostport(arg, default_port):
    host, _, port = (arg or "127.0.0.1").partition(":")
    return host, int(port or default_port)


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals[0] if len(vals) == 1 else vals

    def raw(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def short_string(self):  # int16 length (-1 = null)
        n = self.take(">h")
        return None if n < 0 else self.raw(n).decode()


def kafka(addr):
    host, port = _hostport(addr, 9092)
    client_id = b"smsflow-probe"
    # Request header v1 + Metadata v4 body: all topics (null array), no auto-create.
    body = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        r = Reader(_recv_exact(s, size))
    if r.take(">i") != 1:
        raise ValueError("bad correlation id")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        bhost = r.short_string()
        bport = r.take(">i")
        r.short_string()  # rack
        brokers.append(f"{node_id}@{bhost}:{bport}")
    cluster_id = r.short_string()
    controller = r.take(">i")
    topics = r.take(">i")
    if not brokers:
        raise ValueError("no brokers in metadata response")
    print(f"kafka ok: cluster={cluster_id} controller={controller} brokers={','.join(brokers)} topics={topics}")


def _cql_frame(opcode, body, stream=1):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def _cql_read(sock):
    _ver, _flags, _stream, opcode, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    return opcode, Reader(_recv_exact(sock, length))


def _cql_check_error(opcode, r):
    if opcode == 0x00:
        code = r.take(">i")
        raise RuntimeError(f"CQL error 0x{code:04x}: {r.short_string()}")


def cql(addr, query="SELECT release_version FROM system.local"):
    host, port = _hostport(addr, 9042)
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        k, v = b"CQL_VERSION", b"3.0.0"
        s.sendall(_cql_frame(0x01, struct.pack(">hh", 1, len(k)) + k + struct.pack(">h", len(v)) + v))
        opcode, r = _cql_read(s)
        _cql_check_error(opcode, r)
        if opcode != 0x02:  # READY
            raise RuntimeError(f"unexpected STARTUP reply opcode 0x{opcode:02x} (auth enabled?)")
        q = query.encode()
        # QUERY: <long string><consistency ONE><flags 0>
        s.sendall(_cql_frame(0x07, struct.pack(">i", len(q)) + q + struct.pack(">hB", 0x0001, 0), stream=2))
        opcode, r = _cql_read(s)
        _cql_check_error(opcode, r)
    if opcode != 0x08 or r.take(">i") != 0x0002:  # RESULT / Rows
        raise RuntimeError("unexpected QUERY reply")
    flags, ncols = r.take(">ii")
    if flags & 0x0002:  # has_more_pages -> paging state
        r.raw(r.take(">i"))
    if flags & 0x0001:  # global tables spec
        r.short_string()
        r.short_string()
    for _ in range(ncols):
        if not flags & 0x0001:
            r.short_string()
            r.short_string()
        r.short_string()  # column name
        if r.take(">h") != 0x000D:  # expect varchar
            raise RuntimeError("unexpected column type")
    if r.take(">i") < 1:
        raise RuntimeError("no rows")
    n = r.take(">i")
    print(f"cassandra ok: release_version={r.raw(n).decode() if n >= 0 else None}")


def http(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        body = resp.read(300).decode(errors="replace")
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"HTTP {resp.status}")
    print(f"http ok: {url} -> {body.strip()[:200]}")


def main(argv):
    if len(argv) < 2 or argv[1] not in ("kafka", "cql", "http"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, arg = argv[1], (argv[2] if len(argv) > 2 else None)
    try:
        {"kafka": kafka, "cql": cql, "http": http}[kind](arg)
        return 0
    except Exception as exc:  # noqa: BLE001 - a probe reports any failure
        print(f"{kind} probe failed: {exc!r}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
