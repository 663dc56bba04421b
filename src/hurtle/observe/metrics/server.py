"""``/metrics``, served from the supervisor by prometheus-client's own HTTP server.

The server listens before any fork (a port in use is one line at the command
line, not a worker that runs unseen) and answers on daemon threads, from a
registry of its own that holds one collector: nothing else a user's app
registers in prometheus-client's default registry shows here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

from hurtle.observe.metrics.collector import HurtleCollector
from hurtle.observe.metrics.inbox import Inbox
from hurtle.observe.metrics.totals import Totals

DEFAULT_HOST = "127.0.0.1"  # loopback: exposing /metrics further is a choice made with --metrics-host


class MetricsServer:
    """The supervisor's totals, their inbox, and the HTTP server that shows them."""

    def __init__(self, host: str, port: int) -> None:
        """Listen on ``host``:``port`` now; raises ``OSError`` (a port in use, an unknown host)."""
        self.totals = Totals()
        self.inbox = Inbox(self.totals)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(HurtleCollector(self.totals))
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = int(self._server.server_port)

    def close_in_child(self) -> None:
        """In a child just forked: its copies of the listening socket and the pipes' read ends,
        so the port is free the moment the supervisor stops."""
        self._server.socket.close()
        self.inbox.close_in_child()

    def close(self) -> None:
        """Stop serving and read the pipes a last time (the supervisor is stopping)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
        self.inbox.close()
