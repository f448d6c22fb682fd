#!/usr/bin/env python3
"""Turns compare.sh's raw outputs into primitives.json and primitives.md."""
import json
import os
import platform
import re
import statistics
import subprocess
import sys

out, coronet_parked, go_parked, reps, command = sys.argv[1:6]

# name: (coronet benchmark, Go benchmark, target ratio ours/Go or None)
rows = [
    ("spawn_join", "BM_spawn_join/real_time", "SpawnJoin", 0.5),
    ("channel_pingpong", "BM_channel_pingpong/real_time", "ChannelPingpong", 0.5),
    ("channel_buffered/1024", "BM_channel_buffered/1024/real_time", "ChannelBuffered1024", 0.8),
    ("fanout/16", "BM_fanout/16/real_time", "Fanout16", 0.5),
    ("select/2", "BM_select/2/real_time", "Select2", None),
    ("channel_pingpong_cross_worker", "BM_channel_pingpong_cross_worker/real_time", "ChannelPingpongCrossWorker", 2.0),
]

ours = {}
for name in ("coronet-primitives.json", "coronet-cross.json"):
    with open(os.path.join(out, name)) as f:
        for b in json.load(f)["benchmarks"]:
            if b.get("aggregate_name") == "median":
                ours[b["run_name"]] = b["real_time"]  # ns

go = {}
for name in ("go-primitives.txt", "go-cross.txt"):
    with open(os.path.join(out, name)) as f:
        for line in f:
            m = re.match(r"Benchmark(\w+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
            if m:
                go.setdefault(m.group(1), []).append(float(m.group(3)))
go = {k: statistics.median(v) for k, v in go.items()}

def parked(text):
    return int(re.search(r"bytes_per_parked_task=(-?\d+)", text).group(1))

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

go_version = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
result = {"command": command, "repetitions": int(reps), "machine": {"cpus": os.cpu_count(), "cpu": cpu_model()},
          "go": go_version, "rows": []}
lines = ["| benchmark | coronet | Go | ours / Go | target | met |", "| --- | ---: | ---: | ---: | ---: | :---: |"]

def fmt_ns(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 10000 else f"{ns:.1f} ns"

for name, ours_key, go_key, target in rows:
    o, g = ours.get(ours_key), go.get(go_key)
    ratio = o / g if o and g else None
    met = "" if target is None or ratio is None else ("yes" if ratio <= target else "**no**")
    result["rows"].append({"name": name, "coronet_ns": o, "go_ns": g, "ratio": ratio, "target": target})
    lines.append(f"| {name} | {fmt_ns(o) if o else 'n/a'} | {fmt_ns(g) if g else 'n/a'} | "
                 f"{ratio:.2f} | {'≤ ' + str(target) if target else '—'} | {met} |" if ratio else
                 f"| {name} | n/a | n/a | n/a | — | |")
po, pg = parked(coronet_parked), parked(go_parked)
result["rows"].append({"name": "bytes_per_parked_task", "coronet": po, "go": pg, "ratio": po / pg, "target": 0.15})
lines.append(f"| bytes per parked task | {po} B | {pg} B | {po / pg:.2f} | ≤ 0.15 | {'yes' if po / pg <= 0.15 else '**no**'} |")

with open(os.path.join(out, "primitives.json"), "w") as f:
    json.dump(result, f, indent=2)
table = "\n".join(lines)
with open(os.path.join(out, "primitives.md"), "w") as f:
    f.write(table + "\n")
print(f"machine: {result['machine']['cpus']} x {result['machine']['cpu']}; {go_version}")
print(f"medians of {reps} runs; command: {command}\n")
print(table)
