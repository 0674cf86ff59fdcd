"""deploy/: the Grafana dashboard and the Prometheus alert rules refer only to metrics that
courier exports, and promtool checks the rules and proves each alert fires."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from courier.metrics import CourierMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "courier.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
OBSERVABILITY_DOC = ROOT / "docs" / "observability.md"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself writes per scrape target
_METRIC = re.compile(r"\b((?:courier_|up\b)[a-z0-9_]*)")


def exported_names() -> set[str]:
    """Every sample name courier's registry can expose (counters' _total, histograms' parts)."""
    metrics = CourierMetrics()
    metrics.attempt("d", "succeeded", 0.01)  # labelled families show their samples
    for outcome in ("succeeded",):
        metrics.attempts_total.labels(outcome)
        metrics.deliveries_total.labels(outcome)
    metrics.queue_depth.labels("pending")
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _names_in(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def test_dashboard_panels_use_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    exported = exported_names() | PROMETHEUS_OWN
    titles = []
    for panel in dashboard["panels"]:
        titles.append(panel["title"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = _names_in(target["expr"])
            assert used, target["expr"]
            assert used <= exported, (panel["title"], used - exported)
    wanted = ("outcome", "Retries", "Dead letters", "Queue depth", "Oldest due", "Attempt "
              "duration", "latency", "by destination")  # fmt: skip
    for word in wanted:
        assert any(word.lower() in t.lower() for t in titles), word


def test_alert_rules_use_only_exported_metrics_and_are_documented() -> None:
    groups = yaml.safe_load(RULES.read_text("utf-8"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["alert"] for r in rules} == {
        "CourierDeadLettersRising",
        "CourierOldestDueTooOld",
        "CourierDestinationFailureRatioHigh",
        "CourierNoWorkerAlive",
        "CourierSecretKeyCannotDecrypt",
    }
    exported = exported_names() | PROMETHEUS_OWN
    doc = OBSERVABILITY_DOC.read_text("utf-8")
    for rule in rules:
        assert _names_in(rule["expr"]) <= exported, rule["alert"]
        assert f"### {rule['alert']}" in doc, f"docs/observability.md must explain {rule['alert']}"
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; .ci/run installs it)")
    return found


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_proves_each_alert_fires() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text("utf-8")))
    rules = yaml.safe_load(RULES.read_text("utf-8"))["groups"][0]["rules"]
    assert tested == {r["alert"] for r in rules}, "every alert needs a promtool test"
