"""``hurtle dashboard``: web pages over what the broker already holds.

Queues (``Broker.stats``), worker processes (the worker registry), tasks (the
task history and deploy markers), one task by id (``observe.task_report``), dead
letters, profiles and schedules, read through the same functions as the CLI and
served as JSON to small static pages that draw them. No database of its own.
Needs the ``dashboard`` extra (starlette, uvicorn): ``server`` imports them, this
package's other modules do not.
"""
