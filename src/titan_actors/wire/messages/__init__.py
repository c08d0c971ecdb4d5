"""Every message of the protocol, one module per actor family; importing this registers them."""

from . import control, files, handshake, launcher, master, store, worker  # noqa: F401  (importing registers the types)
