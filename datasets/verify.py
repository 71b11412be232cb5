#!/usr/bin/env python3
"""Checks datasets/traces against manifest.json: every line is schema-1 JSON, counts match, and
each attack trace holds its characteristic events after attack_start_ns."""
import gzip, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))

def has(evs, pred):
    return any(pred(e) for e in evs)

def argv(e):
    return " ".join(e.get("argv", []))

CHECKS = {
    "miner": [
        ("exec of xmrig with a stratum pool", lambda e: e["kind"] == "exec" and e["filename"].endswith("/xmrig") and "stratum+tcp://" in argv(e)),
        ("xmrig connects to the pool", lambda e: e["kind"] == "connect" and e["comm"] == "xmrig" and e.get("addr") == "127.0.0.1"),
    ],
    "reverse_shell": [
        ("bash -i to /dev/tcp", lambda e: e["kind"] == "exec" and "/dev/tcp/127.0.0.1/" in argv(e)),
        ("bash connects to the listener", lambda e: e["kind"] == "connect" and e["comm"] == "bash" and e.get("addr") == "127.0.0.1"),
        ("uname run by the shell", lambda e: e["kind"] == "exec" and e["comm"] == "uname"),
    ],
    "credentials": [
        ("open /etc/shadow", lambda e: e["kind"] == "open" and e["path"] == "/etc/shadow"),
        ("open id_rsa", lambda e: e["kind"] == "open" and e["path"].endswith("/.ssh/id_rsa")),
        ("open service-account token", lambda e: e["kind"] == "open" and e["path"].endswith("serviceaccount/token")),
    ],
    "download_exec": [
        ("curl writes into /tmp", lambda e: e["kind"] == "open" and e["comm"] == "curl" and e["path"].startswith("/tmp/") and e["access"] != "read"),
        ("chmod", lambda e: e["kind"] == "exec" and e["comm"] == "chmod"),
        ("exec of the downloaded script", lambda e: e["kind"] == "exec" and e["filename"].startswith("/tmp/.sysupdate-")),
    ],
    "port_scan": [
        (">= 150 distinct connect ports", None),
    ],
    "server_shell": [
        ("sh spawned by python3", lambda e: e["kind"] == "exec" and e["comm"] == "sh" and "python3" in e.get("parent_exe", "")),
        ("cat /etc/passwd", lambda e: e["kind"] == "exec" and e["argv"][:2] == ["cat", "/etc/passwd"]),
    ],
}

ok = True
manifest = json.load(open(os.path.join(HERE, "manifest.json")))
total = 0
for m in manifest:
    path = os.path.join(HERE, m["file"])
    evs = [json.loads(l) for l in gzip.open(path, "rt")]
    total += os.path.getsize(path)
    bad = [e for e in evs if e.get("schema") != 1]
    wl = {e["workload"]["id"] for e in evs}
    msg = [f"{m['name']:14} {m['kind']:6} {len(evs):6} events {m['seconds']:6}s {os.path.getsize(path):8} B  workloads={sorted(wl)}"]
    if bad or len(evs) != m["events"]:
        ok = False
        msg.append(f"  FAIL: {len(bad)} non-schema-1 lines, manifest events {m['events']}")
    if m["kind"] == "attack":
        after = [e for e in evs if e["ts_ns"] >= m["attack_start_ns"]]
        before = len(evs) - len(after)
        msg.append(f"  {before} events before the attack, {len(after)} after")
        for label, pred in CHECKS.get(m["name"], []):
            if pred is None:
                ports = {e.get("port") for e in after if e["kind"] == "connect" and e.get("addr") == "127.0.0.1"}
                good = len(ports) >= 150
            else:
                good = has(after, pred)
            ok &= good
            msg.append(f"  {'ok  ' if good else 'FAIL'} {label}")
    print("\n".join(msg))
print(f"total {total} bytes")
sys.exit(0 if ok else 1)
