"""A real server process for layer-4 tests: one actor that answers Ping, on a TCP port.

Run as ``python echo_server.py READY_FILE [KEY_FILE]``. Like the server subcommands it
monkey-patches in its own process, serves on 127.0.0.1 port 0, writes the chosen port to
READY_FILE (atomically) and runs until SIGTERM or SIGINT.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from titan_actors.actors import Actor, ActorSystem, handles  # noqa: E402
from titan_actors.config_security import read_key_file  # noqa: E402
from titan_actors.wire.auth import KeyRing  # noqa: E402
from titan_actors.wire.messages.control import Ping, Pong  # noqa: E402
from titan_actors.wire.server import ActorServer  # noqa: E402


class EchoActor(Actor):
    @handles(Ping)
    def _ping(self, msg: Ping, sender) -> Pong:
        return Pong(msg.payload, "echo-server", f"pid {os.getpid()}")


def main() -> None:
    ready_file = sys.argv[1]
    keys = KeyRing(read_key_file(sys.argv[2])) if len(sys.argv) > 2 else None
    system = ActorSystem()
    server = ActorServer(system.spawn(EchoActor), keys=keys, identity="echo-server").start()
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    with open(ready_file + ".tmp", "w") as out:
        out.write(str(server.address[1]))
    os.replace(ready_file + ".tmp", ready_file)
    stop.wait()
    server.stop(timeout=2)
    system.stop_all(timeout=2)


if __name__ == "__main__":
    main()
