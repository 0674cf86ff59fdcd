#!/usr/bin/env python3
"""Lint and render deploy/helm/courier offline, then check every manifest (make lint-chart).

For each values file in the chart's ci/ folder:
  1. Helm's own lint (helm-python-sdk: Helm's library, no helm binary, no cluster), strict,
     for each Kubernetes version in KUBE_VERSIONS; a warning or an error fails;
  2. a render as a fresh install, every manifest parsed, and each one checked against the
     Kubernetes OpenAPI schemas of those versions with kubernetes-validate in strict mode
     (unknown fields fail). Custom resources (the ServiceMonitor) have no schema there:
     they get the structural checks below instead;
  3. what the deployment relies on: probes on /healthz and /readyz, the migration Job as a
     pre-install/pre-upgrade hook after the Secret, a PodDisruptionBudget per Deployment,
     non-root pods.
And once with the chart's bare defaults: the render must refuse, naming secret.secretKey.

Exits 0 when everything passes, 1 otherwise, printing one line per finding.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "courier"
KUBE_VERSIONS = ("1.29.0", "1.33.0", kubernetes_validate.latest_version())
RELEASE = "courier"
NAMESPACE = "courier"
WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def manifests(values: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(text):
            if doc:
                yield template, doc


def lint_findings(values: dict[str, Any]) -> list[str]:
    findings = []
    for version in KUBE_VERSIONS:
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}")
        findings += [f"helm lint ({version}): {e}" for e in report.get("errors") or []]
        findings += [
            f"helm lint ({version}): {m['path']}: {m['error']}"
            for m in report.get("messages") or []
            if m["severity"] >= WARNING
        ]
    return findings


def schema_findings(template: str, doc: dict[str, Any]) -> list[str]:
    kind = (doc.get("apiVersion"), doc.get("kind"))
    if kind in CUSTOM_KINDS:
        spec = doc.get("spec") or {}
        ok = spec.get("selector", {}).get("matchLabels") and spec.get("endpoints")
        return [] if ok else [f"{template}: {kind[1]} needs spec.selector and spec.endpoints"]
    findings = []
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            findings.append(f"{template}: {kind[1]} ({version}) at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            findings.append(f"{template}: no Kubernetes {version} schema for {kind}")
    return findings


def shape_findings(docs: list[dict[str, Any]], values: dict[str, Any]) -> list[str]:
    """What the deployment relies on, beyond what the schemas can say."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    findings = []
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    api = deployments.get(f"{RELEASE}-api")
    worker = deployments.get(f"{RELEASE}-worker")
    if api is None or worker is None:
        return [f"expected {RELEASE}-api and {RELEASE}-worker Deployments, got {list(deployments)}"]
    api_container = api["spec"]["template"]["spec"]["containers"][0]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        if api_container.get(probe, {}).get("httpGet", {}).get("path") != path:
            findings.append(f"the API's {probe} does not GET {path}")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            findings.append(f"{name}: pods may run as root")
        env = {e["name"] for e in pod["containers"][0].get("env", [])}
        missing = {"COURIER_DATABASE_URL", "COURIER_SECRET_KEY"} - env
        if missing:
            findings.append(f"{name}: no {', '.join(sorted(missing))}")
        budgets = [
            p
            for p in by_kind.get("PodDisruptionBudget", [])
            if p["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        ]
        component = name.removeprefix(f"{RELEASE}-")
        wanted = values.get(component, {}).get("podDisruptionBudget", {}).get("enabled", True)
        if bool(budgets) != wanted:
            findings.append(f"{name}: PodDisruptionBudget present={bool(budgets)}, want {wanted}")
    jobs = by_kind.get("Job", [])
    if values.get("migrate", {}).get("enabled", True):
        hooks = [j["metadata"].get("annotations", {}).get("helm.sh/hook", "") for j in jobs]
        if hooks != ["pre-install,pre-upgrade"]:
            findings.append(f"the migration Job is not a pre-install,pre-upgrade hook: {hooks}")
        for secret in by_kind.get("Secret", []):
            weight = int(secret["metadata"].get("annotations", {}).get("helm.sh/hook-weight", 0))
            if weight >= 0:
                findings.append("the chart's Secret is not created before the migration Job")
    elif jobs:
        findings.append("migrate.enabled=false still renders a Job")
    monitors = by_kind.get("ServiceMonitor", [])
    if bool(monitors) != values.get("serviceMonitor", {}).get("enabled", False):
        findings.append(f"ServiceMonitor rendered={bool(monitors)} against serviceMonitor.enabled")
    return findings


def check_values_file(path: Path) -> list[str]:
    values = yaml.safe_load(path.read_text()) or {}
    findings = lint_findings(values)
    docs: list[dict[str, Any]] = []
    for template, doc in manifests(values):
        docs.append(doc)
        findings += schema_findings(template, doc)
    findings += shape_findings(docs, values)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    print(f"{path.name}: {len(docs)} manifests ({', '.join(kinds)})")
    return findings


def check_defaults_refuse() -> list[str]:
    """The bare defaults lack the credentials: the render must say which value is missing."""
    try:
        list(manifests({}))
    except helm.HelmRenderError as exc:
        if "secret.secretKey is required" in str(exc):
            print("defaults: the render refuses without secret.secretKey, as it should")
            return []
        return [f"defaults: the render failed without naming secret.secretKey: {exc}"]
    return ["defaults: the render succeeded without credentials"]


def main() -> int:
    print(f"chart {CHART.name}: Helm {helm.helm_sdk_version()}, Kubernetes {KUBE_VERSIONS}")
    findings = check_defaults_refuse()
    values_files = sorted((CHART / "ci").glob("*.yaml"))
    if not values_files:
        findings.append(f"no values files in {CHART / 'ci'}")
    for path in values_files:
        findings += [f"{path.name}: {f}" for f in check_values_file(path)]
    for finding in findings:
        print(f"FAIL {finding}")
    print(f"chart lint: {'FAILED' if findings else 'passed'} ({len(findings)} findings)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
