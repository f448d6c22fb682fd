#!/usr/bin/env python3
"""Checks that the deployment files agree with the apps and the image.

    check.py BIN_DIR SOURCE_DIR

- Dockerfile: which binaries and configs the image holds, and its ports.
- configs/deploy/compose.yaml and configs/deploy/k8s/*.yaml parse; every
  container runs a binary and a config the image has; its listen port is
  the port it exposes; the gateway's backend URLs name services that exist,
  on the ports those services listen on.
- Every distinct container (command + environment) is started here for
  real (on 127.0.0.1:0): its config and environment load, and each probe
  path answers 200.
Prints one line per problem; exits 1 if there is any.
"""
import glob
import os
import re
import signal
import subprocess
import sys
import urllib.request

import yaml

BIN, SRC = sys.argv[1], sys.argv[2]
problems = []


def problem(text):
    problems.append(text)
    print("deploy check:", text)


def image_contents():
    text = open(os.path.join(SRC, "Dockerfile")).read().replace("\\\n", " ")
    binaries, configs, ports = set(), {}, set()
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and words[-1] == "/usr/local/bin/":
            binaries |= {os.path.basename(w) for w in words[1:-1] if not w.startswith("--")}
        if words[:1] == ["COPY"] and words[-1] == "/etc/coronet/":
            for w in words[1:-1]:
                if not w.startswith("--"):
                    configs["/etc/coronet/" + os.path.basename(w)] = os.path.join(SRC, "configs", os.path.basename(w))
        if words[:1] == ["EXPOSE"]:
            ports |= {int(p) for p in words[1:]}
    return binaries, configs, ports


BINARIES, CONFIGS, EXPOSED = image_contents()


def listen_port(env):
    listen = env.get("CORONET_SERVER_LISTEN", "0.0.0.0:8080")
    return int(listen.rsplit(":", 1)[1])


def check_container(where, command, env, ports):
    """Static checks; returns (command, env) to start for real."""
    if not command or command[0] not in BINARIES:
        problem(f"{where}: command {command[:1]} is not a binary the image has ({sorted(BINARIES)})")
        return None
    if "--config" in command:
        path = command[command.index("--config") + 1]
        if path not in CONFIGS:
            problem(f"{where}: config {path} is not in the image ({sorted(CONFIGS)})")
            return None
    port = listen_port(env)
    if port not in EXPOSED:
        problem(f"{where}: listens on {port}, which the Dockerfile does not EXPOSE")
    if ports and port not in ports:
        problem(f"{where}: listens on {port} but declares ports {sorted(ports)}")
    return command, env


def backend_urls(env):
    return {k[len("CORONET_BACKENDS_"):].lower(): v for k, v in env.items() if k.startswith("CORONET_BACKENDS_")}


def check_urls(where, env, service_ports):
    for role, url in backend_urls(env).items():
        m = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
        if not m:
            problem(f"{where}: backend URL {url} is not http://HOST:PORT")
            continue
        host, port = m.group(1), int(m.group(2))
        if host not in service_ports:
            problem(f"{where}: backend {role} points at {host}, which is not a service here")
        elif port != service_ports[host]:
            problem(f"{where}: backend {role} uses port {port}, but {host} serves on {service_ports[host]}")


def interpolated(value):
    """${VAR:-default} as compose reads it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def ours(svc):
    """A container of the image (not a PostgreSQL or Redis beside it)."""
    return svc.get("image", "coronet:latest") == "coronet:latest"


def compose():
    path = os.path.join(SRC, "configs/deploy/compose.yaml")
    doc = yaml.safe_load(open(path))
    runs = []
    service_ports = {}
    for name, svc in doc["services"].items():
        env = {k: interpolated(v) for k, v in (svc.get("environment") or {}).items()}
        if ours(svc):
            service_ports[name] = listen_port(env)
    for name, svc in doc["services"].items():
        if not ours(svc):
            continue
        env = {k: interpolated(v) for k, v in (svc.get("environment") or {}).items()}
        ports = {int(str(p).split(":")[-1]) for p in (svc.get("expose") or []) + (svc.get("ports") or [])}
        where = f"compose {name}"
        run = check_container(where, svc.get("command") or [], env, ports)
        if run:
            runs.append((where, *run, ["/healthz", "/readyz"]))
        check_urls(where, env, service_ports)
        for dep in (svc.get("depends_on") or {}):
            if dep not in doc["services"]:
                problem(f"{where}: depends on unknown service {dep}")
    return runs


def k8s():
    docs = []
    for path in sorted(glob.glob(os.path.join(SRC, "configs/deploy/k8s/*.yaml"))):
        docs += [d for d in yaml.safe_load_all(open(path)) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    runs = []
    service_ports = {}
    for name, svc in services.items():
        service_ports[name] = svc["spec"]["ports"][0]["port"]
        selector = svc["spec"]["selector"]
        targets = [d for d in deployments.values()
                   if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]
        if not targets:
            problem(f"k8s service {name}: selects no deployment")
            continue
        named = {p.get("name") for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if isinstance(p["targetPort"], str) and p["targetPort"] not in named:
                problem(f"k8s service {name}: targetPort {p['targetPort']} is not a container port name")
    for name, d in deployments.items():
        for c in d["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: str(e["value"]) for e in c.get("env", [])}
            ports = {p["containerPort"] for p in c.get("ports", [])}
            where = f"k8s deployment {name}"
            run = check_container(where, c.get("command") or [], env, ports)
            probes = [c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe") if p in c]
            if "readinessProbe" not in c or "livenessProbe" not in c:
                problem(f"{where}: needs both a readiness and a liveness probe")
            if "resources" not in c or "requests" not in c["resources"]:
                problem(f"{where}: has no resource requests")
            if run:
                runs.append((where, *run, probes))
            check_urls(where, env, service_ports)
    for d in docs:
        if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] not in deployments:
            problem(f"k8s autoscaler {d['metadata']['name']}: targets no deployment")
    if deployments.get("gateway", {}).get("spec", {}).get("replicas", 1) < 2:
        problem("k8s: the gateway should run more than one replica")
    return runs


def start(where, command, env, paths):
    argv = [os.path.join(BIN, command[0])] + command[1:]
    if "--config" in argv:
        i = argv.index("--config") + 1
        argv[i] = CONFIGS[argv[i]]
    argv += ["--listen", "127.0.0.1:0", "--threads", "1"]
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    port, seen = None, []
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    try:
        if port is None:
            problem(f"{where}: did not start: {''.join(seen).strip()}")
            return
        for path in paths:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
            except Exception as e:  # an HTTPError is a status too
                status = getattr(e, "code", str(e))
            if status != 200:
                problem(f"{where}: probe {path} answered {status}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            problem(f"{where}: did not stop on SIGTERM")


runs = compose() + k8s()
for where, command, env, paths in runs:
    start(where, command, env, paths)
print(f"deploy check: {len(runs)} containers checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
