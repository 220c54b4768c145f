"""deploy/kubernetes: valid against the Kubernetes schemas, and consistent with the image."""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import segue.config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))

#: The oldest Kubernetes the manifests are meant for (autoscaling/v2 and policy/v1 are GA from
#: 1.23 on; the oldest schemas kubernetes-validate ships that we check are 1.27's), and the newest.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def resources() -> dict[str, dict[str, Any]]:
    """Every resource of ``deploy/kubernetes``, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for resource in yaml.safe_load_all(path.read_text()):
            assert resource["kind"] not in found, f"{path.name}: a second {resource['kind']}"
            found[resource["kind"]] = resource
    return found


@pytest.fixture(scope="module")
def kinds() -> dict[str, dict[str, Any]]:
    return resources()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path, version):
    for resource in yaml.safe_load_all(path.read_text()):
        # strict: a field the schema does not know (a misspelt one) is an error too
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_refuses_a_misspelt_field_and_a_wrong_type(kinds):
    deployment = copy.deepcopy(kinds["Deployment"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["readinesProbe"] = container.pop("readinessProbe")
    hpa = copy.deepcopy(kinds["HorizontalPodAutoscaler"])
    hpa["spec"]["minReplicas"] = "2"

    for broken in (deployment, hpa):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_shipped_kinds(kinds):
    assert set(kinds) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }


def container_of(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_the_probes_are_the_open_inference_protocol_health_routes(kinds):
    container = container_of(kinds)
    port_names = {port["name"] for port in container["ports"]}
    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in port_names, probe
        paths[probe] = get["path"]
    assert paths == {
        "startupProbe": "/v2/health/ready",
        "readinessProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
    }


def test_a_stopping_pod_drains_within_its_grace_period(kinds):
    spec = kinds["Deployment"]["spec"]["template"]["spec"]
    command = container_of(kinds)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    # The drain after the sleep may take up to --body-timeout (30 s) for a slow body.
    assert int(command[1]) + 30 <= spec["terminationGracePeriodSeconds"]
    strategy = kinds["Deployment"]["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_the_service_the_autoscaler_and_the_budget_point_at_the_deployment(kinds):
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = kinds["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= {
        p["name"] for p in container_of(kinds)["ports"]
    }
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    # A CPU utilization target is a share of the CPU requested.
    assert container_of(kinds)["resources"]["requests"]["cpu"]
    assert container_of(kinds)["resources"]["limits"]["memory"]


def test_the_configuration_is_environment_variables_the_image_reads(kinds):
    container = container_of(kinds)
    maps = {ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref}
    assert maps == {kinds["ConfigMap"]["metadata"]["name"]}
    names = set(kinds["ConfigMap"]["data"]) | {item["name"] for item in container["env"]}
    settings = set(re.findall(r"SEGUE_[A-Z_]+", inspect.getsource(segue.config)))
    assert names <= entrypoint_variables() | settings
    assert "SEGUE_MODEL_URI" in names and "SEGUE_STORE_URI" in names


def test_the_ports_and_user_agree_with_the_image(kinds):
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (exposed,) = re.findall(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE)
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    container = container_of(kinds)
    template = kinds["Deployment"]["spec"]["template"]
    (port,) = container["ports"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert str(port["containerPort"]) == exposed == env["SEGUE_PORT"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == exposed
    security = template["spec"]["securityContext"]
    assert (str(security["runAsUser"]), str(security["runAsGroup"])) == user
    # The root filesystem is read-only: SEGUE_HOME and /tmp are volumes.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (home,) = re.findall(r"SEGUE_HOME=(\S+)", dockerfile)
    assert {m["mountPath"] for m in container["volumeMounts"]} == {home, "/tmp"}


def entrypoint_variables() -> set[str]:
    """The ``SEGUE_*`` variables ``deploy/entrypoint.sh`` turns into ``segue serve`` options."""
    lines = (DEPLOY / "entrypoint.sh").read_text().splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    flags = re.findall(r"\b([A-Z_]+):--[a-z-]+", code)  # NAME:--flag, read as SEGUE_NAME
    return {f"SEGUE_{name}" for name in flags} | set(re.findall(r"SEGUE_[A-Z_]+", code))
