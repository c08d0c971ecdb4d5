"""Every message of the protocol, one module per actor family; importing this registers them."""

from . import (  # noqa: F401  (importing registers the types)
    control,
    files,
    handshake,
    launcher,
    lifecycle,
    master,
    scaler,
    store,
    worker,
)
