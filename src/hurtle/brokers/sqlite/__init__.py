"""The SQLite broker: ``sqlite:///relative.db`` or ``sqlite:////abs.db`` (see ``broker.py``)."""

from hurtle.brokers.sqlite.broker import SQLiteBroker

__all__ = ["SQLiteBroker"]
