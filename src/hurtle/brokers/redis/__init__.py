"""The Redis brokers: ``redis://``, ``rediss://``, ``unix://`` and Redis Cluster (see ``broker.py``)."""

from hurtle.brokers.redis.broker import RedisBroker
from hurtle.brokers.redis.cluster import RedisClusterBroker

__all__ = ["RedisBroker", "RedisClusterBroker"]
