"""The RabbitMQ broker: ``amqp://`` and ``amqps://`` (see ``broker.py``)."""

from hurtle.brokers.amqp.broker import AMQPBroker

__all__ = ["AMQPBroker"]
