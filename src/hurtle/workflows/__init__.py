"""Workflows: chains, groups and chords of tasks (``hurtle.chain``, ``hurtle.group``,
``hurtle.chord``, ``Task.s``), carried step to step in the messages themselves and
counted in the broker's store (docs/workflows.md).

Modules: ``wire`` (the ``flow`` envelope field), ``canvas`` (the typed API),
``plan`` (nodes to messages), ``advance`` (what a worker does when a workflow
step ends), ``handle`` (``FlowHandle``), ``tree`` (a workflow's state for
``hurtle status task``).
"""
