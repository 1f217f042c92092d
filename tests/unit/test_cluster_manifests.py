"""The cluster descriptions in infra/cluster, checked offline: the Kubernetes manifests against the Kubernetes
schemas (kubernetes-validate, strict), the settings names they set against Settings, and HAProxy's
configuration (`haproxy -c`) with the variables that the local tier (ops/serving_tier.py) and the manifests
give it."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from nightshift.settings import Settings
from ops.serving_tier import HAPROXY_CFG, ServingTier

CLUSTER = Path(__file__).resolve().parents[2] / "infra" / "cluster"
K8S_VERSION = "1.37.0"


def manifests() -> list[dict[str, Any]]:
    """Every document of every manifest kustomization.yaml applies."""
    resources = yaml.safe_load((CLUSTER / "kustomization.yaml").read_text())["resources"]
    return [doc for name in resources for doc in yaml.safe_load_all((CLUSTER / name).read_text()) if doc]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])  # type: ignore[no-any-return]


def env_names(doc: dict[str, Any]) -> set[str]:
    names = {e["name"] for c in containers(doc) for e in c.get("env", [])}
    if doc["kind"] == "ConfigMap":
        names |= set(doc["data"])
    return names


def test_every_manifest_is_valid_kubernetes() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"StatefulSet", "Deployment", "Service", "ConfigMap"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_strict_check_catches_a_misspelt_field() -> None:
    doc = copy.deepcopy(next(d for d in manifests() if d["kind"] == "StatefulSet"))
    doc["spec"]["replica"] = doc["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_manifests_use_the_suites_own_settings_names() -> None:
    names = set().union(*(env_names(d) for d in manifests()))
    nightshift = {n for n in names if n.startswith("NIGHTSHIFT_")}
    assert nightshift >= {"NIGHTSHIFT_STORE_URL", "NIGHTSHIFT_MLFLOW_TRACKING_URI", "NIGHTSHIFT_DATASET"}
    fields = {f"NIGHTSHIFT_{name.upper()}" for name in Settings.model_fields}
    assert nightshift <= fields, f"not settings: {sorted(nightshift - fields)}"
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in manifests() if d["kind"] == "StatefulSet"}
    assert replicas == {"lookup": 2, "realtime": 2, "airflow-worker": 2, "airflow-gpu-worker": 0, "spark-worker": 2}


def test_every_airflow_option_set_is_one_airflow_knows() -> None:
    """AIRFLOW__<SECTION>__<KEY> in the manifests, the cluster topology and the local stack: a misspelt or moved
    option (Airflow 3 moved many) is silently ignored by Airflow, so it is caught here."""
    from airflow.configuration import conf

    conf.load_providers_configuration()  # the Celery provider's [celery] section
    known = {f"AIRFLOW__{section.upper()}__{key.upper()}" for section, spec in conf.configuration_description.items()
             for key in spec.get("options", {})}
    root = CLUSTER.parents[1]
    resources = yaml.safe_load((CLUSTER / "kustomization.yaml").read_text())["resources"]
    texts = [(path).read_text() for path in [*(CLUSTER / name for name in resources), root / "ops" / "cluster.py",
                                             root / "infra" / "local" / "stack.sh"]]
    used = set().union(*(re.findall(r"AIRFLOW__[A-Z_]+?__[A-Z_]+", text) for text in texts))
    assert "AIRFLOW__CORE__EXECUTOR" in used
    assert used <= known, f"not Airflow options: {sorted(used - known)}"
    assert "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL" not in known  # (Airflow 3 moved it to [dag_processor])


def haproxy_variables() -> set[str]:
    return set(re.findall(r"\$\{(NS_[A-Z0-9_]+)\}", HAPROXY_CFG.read_text()))


def test_haproxy_gets_every_variable_its_configuration_reads() -> None:
    wanted = haproxy_variables()
    local = set(ServingTier(Path("/nonexistent"), {}).haproxy_env())
    haproxy = next(d for d in manifests() if d["metadata"]["name"] == "haproxy")
    assert wanted <= local, sorted(wanted - local)
    assert wanted <= env_names(haproxy), sorted(wanted - env_names(haproxy))
    kustomization = yaml.safe_load((CLUSTER / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (CLUSTER / resource).exists()
    assert kustomization["configMapGenerator"][0]["files"] == ["haproxy.cfg"]


@pytest.mark.parametrize("resolvers", [False, True])
def test_haproxy_accepts_its_configuration(resolvers: bool) -> None:
    env = ServingTier(Path("/nonexistent"), {}).haproxy_env()
    if resolvers:  # as on Kubernetes: replicas by name, re-resolved
        env |= {"NS_DNS_RESOLVERS": "1", "NS_LOOKUP1": "localhost:8000"}
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"  # installed by `stack.sh install` (as root)
    check = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    broken = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CFG)], env={**env, "NS_LOOKUP1": "nowhere:x"},
                            capture_output=True, text=True)
    assert broken.returncode != 0  # the check can fail
