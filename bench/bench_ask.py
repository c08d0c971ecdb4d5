"""Ask round trip over a real loopback connection, against a raw socket echo.

Run ``python bench/bench_ask.py``. Both measured in this process on gevent, in the same run:

* baseline: a gevent TCP echo server and client exchanging a 16-byte message, one at a time;
* ours: ``RemoteRef.ask(Ping)`` to an actor behind an ``ActorServer`` (handshake done, no key),
  one at a time (latency), and 64 concurrent askers (throughput);
* ours with a cluster key and sealed frames (every frame MAC'd), one at a time.

The ratio ours/baseline is the cost of frames, codec, mailbox and actor dispatch over a bare
socket round trip. :func:`main` returns the figures.
"""

from __future__ import annotations

import os
import time

import gevent
from gevent import socket
from gevent.server import StreamServer

from titan_actors.actors import Actor, ActorSystem, handles
from titan_actors.config import SealFrames
from titan_actors.wire.auth import KeyRing
from titan_actors.wire.messages.control import Ping, Pong
from titan_actors.wire.server import ActorServer, dial

ROUNDS = 3000
CONCURRENT = 64


class _Echo(Actor):
    @handles(Ping)
    def _ping(self, msg: Ping) -> Pong:
        return Pong(msg.payload, "bench", "")


def _raw_echo_us(rounds: int) -> float:
    def handle(sock, _address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(64)
            if not data:
                return
            sock.sendall(data)
    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    client = socket.create_connection(server.address)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 16
    start = time.perf_counter()
    for _ in range(rounds):
        client.sendall(message)
        got = 0
        while got < len(message):
            got += len(client.recv(64))
    elapsed = time.perf_counter() - start
    client.close()
    server.stop()
    return elapsed / rounds * 1e6


def _ask_us(rounds: int, keys: KeyRing | None = None) -> tuple[float, float]:
    system = ActorSystem()
    server = ActorServer(system.spawn(_Echo), keys=keys,
                         seal_frames=SealFrames.ALWAYS if keys else SealFrames.AUTO).start()
    endpoint = dial(*server.address, keys=keys, timeout=5)
    remote = endpoint.remote
    ping = Ping(b"x" * 16)
    for _ in range(200):
        remote.ask(ping, timeout=5)
    start = time.perf_counter()
    for _ in range(rounds):
        remote.ask(ping, timeout=5)
    latency = (time.perf_counter() - start) / rounds * 1e6

    def asker(count: int) -> None:
        for _ in range(count):
            remote.ask(ping, timeout=10)
    per_asker = max(rounds // CONCURRENT, 10)
    start = time.perf_counter()
    gevent.joinall([gevent.spawn(asker, per_asker) for _ in range(CONCURRENT)], raise_error=True)
    throughput = per_asker * CONCURRENT / (time.perf_counter() - start)
    endpoint.close()
    server.stop(timeout=2)
    system.stop_all(timeout=2)
    return latency, throughput


def main() -> dict[str, float]:
    """Measure and return the figures (microseconds per round trip, asks per second)."""
    raw = min(_raw_echo_us(ROUNDS) for _ in range(3))
    ask, asks_per_s = min(_ask_us(ROUNDS) for _ in range(3))
    sealed, sealed_per_s = min(_ask_us(ROUNDS, KeyRing(os.urandom(32))) for _ in range(2))
    return {"raw_echo_us": raw, "ask_us": ask, "ratio": ask / raw,
            "sealed_ask_us": sealed, "sealed_ratio": sealed / raw,
            "concurrent_asks_per_s": asks_per_s, "sealed_concurrent_asks_per_s": sealed_per_s}


def _print(r: dict[str, float]) -> None:
    print(f"raw socket echo round trip      {r['raw_echo_us']:8.1f} us   (baseline)")
    print(f"ask round trip                  {r['ask_us']:8.1f} us   ratio {r['ratio']:.2f}")
    print(f"ask round trip, sealed frames   {r['sealed_ask_us']:8.1f} us   ratio "
          f"{r['sealed_ratio']:.2f}")
    print(f"{CONCURRENT} concurrent askers            {r['concurrent_asks_per_s']:8.0f} asks/s "
          f"(sealed {r['sealed_concurrent_asks_per_s']:.0f})")


if __name__ == "__main__":
    _print(main())
