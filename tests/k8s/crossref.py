#!/usr/bin/env python3
"""Checks the cross-references of one rendered dst overlay: what the schemas
cannot see, where one object names another.

  crossref.py MANIFEST.yaml OUTDIR

- every workload's selector matches its pod template's labels;
- every Service, NetworkPolicy and PodMonitor selects some pod, and every
  port it names (targetPort, policy port, metrics endpoint) is a port of
  those pods;
- the StatefulSet's serviceName is a headless Service;
- every ConfigMap, Secret and PersistentVolumeClaim a pod mounts exists (a
  Secret: made by a cert-manager Certificate of the overlay);
- the flags in dst-exporter's args, and the ports in --listen and
  --metrics, are the container's ports; its size fits its volume claim;
- the gateway's configuration: each replica address is a pod of the
  exporter StatefulSet, by its headless Service, on its gRPC port; the
  nbdkit plugin's gateway= is the gateway Service on its gRPC port; with TLS,
  the names dialled are in the peer's certificate and the ACL identities
  are certificates' common names; the files the configuration names are
  mounted;
- the probes' ports are container ports;
- HA mode (an etcd section): more than one gateway replica only with it;
  each endpoint is a member of the etcd StatefulSet (when the overlay has
  one) on its client port, and that StatefulSet's --initial-cluster names
  exactly its pods; a wildcard listen address comes with --advertise, the
  pod's IP (status.podIP) on the gRPC port; every PodDisruptionBudget
  selects pods.

Writes the gateway's configuration (and its ACL, if any) to OUTDIR with
paths rewritten under OUTDIR, for `dst-gateway --check-config`; prints the
paths of the TLS files it expects, one "tls NAME PATH" line each, and the
flags and keys the exporter, the plugin, dstctl probes and etcd are given
("exporter-flags", "nbdkit-keys", "dstctl-flags", "etcd-flags" lines) for
the test to check against each program's --help, and the gateway's flags
that --check-config needs besides the configuration ("gateway-args").
"""
import fnmatch
import os
import re
import sys

import yaml

errors = []


def error(message):
    errors.append(message)


def pod_specs(objects):
    """(workload, pod template) of every Deployment, StatefulSet, DaemonSet."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield o, o["spec"]["template"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def selected_pods(objects, selector, what):
    pods = [t for _, t in pod_specs(objects)
            if matches(selector, t["metadata"].get("labels", {}))]
    if not pods:
        error(f"{what}: selector {selector} matches no pod")
    return pods


def container_ports(template):
    ports = {}
    for c in template["spec"]["containers"]:
        for p in c.get("ports", []):
            ports[p["containerPort"]] = p.get("name")
            if p.get("name"):
                ports[p["name"]] = p["containerPort"]
    return ports


def has_port(templates, port):
    return all(port in container_ports(t) for t in templates)


def bytes_of(text):
    """'10G' (dst: binary) or '11Gi' (Kubernetes) -> bytes."""
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(text))
    if not m:
        raise ValueError(f"bad size {text!r}")
    scale = {"K": 1, "M": 2, "G": 3, "T": 4}
    unit = m.group(2) or ""
    return int(m.group(1)) * (1024 ** scale[unit[0]] if unit else 1)


def host_port(address, what):
    m = re.fullmatch(r"([A-Za-z0-9.-]+):(\d+)", address)
    if not m:
        error(f"{what}: {address!r} is not host:port")
        return None, None
    return m.group(1), int(m.group(2))


def cert_names(cert):
    return [cert["spec"].get("commonName", "")] + cert["spec"].get("dnsNames", [])


def name_in_cert(name, cert):
    return any(fnmatch.fnmatchcase(name, pattern) and
               (not pattern.startswith("*.") or name.count(".") == pattern.count("."))
               for pattern in cert_names(cert))


def args_of(container):
    """--flag=value arguments of a container, as {flag: value}."""
    flags = {}
    for arg in container.get("args", []):
        m = re.fullmatch(r"--([a-z-]+)(?:=(.*))?", arg)
        if m:
            flags[m.group(1)] = m.group(2) or ""
    return flags


def check_ha(config, gateway, container, gports, etcd_sts):
    """HA mode's references: etcd endpoints and members, --advertise."""
    if "etcd" not in config:
        if gateway["spec"].get("replicas", 1) > 1:
            error("gateway: several replicas without an etcd section would "
                  "fence each other")
        return
    gflags = args_of(container)
    env = {e["name"]: e for e in container.get("env", [])}
    listen_host, _ = host_port(config.get("listen", ["127.0.0.1:7000"])[0], "gateway listen")
    advertise = gflags.get("advertise", config["etcd"].get("advertise", ""))
    if not advertise and listen_host in ("0.0.0.0", "::"):
        error("gateway: HA mode with a wildcard listen address needs --advertise")
    elif "advertise" in gflags:
        m = re.fullmatch(r"\$\((\w+)\):(\d+)", advertise)
        if not m:
            error(f"gateway --advertise={advertise}: expected $(POD_IP):PORT")
        else:
            source = env.get(m.group(1), {}).get("valueFrom", {}).get("fieldRef", {})
            if source.get("fieldPath") != "status.podIP":
                error(f"gateway --advertise: {m.group(1)} is not the pod's IP")
            if int(m.group(2)) != gports.get("grpc"):
                error(f"gateway --advertise port {m.group(2)} is not container port grpc")
            print(f"gateway-args --advertise=10.0.0.1:{m.group(2)}")
    if etcd_sts is None:
        return  # an etcd of the operator's own
    etcd = etcd_sts["spec"]["template"]["spec"]["containers"][0]
    eflags = args_of(etcd)
    print("etcd-flags " + " ".join(sorted(eflags)))
    eports = container_ports(etcd_sts["spec"]["template"])
    headless = etcd_sts["spec"]["serviceName"]
    count = etcd_sts["spec"]["replicas"]
    for endpoint in config["etcd"]["endpoints"]:
        host, port = host_port(endpoint, "etcd.endpoints")
        m = re.fullmatch(rf"dst-etcd-(\d+)\.{headless}(\.[a-z0-9.-]+)?", host or "")
        if not m or int(m.group(1)) >= count:
            error(f"etcd endpoint {host} is not a pod of StatefulSet dst-etcd "
                  f"behind Service {headless}")
        if port != eports.get("client"):
            error(f"etcd endpoint {endpoint}: not the members' client port")
    members = dict(m.split("=", 1) for m in eflags.get("initial-cluster", "").split(",") if m)
    expected = {f"dst-etcd-{i}" for i in range(count)}
    if set(members) != expected:
        error(f"etcd --initial-cluster names {sorted(members)}, the pods are {sorted(expected)}")
    for name, url in members.items():
        if url != f"http://{name}.{headless}:{eports.get('peer')}":
            error(f"etcd --initial-cluster: {name} at {url}, not its pod's peer port")


