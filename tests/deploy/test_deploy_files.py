"""The deployment files (deploy/): the compose file, parley.toml, the Helm chart, Prometheus and Grafana.

What always runs needs only PyYAML and Parley itself: the files parse, agree with each other and with Parley's
settings and metric names. Where a tool is installed, the files also go through it: `docker-compose config`
(Debian's docker-compose) or `docker compose config`; the Compose Specification's JSON schema (vendored by
check-jsonschema); Helm's own lint and render (helm-python-sdk, Helm's Go SDK without the helm binary);
Kubernetes' API schemas (kubernetes-validate). Each of these skips, saying why, when its package is missing.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PARLEY_TOML = DEPLOY / "parley.toml"
CHART = DEPLOY / "helm" / "parley"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "parley.json"
METRICS_PY = ROOT / "src" / "parley" / "observability" / "metrics.py"

REPLICAS = ("parley-1", "parley-2")
VLLM_SERVICES = ("vllm", "vllm-cpu")
DATA_DIR = "/var/lib/parley"
METRICS_PORT = "9100"

# Metrics the upstream engine and the router add (engines/upstream/), allowed in the dashboard beside metrics.py's.
UPSTREAM_METRICS = {
    "parley_upstream_requests_total": {"engine", "replica", "outcome"},
    "parley_upstream_breaker_open": {"engine", "replica"},
    "parley_route_total": {"profile", "route"},
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Short-form volume mounts as {target: source}."""
    out = {}
    for spec in svc.get("volumes", []):
        source, target, *_ = spec.split(":")
        out[target] = source
    return out


# ---- compose.yaml ---------------------------------------------------------------------------------------------


def test_compose_declares_the_scale_out_services() -> None:
    services = compose()["services"]
    assert set(services) >= {*REPLICAS, *VLLM_SERVICES, "postgres", "redis", "prometheus", "grafana"}
    assert service("vllm")["profiles"] == ["gpu"]
    assert service("vllm-cpu")["profiles"] == ["cpu"]
    for name in set(services) - set(VLLM_SERVICES):
        assert "profiles" not in services[name], f"{name} should run without a profile"


