"""Checks behind helm/tests/run.sh.

Each subcommand exits 0 when its check holds and prints why when it does not:

  validate FILE...           every manifest against the Kubernetes JSON schemas
                             (kubernetes-validate, strict), CRDs structurally
  assert PROFILE FILE        properties of a render: default | clustered |
                             clustered-no-job | full
  dockerfile PATH            lint a Dockerfile (no hadolint here)
  dockerfile-selftest        the Dockerfile lint catches each rule it claims to
  compose PATH               sanity of the Compose file
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest
# that kubernetes-validate ships schemas for.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
SECRET_ENV = ("SENTINEL_DATABASE_URL", "SENTINEL_REDIS_URL", "SENTINEL_KEK")


class CheckFailed(Exception):
    pass


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def load_docs(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --- validate -------------------------------------------------------------


def check_service_monitor(doc: dict) -> list[str]:
    """The Prometheus Operator CRD is not in kubernetes-validate: check the
    fields the operator needs to scrape anything."""
    errors = []
    spec = doc.get("spec") or {}
    if not isinstance(spec.get("selector"), dict):
        errors.append("spec.selector must be a label selector")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        errors.append("spec.endpoints must be a non-empty list")
    else:
        for i, ep in enumerate(endpoints):
            if not isinstance(ep.get("port"), str):
                errors.append(f"spec.endpoints[{i}].port must name a Service port")
            for key in ("interval", "scrapeTimeout"):
                if key in ep and not re.fullmatch(r"([0-9]+(ms|s|m|h))+", str(ep[key])):
                    errors.append(f"spec.endpoints[{i}].{key} is not a duration")
    return errors


CRD_CHECKS = {("monitoring.coreos.com/v1", "ServiceMonitor"): check_service_monitor}


def cmd_validate(paths: list[str]) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    errors = []
    count = 0
    for path in paths:
        for doc in load_docs(path):
            count += 1
            ident = f"{path}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            crd = CRD_CHECKS.get((doc.get("apiVersion"), doc.get("kind")))
            if crd:
                errors += [f"{ident}: {e}" for e in crd(doc)]
                continue
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    errors.append(f"{ident} (k8s {version}): {where}: {e.message}")
                except SchemaNotFoundError as e:
                    errors.append(f"{ident}: {e.message}")
    expect(count > 0, f"no manifests in {paths}")
    expect(not errors, "\n".join(errors))
    print(f"{count} manifests valid against Kubernetes {', '.join(KUBE_VERSIONS)}")


# --- assert ---------------------------------------------------------------


class Render:
    def __init__(self, path: str):
        self.docs = load_docs(path)

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def service(self) -> dict:
        """The ClusterIP Service (not the optional headless one)."""
        found = [s for s in self.all("Service") if s["spec"].get("clusterIP") != "None"]
        expect(len(found) == 1, f"expected one ClusterIP Service, found {len(found)}")
        return found[0]

    def env_config(self) -> dict:
        """The ConfigMap of environment variables (not the sentinel.toml one)."""
        found = [m for m in self.all("ConfigMap") if not m["metadata"]["name"].endswith("-file")]
        expect(len(found) == 1, f"expected one environment ConfigMap, found {len(found)}")
        return found[0]

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
        return found[0]


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    expect(len(containers) == 1, "expected one container")
    return containers[0]


def env_map(c: dict) -> dict:
    return {e["name"]: e for e in c.get("env") or []}


def secret_ref(c: dict, name: str) -> tuple[str, str] | None:
    e = env_map(c).get(name)
    if not e:
        return None
    expect("value" not in e, f"{name} is inlined; it must come from a Secret")
    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
    expect(ref is not None, f"{name} must use secretKeyRef")
    return ref["name"], ref["key"]


def assert_hardened(workload: dict) -> None:
    """Security and resource settings every pod of the chart must carry."""
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    pod = workload["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    expect(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
    expect(psc.get("runAsUser") == 10001, f"{name}: pod runAsUser 10001")
    expect((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{name}: seccomp")
    expect(pod.get("automountServiceAccountToken") is False, f"{name}: no SA token")
    c = container(workload)
    sc = c.get("securityContext") or {}
    expect(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation")
    expect(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
    expect("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{name}: drop ALL")
    res = c.get("resources") or {}
    expect(res.get("requests") and res.get("limits"), f"{name}: requests and limits")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    expect("/tmp" in mounts, f"{name}: /tmp mounted")
    expect("emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp is an emptyDir")
    expect("/var/lib/sentinel" in mounts, f"{name}: data dir mounted")
    for key in SECRET_ENV:
        secret_ref(c, key)  # inline values raise


def assert_server(r: Render) -> dict:
    dep = r.one("Deployment")
    assert_hardened(dep)
    c = container(dep)
    expect(c.get("args") == ["serve"], "server runs `sentinel serve`")
    ports = c["ports"]
    expect([(p["name"], p["containerPort"]) for p in ports] == [("http", 8080)], "one port 8080")
    for probe in ("startupProbe", "livenessProbe"):
        expect(c[probe].get("grpc", {}).get("port") == 8080, f"{probe} uses gRPC health on 8080")
        expect("service" not in c[probe]["grpc"], f"{probe} checks the overall service")
    ready = c["readinessProbe"].get("httpGet") or {}
    expect(ready.get("path") == "/readyz", "readiness uses /readyz")
    cm = r.env_config()
    refs = [e["configMapRef"]["name"] for e in c.get("envFrom") or [] if "configMapRef" in e]
    expect(cm["metadata"]["name"] in refs, "server env comes from the ConfigMap")
    data = cm["data"]
    expect(data["SENTINEL_LISTEN"] == "0.0.0.0:8080", "listen on 0.0.0.0:8080")
    expect(data["SENTINEL_DATA_DIR"] == "/var/lib/sentinel", "data dir")
    expect(data["SENTINEL_LOG_FORMAT"] == "json", "json logs")
    for key in SECRET_ENV:
        expect(key not in data, f"{key} must not be in the ConfigMap")
    svc = r.service()
    expect(len(svc["spec"]["ports"]) == 1, "Service has one port")
    port = svc["spec"]["ports"][0]
    expect(port["port"] == 8080 and port["targetPort"] == "http", "Service port 8080 -> http")
    expect(port.get("appProtocol") == "kubernetes.io/h2c", "Service appProtocol h2c")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    sel = svc["spec"]["selector"]
    expect(all(labels.get(k) == v for k, v in sel.items()), "Service selects the server pods")
    expect(dep["spec"]["selector"]["matchLabels"] == sel, "Deployment and Service selectors agree")
    expect("checksum/config" in dep["spec"]["template"]["metadata"]["annotations"], "config checksum")
    return dep


def assert_default(r: Render) -> None:
    expect(
        r.kinds() == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"],
        f"default render has unexpected kinds: {r.kinds()}",
    )
    dep = assert_server(r)
    expect(dep["spec"]["replicas"] == 1, "one replica")
    expect(dep["spec"]["strategy"]["type"] == "Recreate", "Recreate: one SQLite writer")
    expect(r.env_config()["data"]["SENTINEL_MIGRATE_ON_START"] == "true", "migrates on start")
    c = container(dep)
    for key in SECRET_ENV:
        expect(key not in env_map(c), f"embedded default sets no {key}")
    pvc = r.one("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["data"].get("persistentVolumeClaim", {}).get("claimName")
    expect(claim == pvc["metadata"]["name"], "data volume is the chart's PVC")
    expect(pvc["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep", "PVC kept")


def assert_clustered_common(r: Render, expected_refs: dict) -> dict:
    dep = assert_server(r)
    expect(dep["spec"]["strategy"]["type"] == "RollingUpdate", "rolling update")
    expect(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, "maxUnavailable 0")
    expect(not r.all("PersistentVolumeClaim"), "clustered mode has no PVC")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    expect("emptyDir" in volumes["data"], "clustered data dir is scratch")
    cm = r.env_config()
    expect(cm["data"]["SENTINEL_MIGRATE_ON_START"] == "false", "the Job migrates, not the server")
    c = container(dep)
    for key, ref in expected_refs.items():
        expect(secret_ref(c, key) == ref, f"server {key} -> {ref}, got {secret_ref(c, key)}")

    job = r.one("Job")
    assert_hardened(job)
    ann = job["metadata"]["annotations"]
    hooks = set(ann.get("helm.sh/hook", "").split(","))
    expect({"pre-install", "pre-upgrade"} <= hooks, f"Job is a pre-install/pre-upgrade hook: {hooks}")
    jc = container(job)
    expect(jc.get("args") == ["migrate"], "Job runs `sentinel migrate`")
    expect(job["spec"]["template"]["spec"]["restartPolicy"] == "Never", "Job restartPolicy")
    for key, ref in expected_refs.items():
        expect(secret_ref(jc, key) == ref, f"Job {key} -> {ref}")
    # A pre-install hook runs before the ConfigMap exists: same settings, inline.
    expect(not any("configMapRef" in e for e in jc.get("envFrom") or []), "Job reads no ConfigMap")
    inline = {e["name"]: e.get("value") for e in jc.get("env") or [] if "value" in e}
    for key, value in cm["data"].items():
        expect(inline.get(key) == value, f"Job {key}={inline.get(key)!r}, ConfigMap has {value!r}")
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    sel = r.service()["spec"]["selector"]
    expect(not all(job_labels.get(k) == v for k, v in sel.items()), "Job pod is not a Service endpoint")

    pdb = r.one("PodDisruptionBudget")
    expect(pdb["spec"]["selector"]["matchLabels"] == sel, "PDB covers the server pods")
    return dep


def assert_clustered(r: Render) -> None:
    dep = assert_clustered_common(
        r,
        {
            "SENTINEL_DATABASE_URL": ("sentinel-database", "database-url"),
            "SENTINEL_REDIS_URL": ("sentinel-redis", "redis-url"),
            "SENTINEL_KEK": ("sentinel-kek", "kek"),
        },
    )
    expect(dep["spec"]["replicas"] == 3, "three replicas")
    expect(not r.all("Secret"), "no Secret is created by default")
    for kind in ("HorizontalPodAutoscaler", "Ingress", "ServiceMonitor"):
        expect(not r.all(kind), f"{kind} is off by default")
    expect(r.one("PodDisruptionBudget")["spec"].get("maxUnavailable") == 1, "PDB maxUnavailable 1")


def assert_full(r: Render) -> None:
    secret = r.one("Secret")
    name = secret["metadata"]["name"]
    dep = assert_clustered_common(
        r,
        {
            "SENTINEL_DATABASE_URL": ("sentinel-database", "database-url"),
            "SENTINEL_REDIS_URL": (name, "redis-url"),
            "SENTINEL_KEK": (name, "kek"),
        },
    )
    expect(sorted(secret["data"]) == ["kek", "redis-url"], f"Secret keys: {sorted(secret['data'])}")
    job = r.one("Job")
    weight = lambda d: int(d["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))  # noqa: E731
    expect("pre-install" in secret["metadata"]["annotations"].get("helm.sh/hook", ""), "Secret is a hook")
    expect(weight(secret) < weight(job), "Secret is created before the migration Job")

    expect("replicas" not in dep["spec"], "the HPA owns the replica count")
    hpa = r.one("HorizontalPodAutoscaler")
    expect(hpa["apiVersion"] == "autoscaling/v2", "HPA autoscaling/v2")
    target = hpa["spec"]["scaleTargetRef"]
    expect(target["kind"] == "Deployment" and target["name"] == dep["metadata"]["name"], "HPA target")
    expect(len(hpa["spec"]["metrics"]) == 2, "CPU and memory metrics")
    expect(r.one("PodDisruptionBudget")["spec"].get("minAvailable") == 1, "PDB minAvailable")

    c = container(dep)
    expect(c["image"].startswith("registry.example.com/sentinel@sha256:"), "image by digest")
    # Identity providers: a sentinel.toml without secrets, the Secret mounted as files.
    files = [m for m in r.all("ConfigMap") if m["metadata"]["name"].endswith("-file")]
    expect(len(files) == 1, "one ConfigMap with sentinel.toml")
    toml = files[0]["data"]["sentinel.toml"]
    expect("[providers.google]" in toml and "[providers.github]" in toml, f"providers rendered: {toml}")
    expect('client_secret_file = "/etc/sentinel/secrets/google-client-secret"' in toml, "secret as a file")
    expect("client_secret =" not in toml, "no secret in the ConfigMap")
    expect(env_map(c).get("SENTINEL_CONFIG", {}).get("value") == "/etc/sentinel/sentinel.toml",
           "SENTINEL_CONFIG points at the mounted file")
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    expect({"/etc/sentinel/sentinel.toml", "/etc/sentinel/secrets"} <= mounts, f"mounts: {mounts}")
    expect("SENTINEL_CONFIG" not in env_map(container(job)), "the migration Job needs no provider file")
    expect("GITHUB_CLIENT_SECRET" in env_map(c), "extraEnv reaches the server")
    expect("GITHUB_CLIENT_SECRET" in env_map(container(job)), "extraEnv reaches the Job")

    svc = r.service()
    ingresses = {i["metadata"]["name"]: i for i in r.all("Ingress")}
    expect(len(ingresses) == 2, f"two Ingresses, got {sorted(ingresses)}")
    grpc = [i for n, i in ingresses.items() if n.endswith("-grpc")]
    expect(len(grpc) == 1, "one gRPC Ingress")
    ann = grpc[0]["metadata"].get("annotations") or {}
    expect(ann.get("nginx.ingress.kubernetes.io/backend-protocol") == "GRPC", "gRPC backend-protocol")
    for ing in ingresses.values():
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                expect(backend["name"] == svc["metadata"]["name"], "Ingress -> Service")
                expect(backend["port"]["number"] == 8080, "Ingress -> port 8080")
        expect(ing["spec"].get("tls"), "Ingress has TLS")
    browser = [i for n, i in ingresses.items() if not n.endswith("-grpc")][0]
    expect("nginx.ingress.kubernetes.io/backend-protocol" not in (browser["metadata"].get("annotations") or {}),
           "browser Ingress keeps the HTTP backend protocol")

    headless = [s for s in r.all("Service") if s["spec"].get("clusterIP") == "None"]
    expect(len(headless) == 1, "headless Service")
    expect(headless[0]["spec"]["selector"] == svc["spec"]["selector"], "headless Service selects the server")
    expect(headless[0]["metadata"]["name"] == svc["metadata"]["name"] + "-headless", "headless name")

    sm = r.one("ServiceMonitor")
    expect(sm["metadata"]["labels"].get("release") == "kube-prometheus-stack", "ServiceMonitor labels")
    selected = [
        s["metadata"]["name"]
        for s in r.all("Service")
        if all(s["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    ]
    expect(selected == [svc["metadata"]["name"]], f"ServiceMonitor must select only the Service: {selected}")
    ep = sm["spec"]["endpoints"][0]
    expect(ep["port"] == svc["spec"]["ports"][0]["name"] and ep["path"] == "/metrics", "scrapes /metrics")


def assert_clustered_no_job(r: Render) -> None:
    assert_server(r)
    expect(not r.all("Job"), "migrations.job.enabled=false renders no Job")
    expect(r.env_config()["data"]["SENTINEL_MIGRATE_ON_START"] == "true", "replicas migrate on start")


PROFILES = {
    "default": assert_default,
    "clustered": assert_clustered,
    "clustered-no-job": assert_clustered_no_job,
    "full": assert_full,
}


# --- dockerfile -----------------------------------------------------------


def dockerfile_problems(text: str) -> list[str]:
    # Join continuation lines and drop comments, as the Dockerfile parser does.
    lines = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append((buf + stripped).strip())
        buf = ""
    if buf:
        lines.append(buf.strip())

    instructions = []
    for line in lines:
        op, _, rest = line.partition(" ")
        instructions.append((op.upper(), rest.strip()))

    args = {}
    for op, rest in instructions:
        if op == "ARG" and "=" in rest:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')

    def expand(s: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s)

    problems = []
    froms = [rest for op, rest in instructions if op == "FROM"]
    stages = set()
    if len(froms) < 2:
        problems.append("not multi-stage: expected a build stage and a runtime stage")
    for rest in froms:
        parts = [p for p in rest.split() if not p.startswith("--")]
        image = expand(parts[0])
        if len(parts) >= 3 and parts[1].upper() == "AS":
            stages.add(parts[2].lower())
        if image.lower() in stages or image == "scratch":
            continue
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if not tag:
            problems.append(f"FROM {image}: no tag (implies latest)")
        elif tag == "latest" or tag.endswith("-latest"):
            problems.append(f"FROM {image}: 'latest' tag")
        if "$" in image:
            problems.append(f"FROM {image}: unresolved build argument")

    runtime = instructions
    if froms:
        last = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
        runtime = instructions[last:]
    users = [rest for op, rest in runtime if op == "USER"]
    if not users:
        problems.append("final stage has no USER: the image would run as root")
    else:
        user = users[-1].split(":")[0]
        if user in ("root", "0"):
            problems.append(f"final stage runs as {users[-1]}")
        elif not user.isdigit():
            problems.append(f"USER {users[-1]}: use a numeric uid so runAsNonRoot can verify it")
    entry = [rest for op, rest in runtime if op == "ENTRYPOINT"]
    if not entry:
        problems.append("final stage has no ENTRYPOINT")
    elif not entry[-1].startswith("["):
        problems.append("ENTRYPOINT in shell form: signals would not reach the process")
    if not any(op == "EXPOSE" for op, _ in runtime):
        problems.append("final stage EXPOSEs no port")
    for op, rest in instructions:
        if op == "ADD" and re.match(r"(--\S+\s+)*https?://", rest):
            problems.append("ADD from a URL: use a package manager or COPY")
        if op == "RUN" and "apt-get install" in rest:
            if "--no-install-recommends" not in rest:
                problems.append("apt-get install without --no-install-recommends")
            if "-y" not in rest.split():
                problems.append("apt-get install without -y")
            if "rm -rf /var/lib/apt/lists" not in rest:
                problems.append("apt lists left in the layer")
        if op == "RUN" and re.search(r"\bsudo\b", rest):
            problems.append("sudo in RUN")
        if op == "MAINTAINER":
            problems.append("MAINTAINER is deprecated; use a LABEL")
    return problems


def cmd_dockerfile(path: str) -> None:
    problems = dockerfile_problems(Path(path).read_text(encoding="utf-8"))
    expect(not problems, "\n".join(problems))
    print(f"{path}: clean")


GOOD_DOCKERFILE = """\
FROM rust:1-bookworm AS builder
RUN cargo build --release --locked
FROM debian:bookworm-slim
COPY --from=builder /src/target/release/app /usr/local/bin/app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["app"]
"""

BAD_DOCKERFILES = {
    "single stage": "FROM debian:bookworm-slim\nUSER 10001\nEXPOSE 8080\nENTRYPOINT [\"app\"]\n",
    "latest": GOOD_DOCKERFILE.replace("debian:bookworm-slim", "debian:latest"),
    "untagged": GOOD_DOCKERFILE.replace("debian:bookworm-slim", "debian"),
    "root": GOOD_DOCKERFILE.replace("USER 10001:10001", "USER root"),
    "no user": GOOD_DOCKERFILE.replace("USER 10001:10001\n", ""),
    "named user": GOOD_DOCKERFILE.replace("USER 10001:10001", "USER sentinel"),
    "no entrypoint": GOOD_DOCKERFILE.replace('ENTRYPOINT ["app"]\n', ""),
    "shell entrypoint": GOOD_DOCKERFILE.replace('ENTRYPOINT ["app"]', "ENTRYPOINT app"),
    "apt lists": GOOD_DOCKERFILE.replace(
        "USER", "RUN apt-get update && apt-get install -y --no-install-recommends curl\nUSER"
    ),
}


def cmd_dockerfile_selftest() -> None:
    expect(not dockerfile_problems(GOOD_DOCKERFILE), f"good: {dockerfile_problems(GOOD_DOCKERFILE)}")
    missed = [name for name, text in BAD_DOCKERFILES.items() if not dockerfile_problems(text)]
    expect(not missed, f"lint misses: {missed}")
    print(f"lint catches all {len(BAD_DOCKERFILES)} bad examples")


# --- compose --------------------------------------------------------------


def cmd_compose(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    services = doc.get("services") or {}
    expect({"sentinel", "postgres", "redis"} <= set(services), f"services: {sorted(services)}")
    images = {n: str(s.get("image", "")) for n, s in services.items()}
    expect(images["postgres"].split(":")[0].endswith("postgres"), "postgres image")
    expect(re.match(r"^16(\D|$)", images["postgres"].partition(":")[2] or ""), "PostgreSQL 16")
    expect(re.match(r"^7(\D|$)", images["redis"].partition(":")[2] or ""), "Redis 7")
    for name, image in images.items():
        expect(not image.endswith(":latest"), f"{name}: latest tag")
    for name, svc in services.items():
        expect("healthcheck" in svc, f"{name}: no healthcheck")
    s = services["sentinel"]
    env = s.get("environment") or {}
    expect(isinstance(env, dict), "sentinel environment as a mapping")
    expect(str(env.get("SENTINEL_MIGRATE_ON_START")).lower() == "true", "migrates on start")
    expect(str(env.get("SENTINEL_DATABASE_URL", "")).startswith("postgres://"), "database URL")
    expect(str(env.get("SENTINEL_REDIS_URL", "")).startswith("redis://"), "Redis URL")
    kek = str(env.get("SENTINEL_KEK", ""))
    expect(re.fullmatch(r"\$\{SENTINEL_KEK:\?[^}]+\}", kek) is not None,
           "SENTINEL_KEK must come from the env file and be required")
    deps = s.get("depends_on") or {}
    for dep in ("postgres", "redis"):
        expect((deps.get(dep) or {}).get("condition") == "service_healthy", f"waits for healthy {dep}")
    expect(any(str(p).endswith(":8080") for p in s.get("ports") or []), "publishes 8080")
    print(f"{path}: {len(services)} services look right")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "validate":
            cmd_validate(args)
        elif cmd == "assert":
            PROFILES[args[0]](Render(args[1]))
            print(f"{args[0]}: all properties hold")
        elif cmd == "dockerfile":
            cmd_dockerfile(args[0])
        elif cmd == "dockerfile-selftest":
            cmd_dockerfile_selftest()
        elif cmd == "compose":
            cmd_compose(args[0])
        else:
            print(f"unknown command {cmd}", file=sys.stderr)
            return 2
    except CheckFailed as e:
        print(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
