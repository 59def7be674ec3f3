"""Kubernetes manifests (deploy/): every kustomize output validates against the Kubernetes
schemas, CRD objects are checked structurally, and the probes, ports, draining and autoscaling
agree with the service.

Rendering uses ``kubectl kustomize`` or ``kustomize`` where installed (and then also checks the
in-test renderer, ``kustomize_render.py``, against it), else the in-test renderer alone.
Schema validation needs pip ``kubernetes-validate`` (skipped with a reason without it).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import kustomize_render
from tests.deploy.deploy_common import (
    ADAPTER_CONFIGMAP,
    ALERTS,
    DEPLOY,
    KUSTOMIZATIONS,
    adapter_rules,
    check_tts_env,
    load_yaml,
    routes,
    settings_fields,
)

Obj = dict[str, Any]
#: Kubernetes versions validated against: the oldest supported here, and the newest schemas.
K8S_VERSIONS = ("1.29.0", "latest")
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
IDS = [str(p.relative_to(DEPLOY)) for p in KUSTOMIZATIONS]


@cache
def rendered(directory: Path) -> tuple[Obj, ...]:
    return tuple(kustomize_render.render(directory))


def by_kind(objects: tuple[Obj, ...], kind: str) -> Obj:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


def _kustomize_cli() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_renderer_matches_kustomize(directory: Path) -> None:
    cli = _kustomize_cli()
    if cli is None:
        pytest.skip("neither `kustomize` nor `kubectl` is installed; the in-test renderer is used alone")
    run = subprocess.run([*cli, str(directory)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    theirs = [d for d in yaml.safe_load_all(run.stdout) if d]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(theirs, key=key) == sorted(rendered(directory), key=key)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_every_object_validates(directory: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    objects = rendered(directory)
    assert objects
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            check_crd(obj)
            continue
        for version in K8S_VERSIONS:
            v = kv.latest_version() if version == "latest" else version
            try:
                kv.validate(obj, v, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {v}): {path}: {exc.message}")


def check_crd(obj: Obj) -> None:
    """Structural checks of the Prometheus Operator objects (no schema ships for CRDs)."""
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert obj["metadata"]["name"]
    if obj["kind"] == "ServiceMonitor":
        spec = obj["spec"]
        assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
        assert spec["selector"]["matchLabels"]
        for ep in spec["endpoints"]:
            assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
            assert ep["path"].startswith("/") and isinstance(ep["port"], str)
    else:
        for group in obj["spec"]["groups"]:
            assert group["name"] and group["rules"]
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
                assert ("alert" in rule) != ("record" in rule) and rule["expr"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS[:2], ids=IDS[:2])
def test_manifests_agree_with_the_service(directory: Path) -> None:
    objects = rendered(directory)
    deploy, service = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    pod = deploy["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    check_tts_env(env, f"{directory.name} Deployment")
    fields = settings_fields()
    assert "command" not in container and "args" not in container, "the image's `wavernn-tts serve` runs"

    # ports: the container listens on TTS_PORT, on every interface
    port = int(env.get("TTS_PORT", fields["TTS_PORT"]))
    assert env.get("TTS_HOST", "0.0.0.0") == "0.0.0.0"
    (cport,) = container["ports"]
    assert cport["containerPort"] == port
    http = cport["name"]

    # probes: liveness /health, readiness /ready, on that port, real GET routes
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": http}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": http}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    for path in ("/health", "/ready"):
        assert "GET" in routes()[path]

    # draining: the endpoint goes first (preStop sleep), then SIGTERM drains, before SIGKILL
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and int(sleep[1]) >= 5
    drain = float(env.get("TTS_DRAIN_TIMEOUT_S", fields["TTS_DRAIN_TIMEOUT_S"]))
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > drain and grace >= int(sleep[1]) + drain + 5, "the grace period covers preStop + drain"
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    # resources: requests and limits; a GPU per replica in the GPU overlay
    res = container["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
    if directory.name == "gpu":
        assert res["limits"]["nvidia.com/gpu"] == "1" and env["TTS_DEVICE"] == "cuda"
        assert container["image"].endswith("-gpu")
    else:
        assert "nvidia.com/gpu" not in res["limits"] and env["TTS_DEVICE"] == "cpu"
    securitycontext = pod["spec"]["securityContext"]
    assert securitycontext["runAsNonRoot"] and securitycontext["runAsUser"] != 0

    # selectors: Service, PDB and ServiceMonitor select these pods; the monitor scrapes /metrics
    labels = pod["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (sport,) = service["spec"]["ports"]
    assert sport["targetPort"] in (http, port)
    pdb = by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    monitor = by_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == sport["name"] and endpoint["path"] == "/metrics" and "GET" in routes()["/metrics"]

    # autoscaling: the Deployment, on per-pod metrics that prometheus-adapter serves
    hpa = by_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deploy["metadata"]["name"]}
    assert "replicas" not in deploy["spec"], "the autoscaler owns the replica count"
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    served = {r["name"]["as"] for r in adapter_rules()}
    names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert names and set(names) <= served and "tts_queue_depth" in names
    assert all(m["type"] != "Resource" for m in hpa["spec"]["metrics"]), "not on CPU (docs/deploy.md)"


def test_gpu_overlay_changes_only_what_it_should() -> None:
    base, gpu = rendered(DEPLOY / "base"), rendered(DEPLOY / "overlays" / "gpu")
    assert [(o["kind"], o["metadata"]["name"]) for o in base] == [(o["kind"], o["metadata"]["name"]) for o in gpu]
    env = lambda objs: {e["name"]: e for e in by_kind(objs, "Deployment")["spec"]["template"]["spec"]  # noqa: E731
                        ["containers"][0]["env"]}
    assert set(env(base)) == set(env(gpu)), "env entries merge by name"
    assert by_kind(gpu, "HorizontalPodAutoscaler")["spec"]["metrics"][1]["pods"]["target"]["averageValue"] == "3"


def test_alert_rules_are_the_same_in_compose_and_kubernetes() -> None:
    rule = load_yaml(DEPLOY / "base" / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"]


def test_adapter_configmap_and_helm_values_hold_the_same_rules() -> None:
    config = yaml.safe_load(load_yaml(ADAPTER_CONFIGMAP)["data"]["config.yaml"])
    assert config["rules"] == adapter_rules()
    for rule in adapter_rules():
        overrides = rule["resources"]["overrides"]
        assert overrides == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]


def test_renderer_applies_patches() -> None:
    base = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "b", "image": "b:1"}]}}}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "B", "value": "3"}]}]}}}}
    merged = kustomize_render.strategic_merge(base, patch)
    assert merged["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]}, {"name": "b", "image": "b:1"}]
    assert kustomize_render.strategic_merge({"a": 1, "b": 2}, {"b": None}) == {"a": 1}
    obj: Obj = {"spec": {"items": [1, 2], "n": 1}}
    kustomize_render.apply_json6902(obj, [{"op": "add", "path": "/spec/items/-", "value": 3},
                                          {"op": "replace", "path": "/spec/n", "value": 2},
                                          {"op": "remove", "path": "/spec/items/0"}])
    assert obj == {"spec": {"items": [2, 3], "n": 2}}
    with pytest.raises(ValueError, match="no such member"):
        kustomize_render.apply_json6902(obj, [{"op": "replace", "path": "/spec/missing", "value": 1}])