@pytest.mark.parametrize("name", REPLICAS)
def test_compose_replica_is_built_from_the_dockerfile_and_configured(name: str) -> None:
    svc = service(name)
    build = svc["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert svc["command"] == ["parley", "serve", "--host", "0.0.0.0", "--port", "8000"]
    env = env_of(svc)
    assert env["PARLEY_CONFIG"] == "/etc/parley/parley.toml"
    assert env["PARLEY_DATABASE_URL"] == "postgresql://parley:parley@postgres:5432/parley"
    assert env["PARLEY_REDIS_URL"] == "redis://redis:6379/0"
    assert env["PARLEY_METRICS_PORT"] == METRICS_PORT
    volumes = mounts(svc)
    assert (COMPOSE.parent / volumes["/etc/parley/parley.toml"]).resolve() == PARLEY_TOML
    assert volumes[DATA_DIR] == "parley-data"
    assert svc["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert "/ready" in " ".join(svc["healthcheck"]["test"])


def test_compose_dependencies_have_healthchecks() -> None:
    for name, svc in compose()["services"].items():
        for dep, how in svc.get("depends_on", {}).items():
            assert dep in compose()["services"], f"{name} depends on an unknown service {dep}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in service(dep), f"{name} waits for {dep} to be healthy; it has no healthcheck"
    assert "pg_isready" in " ".join(service("postgres")["healthcheck"]["test"])
    assert "ping" in service("redis")["healthcheck"]["test"]


@pytest.mark.parametrize("name", VLLM_SERVICES)
def test_compose_vllm_serves_lora_from_the_shared_data_dir(name: str) -> None:
    svc = service(name)
    args = svc["command"]
    assert "--enable-lora" in args
    assert int(args[args.index("--max-loras") + 1]) >= 1
    assert env_of(svc)["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert mounts(svc)[DATA_DIR] == "parley-data", "vLLM must see adapters at the path Parley gives it"
    assert "parley-data" in compose()["volumes"]


def test_compose_gpu_vllm_reserves_an_nvidia_gpu() -> None:
    svc = service("vllm")
    assert svc["image"] == "vllm/vllm-openai:latest"
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert service("vllm-cpu")["image"] == "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:latest"


def test_compose_upstream_url_reaches_vllm_in_both_profiles() -> None:
    hosts = {_host(replica["url"]) for engine in parley_toml()["engines"] for replica in engine.get("replicas", [])}
    assert hosts == {"vllm"}
    assert "vllm" in service("vllm-cpu")["networks"]["default"]["aliases"]


def _host(url: str) -> str:
    return re.match(r"https?://([^:/]+)", url).group(1)  # type: ignore[union-attr]


def _compose_commands() -> Iterator[Any]:
    if shutil.which("docker-compose"):
        yield pytest.param(["docker-compose"], id="docker-compose")
    else:
        why = "docker-compose is not installed (apt-get install --no-install-recommends docker-compose)"
        yield pytest.param(None, id="docker-compose", marks=pytest.mark.skip(reason=why))
    has_v2 = (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    )
    if has_v2:
        yield pytest.param(["docker", "compose"], id="docker-compose-v2")
    else:
        yield pytest.param(
            None, id="docker-compose-v2", marks=pytest.mark.skip(reason="the docker CLI has no compose plugin")
        )


@pytest.mark.parametrize("cmd", list(_compose_commands()))
def test_compose_config_accepts_the_file(cmd: list[str]) -> None:
    """Compose's own parser and schema, with both profiles on (no Docker daemon needed)."""
    args = [*cmd, "--project-directory", str(DEPLOY), "-f", str(COMPOSE), "--profile", "gpu", "--profile", "cpu"]
    done = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_compose_matches_the_compose_spec_schema() -> None:
    from jsonschema import Draft202012Validator

    spec = importlib.util.find_spec("check_jsonschema")  # its data file only: the package is not imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("check-jsonschema (which vendors the Compose Specification schema) is not installed")
    vendored = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


# ---- parley.toml ----------------------------------------------------------------------------------------------


@cache
def parley_toml() -> dict[str, Any]:
    return tomllib.loads(PARLEY_TOML.read_text(encoding="utf-8"))


def test_parley_toml_declares_the_embedded_model_and_the_vllm_upstream() -> None:
    from parley.config import LlamaCppSpec

    engines = parley_toml()["engines"]
    assert [e["kind"] for e in engines] == ["llamacpp", "upstream"], "llama.cpp first: `parley tune` trains on it"
    LlamaCppSpec.model_validate(engines[0])
    upstream = engines[1]
    assert upstream["flavor"] == "vllm"
    assert upstream["adapters"] is True
    assert upstream["replicas"] == [{"url": "http://vllm:8000/v1", "weight": 1}]
    assert parley_toml()["data_dir"] == DATA_DIR


@pytest.fixture
def no_parley_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read PARLEY_* variables (and PARLEY_CONFIG): none of the caller's may leak into the check."""
    for name in list(os.environ):
        if name.startswith("PARLEY_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_parley_env")
@pytest.mark.parametrize("source", ["deploy/parley.toml", "helm values"])
def test_settings_accept_the_file(source: str) -> None:
    """Every key is a Settings field and every engine validates (the upstream kind once config.py has it)."""
    import parley.config as config

    if source == "deploy/parley.toml":
        data = parley_toml()
    else:
        values = load_yaml(CHART / "values.yaml")
        data = {**values["settings"], "engines": values["engines"]}
    unknown = set(data) - set(config.Settings.model_fields)
    assert not unknown, f"not Settings fields (they would be ignored): {unknown}"
    if not hasattr(config, "UpstreamSpec"):
        pytest.skip("parley.config has no UpstreamSpec yet: only the llama.cpp engines are checked")
    settings = config.Settings(**data)
    assert [type(e).__name__ for e in settings.engines] == ["LlamaCppSpec", "UpstreamSpec"]


# ---- Prometheus and Grafana -----------------------------------------------------------------------------------


def test_prometheus_scrapes_both_replicas_on_the_metrics_port() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "parley"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "authorization" not in job, "the metrics port serves /metrics without a key"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == [f"{name}:{METRICS_PORT}" for name in REPLICAS]
    for group in job["static_configs"]:
        assert "replica" not in group.get("labels", {}), "it would rename parley_upstream_*'s own `replica` label"
    assert mounts(service("prometheus"))["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus"
    assert _host(source["url"]) == "prometheus"
    (provider,) = load_yaml(provisioning / "dashboards" / "parley.yaml")["providers"]
    volumes = mounts(service("grafana"))
    assert volumes["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert volumes[provider["options"]["path"]] == "./grafana/dashboards"
    variable = next(v for v in dashboard()["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == source["uid"]


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@cache
def defined_metrics() -> dict[str, set[str] | None]:
    """Series names metrics.py defines ({name_total, name_bucket, …: labels}), read from its source."""
    tree = ast.parse(METRICS_PY.read_text(encoding="utf-8"))
    lists = {
        t.id: n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.List)
        for t in n.targets
        if isinstance(t, ast.Name)
    }

    def strings(node: ast.AST | None) -> set[str] | None:
        if isinstance(node, ast.Name) and node.id in lists:
            node = lists[node.id]
        if not isinstance(node, ast.List):
            return None
        out: set[str] = set()
        for item in node.elts:
            inner = strings(item.value) if isinstance(item, ast.Starred) else None
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                out.add(item.value)
            elif inner is not None:
                out |= inner
            else:
                return None
        return out

    series: dict[str, set[str] | None] = {}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args):
        first = call.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("parley_")):
            continue
        kind = (call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")).lower()
        keyword = next((k.value for k in call.keywords if k.arg == "labels"), None)
        labels = strings(call.args[2] if len(call.args) > 2 else keyword) if (len(call.args) > 2 or keyword) else set()
        name = first.value
        if kind.startswith("counter"):
            series[name + "_total"] = labels
        elif kind.startswith("histogram"):
            for suffix in ("_bucket", "_sum", "_count"):
                series[name + suffix] = labels | {"le"} if labels is not None and suffix == "_bucket" else labels
        elif kind.startswith("gauge"):
            series[name] = labels
    return series


def promql_of_dashboard() -> Iterator[tuple[str, str, str]]:
    """(panel title, PromQL, legend format) for every query, the template variables' included."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], target.get("legendFormat", "")
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["definition"], ""


STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
IDENT = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
SELECTOR = re.compile(r"\{([^}]*)\}")


def test_dashboard_queries_use_metrics_parley_defines() -> None:
    known = {**defined_metrics(), **UPSTREAM_METRICS}
    assert "parley_time_to_first_token_seconds_bucket" in known, "metrics.py was not read"
    problems = []
    for title, expr, legend in promql_of_dashboard():
        bare = STRING.sub('""', expr)
        bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors: [$__rate_interval]
        names = {m for m in IDENT.findall(bare) if m.startswith("parley_")}
        assert names, f"{title}: no Parley metric in {expr}"
        unknown = names - set(known)
        if unknown:
            problems.append(f"{title}: unknown metric(s) {sorted(unknown)}")
            continue
        if any(known[n] is None for n in names):
            continue  # labels not readable from the source: names only
        labels = set().union(*(known[n] for n in names)) | {"instance", "job"}
        used = {label.strip() for group in GROUPING.findall(bare) for label in group.split(",") if label.strip()}
        used |= {m for group in SELECTOR.findall(expr) for m in MATCHER.findall(group)}
        used |= set(re.findall(r"label_values\([^,]+,\s*(\w+)\)", expr))
        if used - labels:
            problems.append(f"{title}: labels {sorted(used - labels)} are not on {sorted(names)}")
        legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        if legend_labels - used:
            problems.append(f"{title}: legend {legend!r} names labels the query drops")
    assert not problems, "\n".join(problems)


QUANTILE = r"histogram_quantile\([\d.]+, sum by \(le\) \(rate\("


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("request rate", r"rate\(parley_requests_total"),
        ("tokens/s", r"rate\(parley_generation_tokens_total"),
        ("TTFT quantile", QUANTILE + r"parley_time_to_first_token_seconds_bucket"),
        ("e2e quantile", QUANTILE + r"parley_e2e_request_latency_seconds_bucket"),
        ("slots busy", r"parley_num_requests_running"),
        ("queue", r"parley_num_requests_waiting"),
        ("guard verdicts", r"parley_guard_verdicts_total"),
        ("upstream requests", r"parley_upstream_requests_total"),
        ("breaker", r"parley_upstream_breaker_open"),
        ("routing", r"parley_route_total"),
    ],
)
def test_dashboard_has_a_panel_for(what: str, pattern: str) -> None:
    assert any(re.search(pattern, expr) for _, expr, _ in promql_of_dashboard()), f"no panel shows {what}"


def test_dashboard_layout_has_unique_ids_and_no_overlapping_panels() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        cells = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


# ---- the Helm chart: structure, without Helm ------------------------------------------------------------------

TEMPLATES = CHART / "templates"
ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
KINDS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "ServiceAccount": "v1",
    "PersistentVolumeClaim": "v1",
    "PodDisruptionBudget": "policy/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}


def manifest_templates() -> list[Path]:
    return sorted(TEMPLATES.glob("*.yaml"))


def test_chart_metadata() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "parley"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert {p.name for p in TEMPLATES.iterdir()} >= {
        "_helpers.tpl",
        "NOTES.txt",
        "deployment.yaml",
        "service.yaml",
        "configmap.yaml",
        "servicemonitor.yaml",
    }


def test_chart_templates_reference_only_values_that_exist() -> None:
    values = load_yaml(CHART / "values.yaml")
    missing = []
    for path in TEMPLATES.iterdir():
        for ref in re.findall(r"\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", path.read_text(encoding="utf-8")):
            node: Any = values
            for key in ref.strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{path.name}: .Values{ref}")
                    break
                node = node[key]
    assert not missing, "\n".join(sorted(set(missing)))


def test_chart_includes_name_defined_templates() -> None:
    sources = {p.name: p.read_text(encoding="utf-8") for p in TEMPLATES.iterdir()}
    defined = {name for text in sources.values() for name in re.findall(r'\{\{-?\s*define\s+"([^"]+)"', text)}
    used = {name for text in sources.values() for name in re.findall(r'include\s+"([^"]+)"', text)}
    assert used <= defined, f"undefined: {used - defined}"


def strip_actions(text: str) -> str:
    """The template as YAML: lines that are only actions dropped, inline actions replaced by a scalar."""
    lines = []
    for line in ACTION.sub(lambda m: "\0" if "\n" not in m.group(0) else "", text).splitlines():
        if line.strip() in ("\0", ""):
            continue
        lines.append(line.replace("\0", "X"))
    return "\n".join(lines)


@pytest.mark.parametrize("path", manifest_templates(), ids=lambda p: p.name)
def test_chart_template_is_a_kubernetes_object(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(strip_actions(path.read_text(encoding="utf-8"))) if d]
    assert len(docs) == 1, f"{path.name}: one object per template"
    (doc,) = docs
    assert doc["kind"] in KINDS, f"{path.name}: unexpected kind {doc['kind']}"
    assert doc["apiVersion"] == KINDS[doc["kind"]]
    assert doc["metadata"]["name"] and "labels" in doc["metadata"]


def test_chart_deployment_shape_without_helm() -> None:
    values = load_yaml(CHART / "values.yaml")
    assert values["replicaCount"] == 2
    assert values["settings"]["data_dir"] == values["persistence"]["mountPath"] == DATA_DIR
    text = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
    assert re.search(r"readinessProbe:.*?path: /ready", text, re.S)
    assert "secretKeyRef" in text


# ---- the Helm chart through Helm (helm-python-sdk: Helm's Go SDK, no helm binary) -----------------------------

RENDER_CASES = {
    "defaults": {"database": {"url": "postgresql://parley:secret@postgres:5432/parley"}},
    "existing-secrets+servicemonitor": {
        "database": {"existingSecret": "parley-db"},
        "upstreamApiKey": {"existingSecret": "vllm-key"},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "persistence": {"existingClaim": "shared-adapters"},
        "insecure": True,
    },
    "no-persistence": {
        "database": {"url": "postgresql://p@db/parley"},
        "persistence": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "serviceAccount": {"create": False},
    },
}


@pytest.fixture(scope="module")
def helm() -> Any:
    return pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK, offline) is not installed")


def test_helm_lint(helm: Any) -> None:
    report = helm.lint(str(CHART), strict=True)
    serious = [m for m in report["messages"] if m["severity"] > 1]  # 1 is INFO ("icon is recommended")
    assert not report["errors"] and not serious, report


@pytest.fixture(scope="module", params=list(RENDER_CASES))
def rendered(request: pytest.FixtureRequest, helm: Any) -> tuple[str, list[dict[str, Any]]]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(RENDER_CASES[request.param], name="demo", namespace="ai")
    docs = [d for name, text in out.items() if name.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    return request.param, docs


def test_helm_render_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    case, docs = rendered
    by_kind = {d["kind"]: d for d in docs}
    assert by_kind.keys() <= KINDS.keys()
    deployment = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in container["env"]}
    assert env["PARLEY_CONFIG"]["value"] == "/etc/parley/parley.toml"
    assert env["PARLEY_METRICS_PORT"]["value"] == METRICS_PORT
    secret_ref = env["PARLEY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    if case == "existing-secrets+servicemonitor":
        assert secret_ref["name"] == "parley-db"
        assert "Secret" not in by_kind
        assert by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
        assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "vllm-key"
        assert env["PARLEY_INSECURE"]["value"] == "true"
        assert "PersistentVolumeClaim" not in by_kind
    else:
        assert by_kind["Secret"]["metadata"]["name"] == secret_ref["name"]
        assert secret_ref["key"] in by_kind["Secret"]["stringData"]
        assert "ServiceMonitor" not in by_kind
    if case == "no-persistence":
        assert {"PersistentVolumeClaim", "PodDisruptionBudget", "ServiceAccount"}.isdisjoint(by_kind)
        assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    ports = {p["name"] for p in by_kind["Service"]["spec"]["ports"]}
    assert ports == {"http", "metrics"}


@pytest.mark.usefixtures("no_parley_env")
def test_helm_configmap_holds_a_parley_toml_settings_accept(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    import parley.config as config

    _, docs = rendered
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    data = tomllib.loads(configmap["data"]["parley.toml"])
    assert [e["kind"] for e in data["engines"]] == ["llamacpp", "upstream"]
    config.LlamaCppSpec.model_validate(data["engines"][0])
    if hasattr(config, "UpstreamSpec"):
        config.Settings(**data)


def test_helm_render_matches_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    _, docs = rendered
    for doc in docs:
        if doc["apiVersion"] == KINDS["ServiceMonitor"]:
            continue  # a CRD: not in Kubernetes' own schemas
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
