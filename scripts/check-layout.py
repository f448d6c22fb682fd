#!/usr/bin/env python3
"""Checks that the tree still draws the architecture (ARCHITECTURE.md).

  scripts/check-layout.py [--max-lines N] [--only headers|layers|timers|lengths]

- every framework/src/<path>.cpp has the header of its name: the public
  framework/include/coronet/<path>.hpp or a private framework/src/<path>.hpp;
- no #include runs from a folder to one its layer may not use (LAYERS below);
- no code in framework/ or apps/ holds an Asio timer but time.hpp and
  time.cpp, the one deadline mechanism (alarm, wakeup, with_deadline);
- no function in framework/ or apps/ is longer than --max-lines (60), as
  universal-ctags measures it (first to last line, lambdas counted in the
  function that holds them and on their own).

Prints every finding and exits 1 if there is one; 2 when ctags is missing.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORK = os.path.join(ROOT, "framework")
INCLUDE = os.path.join(FRAMEWORK, "include", "coronet")
SRC = os.path.join(FRAMEWORK, "src")

# What each folder may include besides itself. "core" is the root of
# include/coronet and src/ (runtime, task, time, config, log, metrics) with
# detail/ and sync/. Keep in step with ARCHITECTURE.md.
LAYERS = {
    "core": set(),
    "net": {"core"},
    "http": {"core", "net"},
    "http1": {"core", "net", "http"},
    "http2": {"core", "net", "http", "http1"},
    "websocket": {"core", "net", "http"},
    "server": {"core", "net", "http", "http1", "http2"},
    "client": {"core", "net", "http", "http1", "http2"},
    "middleware": {"core", "net", "http"},
    "testing": {"core", "net", "http", "http1", "server"},
    "grpc": {"core", "net", "http", "http2", "client", "middleware"},
    "app": {"core", "net", "http", "http1", "http2", "websocket", "server", "client", "middleware", "grpc"},
    "pg": {"core", "net"},
    "redis": {"core", "net"},
}


def folder_of(relative):
    """The layer of a path relative to include/coronet or src."""
    head = relative.split("/", 1)[0] if "/" in relative else ""
    return "core" if head in ("", "detail", "sync") else head


def sources(top, suffixes):
    for base, _, names in os.walk(top):
        for name in sorted(names):
            if name.endswith(suffixes):
                path = os.path.join(base, name)
                yield path, os.path.relpath(path, top)


def check_mirror():
    found = []
    for path, rel in sources(SRC, (".cpp",)):
        stem = rel[: -len(".cpp")]
        if not (os.path.exists(os.path.join(INCLUDE, stem + ".hpp")) or os.path.exists(os.path.join(SRC, stem + ".hpp"))):
            found.append(f"framework/src/{rel}: no header of its name (include/coronet/{stem}.hpp or src/{stem}.hpp)")
    return found


INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def check_layers():
    found = []
    for top, label in ((INCLUDE, "framework/include/coronet"), (SRC, "framework/src")):
        for path, rel in sources(top, (".cpp", ".hpp")):
            mine = folder_of(rel)
            allowed = LAYERS.get(mine)
            if allowed is None:
                found.append(f"{label}/{rel}: folder '{mine}' has no layer (add it to LAYERS and ARCHITECTURE.md)")
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE_RE.match(line)
                    if not m:
                        continue
                    target = m.group(1)
                    if "../" in target:
                        found.append(f"{label}/{rel}:{number}: '{target}' climbs folders; name it from src/ or coronet/")
                        continue
                    if target.startswith("coronet/"):
                        target = target[len("coronet/"):]
                    elif '"' not in line:
                        continue  # a system or third-party header
                    theirs = folder_of(target)
                    if theirs != mine and theirs not in allowed:
                        found.append(f"{label}/{rel}:{number}: {mine}/ includes {m.group(1)} ({theirs}/), "
                                     f"which its layer may not use")
    return found


TIMER_RE = re.compile(r"\b(steady_timer|system_timer|high_resolution_timer|deadline_timer|basic_waitable_timer)\b")
TIME_FILES = {os.path.join(INCLUDE, "time.hpp"), os.path.join(SRC, "time.cpp")}


def check_timers():
    found = []
    for top in (FRAMEWORK, os.path.join(ROOT, "apps")):
        for path, _ in sources(top, (".cpp", ".hpp")):
            if path in TIME_FILES:
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    code = line.split("//", 1)[0]
                    if TIMER_RE.search(code):
                        found.append(f"{os.path.relpath(path, ROOT)}:{number}: an Asio timer outside time.hpp; "
                                     "use coronet::alarm, wakeup or with_deadline")
    return found


def check_lengths(limit):
    ctags = shutil.which("ctags")
    if not ctags:
        print("check-layout: universal-ctags is missing (scripts/setup.sh installs it)", file=sys.stderr)
        sys.exit(2)
    files = [p for top in (FRAMEWORK, os.path.join(ROOT, "apps")) for p, _ in sources(top, (".cpp", ".hpp"))]
    out = subprocess.run([ctags, "--languages=C++", "--c++-kinds=f", "--fields=+ne", "--output-format=json",
                          "-o", "-", *files], check=True, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        tag = json.loads(line)
        if tag.get("_type") != "tag" or "end" not in tag:
            continue
        length = tag["end"] - tag["line"] + 1
        if length > limit:
            name = tag["name"] if not tag["name"].startswith("__anon") else "a lambda"
            scope = tag.get("scope", "")
            where = os.path.relpath(tag["path"], ROOT)
            found.append(f"{where}:{tag['line']}: {scope + '::' if scope else ''}{name} is {length} lines (> {limit})")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-lines", type=int, default=60)
    parser.add_argument("--only", choices=("headers", "layers", "timers", "lengths"))
    args = parser.parse_args()
    checks = {"headers": check_mirror, "layers": check_layers, "timers": check_timers, "lengths": lambda: check_lengths(args.max_lines)}
    findings = [f for name, check in checks.items() if args.only in (None, name) for f in check()]
    for f in findings:
        print(f)
    if findings:
        print(f"check-layout: {len(findings)} finding(s)", file=sys.stderr)
        return 1
    said = {"headers": "every source has its header", "layers": "every include respects the layers",
            "timers": "every timer is time.hpp's",
            "lengths": f"no function over {args.max_lines} lines"}
    print("check-layout: " + ", ".join(text for name, text in said.items() if args.only in (None, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
