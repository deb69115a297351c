"""What the kit does about the platform it runs on, in one place.

Streamlit binds its listening socket itself, with `socket.socket(family)`: protocol 0,
not IPPROTO_TCP. asyncio sets TCP_NODELAY only on connections whose protocol is
IPPROTO_TCP, so every connection Streamlit accepts keeps Nagle's algorithm, and a second
small WebSocket frame written before the first is acknowledged waits for the browser's
delayed ACK: 40 ms on Linux (measured: a tab's join frames arrived 48 ms after its
welcome). Accepted connections inherit TCP_NODELAY from their listening socket, so the
kit sets it on the process's listening TCP sockets once, at start-up.
"""

from __future__ import annotations

import logging
import os
import socket
import stat

log = logging.getLogger(__name__)


def disable_nagle_on_listening_sockets() -> int:
    """Set TCP_NODELAY on every listening TCP socket of this process; how many. Where
    the process's descriptors cannot be listed (not Linux), nothing is done."""
    try:
        descriptors = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    done = 0
    for fd in descriptors:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # closed meanwhile, or not ours to touch
        with sock:
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    done += 1
            except OSError:
                continue
    log.debug("TCP_NODELAY set on %d listening sockets", done)
    return done
