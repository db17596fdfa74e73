#!/usr/bin/env python3
"""Slow and idle clients against an edge server: what each gets and how long the server keeps it.

    python scripts/slow_clients.py http://127.0.0.1:8080 [--sockets 600]

Partial headers, a trickled body, an idle keep-alive connection and many silent sockets. Each probe
reports the status the server answered (if any) and the seconds until it closed the connection. Only
loopback addresses are accepted: this is a test tool, not a load generator for other machines.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit


@dataclass
class Outcome:
    probe: str
    status: int | None  # the HTTP status the server answered, None if it closed without one
    closed_after_s: float | None  # None: still open when the probe gave up
    detail: str = ""


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise SystemExit(f"slow_clients: only loopback servers, not {host}")
    return host, parts.port or 80


def _connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=5)


def _read_until_closed(sock: socket.socket, started: float, give_up_s: float) -> tuple[bytes, float | None]:
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < give_up_s:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return received, time.monotonic() - started
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, None


def _status(response: bytes) -> int | None:
    line = response.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") and line[1].isdigit() else None


def partial_headers(address: tuple[str, int], give_up_s: float = 30, pace_s: float = 0.5) -> Outcome:
    """Slowloris: header lines that never end, one every ``pace_s`` seconds."""
    with _connect(address) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: edge\r\n")
        sock.settimeout(0.1)
        number = 0
        while time.monotonic() - started < give_up_s:
            try:
                sock.sendall(f"X-Slow-{number}: {'a' * 8}\r\n".encode())
            except OSError:
                break
            number += 1
            try:
                if sock.recv(65536, socket.MSG_PEEK):
                    break
            except socket.timeout:
                pass
            except OSError:
                break
            time.sleep(pace_s)
        response, closed = _read_until_closed(sock, started, give_up_s)
    return Outcome("partial headers", _status(response), closed, f"{number} header lines sent")


def trickled_body(address: tuple[str, int], give_up_s: float = 30, pace_s: float = 0.5) -> Outcome:
    """Complete headers, then a body of 10,000 declared bytes sent one byte at a time."""
    with _connect(address) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: edge\r\ncontent-type: application/json\r\n"
                     b"content-length: 10000\r\n\r\n")
        sock.settimeout(0.1)
        sent = 0
        while time.monotonic() - started < give_up_s:
            try:
                sock.sendall(b" ")
                sent += 1
                if sock.recv(65536, socket.MSG_PEEK):
                    break
            except socket.timeout:
                pass
            except OSError:
                break
            time.sleep(pace_s)
        response, closed = _read_until_closed(sock, started, give_up_s)
    body = response.split(b"\r\n\r\n", 1)[-1]
    return Outcome("trickled body", _status(response), closed, f"{sent} bytes sent; {body[:200].decode(errors='replace')}")


def idle_keep_alive(address: tuple[str, int], give_up_s: float = 60) -> Outcome:
    """One complete request, then silence on the kept-alive connection."""
    with _connect(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: edge\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        started = time.monotonic()
        rest, closed = _read_until_closed(sock, started, give_up_s)
    return Outcome("idle keep-alive", _status(first), closed, "seconds counted from the end of the answer")


def many_sockets(address: tuple[str, int], count: int, give_up_s: float = 30) -> list[Outcome]:
    """``count`` connections that send nothing: how many are refused at once, and when the rest close."""
    sockets = []
    for _ in range(count):
        try:
            sockets.append(_connect(address))
        except OSError:
            break
    started = time.monotonic()
    refused, closed_at, still_open = 0, [], 0
    for sock in sockets:
        sock.settimeout(0.05)
    pending = set(range(len(sockets)))
    while pending and time.monotonic() - started < give_up_s:
        for index in list(pending):
            try:
                data = sockets[index].recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 503"):
                refused += 1
            pending.discard(index)
            closed_at.append(time.monotonic() - started)
        time.sleep(0.05)
    still_open = len(pending)
    for sock in sockets:
        sock.close()
    return [Outcome("many sockets", 503 if refused else None, max(closed_at) if closed_at and not still_open else None,
                    json.dumps({"opened": len(sockets), "refused_503": refused, "still_open": still_open}))]


def run_all(base_url: str, sockets: int) -> list[Outcome]:
    address = _address(base_url)
    return [partial_headers(address), trickled_body(address), idle_keep_alive(address),
            *many_sockets(address, sockets)]


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8080 (loopback only)")
    parser.add_argument("--sockets", type=int, default=600, help="silent sockets to open (default 600)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = configure_parser(argparse.ArgumentParser(description=__doc__.split("\n\n")[0])).parse_args(argv)
    for outcome in run_all(args.url, args.sockets):
        print(json.dumps(asdict(outcome)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