def main():
    manifest, outdir = sys.argv[1], sys.argv[2]
    with open(manifest) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    services = by_kind.get("Service", {})
    configmaps = by_kind.get("ConfigMap", {})
    pvcs = by_kind.get("PersistentVolumeClaim", {})
    certificates = by_kind.get("Certificate", {})
    secrets_made = {c["spec"]["secretName"]: c for c in certificates.values()}

    # Workloads: selectors, mounts, probes.
    for workload, template in pod_specs(objects):
        name = f"{workload['kind']} {workload['metadata']['name']}"
        selector = workload["spec"]["selector"]["matchLabels"]
        if not matches(selector, template["metadata"].get("labels", {})):
            error(f"{name}: selector {selector} does not match its pod labels")
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        claim_templates = {t["metadata"]["name"]
                           for t in workload["spec"].get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                error(f"{name}: ConfigMap {v['configMap']['name']} does not exist")
            if "secret" in v and v["secret"]["secretName"] not in secrets_made:
                error(f"{name}: Secret {v['secret']['secretName']} is made by no Certificate")
            if "persistentVolumeClaim" in v and \
                    v["persistentVolumeClaim"]["claimName"] not in pvcs:
                error(f"{name}: claim {v['persistentVolumeClaim']['claimName']} does not exist")
        ports = container_ports(template)
        for c in template["spec"]["containers"]:
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                command = c.get(probe_name, {}).get("exec", {}).get("command", [])
                if command[:1] == ["dstctl"]:
                    print("dstctl-flags " + " ".join(
                        sorted({a[2:].split("=")[0] for a in command if a.startswith("--")})))
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claim_templates:
                    error(f"{name}: mount {m['name']} has no volume")
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_name, {})
                for kind in ("grpc", "tcpSocket", "httpGet"):
                    if kind in probe and probe[kind]["port"] not in ports:
                        error(f"{name}: {probe_name} port {probe[kind]['port']} "
                              "is not a container port")

    # Services.
    for svc in services.values():
        what = f"Service {svc['metadata']['name']}"
        pods = selected_pods(objects, svc["spec"]["selector"], what)
        for p in svc["spec"]["ports"]:
            if not has_port(pods, p.get("targetPort", p["port"])):
                error(f"{what}: targetPort {p.get('targetPort')} is not a port of its pods")
    for sts in by_kind.get("StatefulSet", {}).values():
        svc = services.get(sts["spec"]["serviceName"])
        if svc is None or svc["spec"].get("clusterIP") != "None":
            error(f"StatefulSet {sts['metadata']['name']}: serviceName "
                  f"{sts['spec']['serviceName']} is not a headless Service")

    # NetworkPolicies and PodMonitors.
    for np in by_kind.get("NetworkPolicy", {}).values():
        what = f"NetworkPolicy {np['metadata']['name']}"
        pods = selected_pods(objects, np["spec"]["podSelector"]["matchLabels"], what)
        for rule in np["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer:
                    selected_pods(objects, peer["podSelector"]["matchLabels"], what + " from")
            for p in rule.get("ports", []):
                if not has_port(pods, p["port"]):
                    error(f"{what}: port {p['port']} is not a port of its pods")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        selected_pods(objects, pdb["spec"]["selector"]["matchLabels"],
                      f"PodDisruptionBudget {pdb['metadata']['name']}")
    for pm in by_kind.get("PodMonitor", {}).values():
        what = f"PodMonitor {pm['metadata']['name']}"
        pods = selected_pods(objects, pm["spec"]["selector"]["matchLabels"], what)
        for ep in pm["spec"]["podMetricsEndpoints"]:
            if not has_port(pods, ep["port"]):
                error(f"{what}: port {ep['port']} is not a port of its pods")
        label = pm["spec"].get("jobLabel")
        for t in pods:
            if label and t["metadata"]["labels"].get(label) != pm["metadata"]["name"]:
                error(f"{what}: job label {label} of its pods is not {pm['metadata']['name']}")

    # The exporters.
    exporter_sts = by_kind.get("StatefulSet", {}).get("dst-exporter")
    if exporter_sts is None:
        error("no StatefulSet dst-exporter")
        return
    template = exporter_sts["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    flags = {}
    for arg in container["args"]:
        m = re.fullmatch(r"--([a-z-]+)(?:=(.*))?", arg)
        if not m:
            error(f"exporter: argument {arg!r} is not --flag[=value]")
            continue
        flags[m.group(1)] = re.sub(r"\$\((\w+)\)",
                                   lambda v: env.get(v.group(1)) or v.group(0),
                                   m.group(2) or "")
    print("exporter-flags " + " ".join(sorted(flags)))
    ports = container_ports(template)
    for flag, port_name in (("listen", "grpc"), ("metrics", "metrics")):
        _, port = host_port(flags.get(flag, ""), f"exporter --{flag}")
        if port is not None and ports.get(port_name) != port:
            error(f"exporter --{flag} port {port} is not container port {port_name}")
    claim = next(t for t in exporter_sts["spec"]["volumeClaimTemplates"])
    if bytes_of(flags["size"]) >= bytes_of(claim["spec"]["resources"]["requests"]["storage"]):
        error(f"exporter --size={flags['size']} does not fit its claim "
              f"{claim['spec']['resources']['requests']['storage']} with its state file")
    exporter_tls = "tls-cert" in flags

    # The gateway: its configuration, as mounted.
    gateway = by_kind["Deployment"]["dst-gateway"]
    gtemplate = gateway["spec"]["template"]
    gcontainer = gtemplate["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in gcontainer.get("volumeMounts", [])}
    gvolumes = {v["name"]: v for v in gtemplate["spec"]["volumes"]}
    config_arg = next(a for a in gcontainer["args"] if a.startswith("--config="))
    config_path = config_arg.split("=", 1)[1]

    def mounted(path):
        """(volume, key) serving a file path, or (None, None)."""
        best = max((p for p in mounts if path.startswith(p.rstrip("/") + "/")),
                   key=len, default=None)
        if best is None:
            return None, None
        return gvolumes[mounts[best]], os.path.relpath(path, best)

    volume, key = mounted(config_path)
    if volume is None or "configMap" not in volume:
        error(f"gateway: {config_path} is not mounted from a ConfigMap")
        return
    config_map = configmaps[volume["configMap"]["name"]]
    config = yaml.safe_load(config_map["data"][key])
    gports = container_ports(gtemplate)
    for address in config.get("listen", []):
        _, port = host_port(address, "gateway listen")
        if port is not None and gports.get("grpc") != port:
            error(f"gateway listen {address}: not container port grpc")
    _, metrics_port = host_port(config.get("metrics", ""), "gateway metrics")
    if gports.get("metrics") != metrics_port:
        error("gateway metrics port is not container port metrics")
    headless = exporter_sts["spec"]["serviceName"]
    for vol in config["volumes"]:
        for replica in vol["replicas"]:
            host, port = host_port(replica["address"], f"volume {vol['name']}")
            m = re.fullmatch(rf"dst-exporter-(\d+)\.{headless}(\.[a-z0-9.-]+)?", host or "")
            if not m or int(m.group(1)) >= exporter_sts["spec"]["replicas"]:
                error(f"volume {vol['name']}: replica {host} is not a pod of "
                      f"StatefulSet dst-exporter behind Service {headless}")
            if port != ports.get("grpc"):
                error(f"volume {vol['name']}: replica port {port} is not the exporters' grpc port")
            if exporter_tls and not name_in_cert(host, certificates["dst-exporter"]):
                error(f"replica {host} is not a name in the exporter certificate")

    check_ha(config, gateway, gcontainer, gports,
             by_kind.get("StatefulSet", {}).get("dst-etcd"))

    # The files the gateway configuration names: mounted, and rewritten for
    # --check-config. The ACL comes from its ConfigMap; TLS files are made
    # by the test (printed as "tls NAME PATH").
    os.makedirs(outdir, exist_ok=True)
    tls = config.get("tls", {})
    for field in ("cert", "key", "ca"):
        if field in tls:
            volume, key = mounted(tls[field])
            if volume is None or "secret" not in volume:
                error(f"gateway tls.{field} {tls[field]} is not mounted from a Secret")
            elif key not in ("tls.crt", "tls.key", "ca.crt"):
                error(f"gateway tls.{field}: {key} is not a key of a cert-manager Secret")
            tls[field] = os.path.join(outdir, "tls", field)
            print(f"tls {field} {tls[field]}")
    if "acl_file" in config:
        volume, key = mounted(config["acl_file"])
        if volume is None or "configMap" not in volume:
            error(f"gateway acl_file {config['acl_file']} is not mounted from a ConfigMap")
        else:
            acl_text = configmaps[volume["configMap"]["name"]]["data"].get(key)
            if acl_text is None:
                error(f"gateway acl_file: no key {key} in its ConfigMap")
            else:
                acl_path = os.path.join(outdir, "gateway-acl.yaml")
                with open(acl_path, "w") as f:
                    f.write(acl_text)
                config["acl_file"] = acl_path
                identities = {e.get("identity") for e in yaml.safe_load(acl_text)}
                if "dst-nbdkit" in certificates and \
                        certificates["dst-nbdkit"]["spec"]["commonName"] not in identities:
                    error("gateway ACL: nbdkit's certificate is not granted")
    config["state_dir"] = os.path.join(outdir, "state")
    with open(os.path.join(outdir, "gateway.yaml"), "w") as f:
        yaml.safe_dump(config, f)

    # The exporters' ACL grants the gateway's certificate.
    if "acl" in flags:
        volume_mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        directory, key = os.path.split(flags["acl"])
        volume = volumes.get(volume_mounts.get(directory, ""))
        if volume is None or "configMap" not in volume:
            error(f"exporter --acl={flags['acl']} is not mounted from a ConfigMap")
        else:
            acl = yaml.safe_load(configmaps[volume["configMap"]["name"]]["data"][key])
            gateway_cn = certificates["dst-gateway"]["spec"]["commonName"]
            if not any(e.get("identity") == gateway_cn and e["access"] == "read-write"
                       for e in acl):
                error(f"exporter ACL does not let {gateway_cn} read and write")

    # nbdkit: its gateway= is the gateway Service's gRPC port.
    nbdkit = by_kind["DaemonSet"]["dst-nbdkit"]["spec"]["template"]["spec"]["containers"][0]
    params = dict(a.split("=", 1) for a in nbdkit["args"])
    print("nbdkit-keys " + " ".join(sorted(params)))
    host, port = host_port(params.get("gateway", ""), "nbdkit gateway=")
    svc = services.get((host or "").split(".")[0])
    if svc is None or port not in [p["port"] for p in svc["spec"]["ports"]]:
        error(f"nbdkit gateway={params.get('gateway')} is not a port of a Service")
    elif [p for p in svc["spec"]["ports"] if p["port"] == port][0]["targetPort"] != "grpc":
        error(f"nbdkit gateway={params.get('gateway')} is not the gateway's grpc port")
    if params.get("tls") == "require" and \
            not name_in_cert(host, certificates["dst-gateway"]):
        error(f"nbdkit dials {host}, not a name in the gateway certificate")
    if params.get("volume") not in [v["name"] for v in config["volumes"]]:
        error(f"nbdkit volume={params.get('volume')} is not a volume of the gateway")


if __name__ == "__main__":
    main()
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)
