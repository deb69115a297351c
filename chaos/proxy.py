"""A loopback TCP proxy between device processes and the broker, one listening port
per route (device), whose links the controller can freeze (stop forwarding both ways
while keeping the sockets open, so the broker only notices by keepalive) and cut (close
them, so both ends notice at once).

One thread serves every route with a selector; the controller's calls are queued to it.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


@dataclass(eq=False)
class Link:
    client: socket.socket
    upstream: socket.socket | None = None


@dataclass(eq=False)
class Route:
    name: str
    listener: socket.socket
    frozen: bool = False
    links: list[Link] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]


class ChaosProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._selector = selectors.DefaultSelector()
        self._routes: dict[str, Route] = {}
        self._calls: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)
        self.links_opened = 0

    # -- the controller's side (any thread) ---------------------------------------------
    def start(self) -> ChaosProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake_w.send(b"\0")
        self._thread.join(5)

    def add_route(self, name: str) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(64)
        listener.setblocking(False)
        route = Route(name, listener)
        self._call(lambda: self._add(route))
        return route.port

    def freeze(self, name: str) -> None:
        self._call(lambda: self._set_frozen(self._routes[name], True))

    def thaw(self, name: str) -> None:
        self._call(lambda: self._set_frozen(self._routes[name], False))

    def cut(self, name: str) -> None:
        self._call(lambda: self._cut(self._routes[name]))

    def _call(self, fn: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._calls.append(run)
        self._wake_w.send(b"\0")
        if not done.wait(5):
            raise TimeoutError("the proxy thread did not answer")

    # -- the proxy thread ---------------------------------------------------------------------
    def _add(self, route: Route) -> None:
        self._routes[route.name] = route
        self._selector.register(route.listener, selectors.EVENT_READ, route)

    def _set_frozen(self, route: Route, frozen: bool) -> None:
        route.frozen = frozen
        for link in list(route.links):
            if frozen:
                self._unwatch(link)
            else:
                self._forward(route, link)

    def _cut(self, route: Route) -> None:
        for link in list(route.links):
            self._close(route, link)

    def _forward(self, route: Route, link: Link) -> None:
        """Start forwarding a link, connecting upstream first if not yet done."""
        if link.upstream is None:
            try:
                link.upstream = socket.create_connection((HOST, self.upstream_port), timeout=1)
            except OSError:
                self._close(route, link)  # the broker is down: the client sees a closed link
                return
            link.upstream.setblocking(False)
            link.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for sock, peer in ((link.client, link.upstream), (link.upstream, link.client)):
            try:
                self._selector.register(sock, selectors.EVENT_READ, (route, link, peer))
            except KeyError:
                pass  # already watched

    def _unwatch(self, link: Link) -> None:
        for sock in (link.client, link.upstream):
            if sock is not None:
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass

    def _close(self, route: Route, link: Link) -> None:
        self._unwatch(link)
        for sock in (link.client, link.upstream):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        if link in route.links:
            route.links.remove(link)

    def _accept(self, route: Route) -> None:
        try:
            client, _ = route.listener.accept()
        except BlockingIOError:
            return
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(client)
        route.links.append(link)
        self.links_opened += 1
        if not route.frozen:  # a frozen route holds new links silently, like a dead network
            self._forward(route, link)

    def _pump(self, route: Route, link: Link, sock: socket.socket, peer: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(route, link)
            return
        try:
            peer.setblocking(True)
            peer.settimeout(1.0)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close(route, link)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.5):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                elif isinstance(key.data, Route):
                    self._accept(key.data)
                else:
                    route, link, peer = key.data
                    if link in route.links:
                        self._pump(route, link, key.fileobj, peer)  # type: ignore[arg-type]
            while self._calls:
                self._calls.popleft()()
        for route in self._routes.values():
            self._cut(route)
            route.listener.close()
