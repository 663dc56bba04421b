"""contrib/'s Grafana dashboard and Prometheus alert rules read only what hurtle
exports, and docs/metrics.md describes all of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hurtle.observe.metrics.collector import EXPORTED

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "contrib" / "grafana" / "hurtle.json"
ALERTS = ROOT / "contrib" / "prometheus" / "hurtle-alerts.yml"
DOCS = ROOT / "docs" / "metrics.md"

NAME = re.compile(r"\bhurtle_[a-z_]+")
#: What the dashboard must show (each as the family PromQL reads).
SHOWN = {"hurtle_tasks_total", "hurtle_task_run_seconds_bucket", "hurtle_task_queue_wait_seconds_bucket",
         "hurtle_queue_messages", "hurtle_queue_oldest_age_seconds", "hurtle_worker_slots",
         "hurtle_worker_rss_bytes", "hurtle_worker_processes"}


def exprs(node: Any) -> Iterator[str]:
    """Every ``expr`` in a dashboard or a rules file, wherever it is nested."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from exprs(item)


def names(queries: list[str]) -> set[str]:
    return {name for query in queries for name in NAME.findall(query)}


def balanced(query: str) -> bool:
    depth = 0
    for char in query:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_the_dashboard_shows_tasks_queues_and_workers_from_exported_metrics_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(exprs(dashboard["panels"]))

    assert queries and all(balanced(query) for query in queries)
    assert names(queries) <= EXPORTED, names(queries) - EXPORTED
    assert names(queries) >= SHOWN, SHOWN - names(queries)
    assert any("histogram_quantile(0.95" in query for query in queries)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def test_the_alert_rules_are_valid_and_read_exported_metrics_only() -> None:
    rules = yaml.safe_load(ALERTS.read_text())

    (group,) = rules["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    for rule in alerts.values():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"]) and rule["labels"]["severity"]
        assert rule["annotations"]["summary"] and balanced(rule["expr"])
    queries = [rule["expr"] for rule in alerts.values()]
    assert names(queries) <= EXPORTED, names(queries) - EXPORTED
    assert "hurtle_queue_oldest_age_seconds" in alerts["HurtleQueueBackingUp"]["expr"]
    assert "absent(hurtle_worker_processes)" in alerts["HurtleNoWorker"]["expr"]
    assert "failed" in alerts["HurtleTaskFailureRateHigh"]["expr"]


def test_the_docs_describe_every_metric_hurtle_exports() -> None:
    docs = DOCS.read_text()
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in EXPORTED}

    assert {name for name in families if f"`{name}" not in docs} == set()
    assert "contrib/" in docs
