#!/usr/bin/env python3
"""Opens N HTTP keep-alive connections to HOST:PORT and holds them all open, each from one of the client
source addresses (taken in turn, bound with IP_BIND_ADDRESS_NO_PORT so the client side never runs out of
ports itself). Each sends one GET and must get `HTTP/1.1 200`. Prints "ok=N failed=N first_failure=..."
and exits 0. Bounded: 3 s per answer; everything closed at exit.
usage: holdclients.py HOST PORT N SOURCE[,SOURCE...]"""
import socket, sys

IP_BIND_ADDRESS_NO_PORT = 24
host, port, n, sources = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
held, ok, failed, first = [], 0, 0, ""
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((sources[i % len(sources)], 0))
    s.settimeout(3)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        answer = s.recv(4096)
        if answer.startswith(b"HTTP/1.1 200"):
            ok += 1
        else:
            failed += 1
            first = first or (answer.split(b"\r\n")[0].decode(errors="replace") or "closed without an answer")
    except OSError as e:
        failed += 1
        first = first or str(e)
    held.append(s)
print(f"ok={ok} failed={failed} first_failure={first!r}")
for s in held:
    s.close()
