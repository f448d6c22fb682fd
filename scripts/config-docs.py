#!/usr/bin/env python3
"""CONFIG.md and configs/*.toml, from the keys the apps declare.

    scripts/config-docs.py BIN_DIR           rewrites CONFIG.md
    scripts/config-docs.py BIN_DIR --check   fails when CONFIG.md is not what the
                                             apps declare, or when a file in
                                             configs/ sets a key that is not the
                                             app's or repeats its default (an
                                             address, a key ending in `listen`
                                             or in [backends], may: it says
                                             where the service is)

The keys come from each app's --print-keys (the tables beside the options
they fill), so nothing here restates a default.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = ["hello", "echo", "backend", "gateway", "chat"]
OPTIONAL_APPS = ["techempower"]  # built when coronet::pg is (libpq-dev)

HEADER = """# Configuration keys

Every key of every app, as the apps declare them (each table lives beside
the options it fills: `runtime.hpp`, `log.hpp`, `http/server_options.hpp`,
`net/tls.hpp`, `client/client.hpp`, `middleware/*.hpp`,
`websocket/websocket.hpp`, and each app's own). A key is set, from lowest to
highest: its default, the `[section]` of a `--config` TOML file,
`CORONET_SECTION_KEY` in the environment, a flag (`--set section.key=value`).
Bounds are checked whatever set the value; an unknown key names the closest
known one. `coronet-<app> --print-keys` prints an app's table,
`--print-config` its effective configuration with where each value came
from. This file is generated: `scripts/config-docs.py build/bin`.
"""


def rows(bin_dir, app):
    out = subprocess.run([os.path.join(bin_dir, f"coronet-{app}"), "--print-keys"], check=True,
                         capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        table[cells[0].strip("`")] = (line, cells[1].strip("`"))
    return table


def present_apps(bin_dir):
    return APPS + [a for a in OPTIONAL_APPS if os.path.exists(os.path.join(bin_dir, f"coronet-{a}"))]


def document(bin_dir):
    apps = present_apps(bin_dir)
    tables = {app: rows(bin_dir, app) for app in apps}
    common = tables["hello"]  # the framework's keys, as an app that adds none sees them
    head = "| key | default | bounds | what it does |\n| --- | --- | --- | --- |\n"
    text = HEADER + "\n## Every app\n\n" + head + "".join(line + "\n" for line, _ in common.values())
    for app in apps[1:]:
        own = [line for key, (line, _) in tables[app].items() if common.get(key, (None,))[0] != line]
        text += f"\n## coronet-{app}\n\n" + head + "".join(line + "\n" for line in own)
    return text, tables


def repeated_defaults(bin_dir, app, table):
    path = os.path.join("configs", f"{app}.toml")
    run = subprocess.run([os.path.join(bin_dir, f"coronet-{app}"), "--config", os.path.join(ROOT, path),
                          "--print-config"], capture_output=True, text=True)
    if run.returncode != 0:
        return [f"{path}: does not load: {run.stderr.strip()}"]
    found, section = [], ""
    for line in run.stdout.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if " = " not in line or "# " not in line:
            continue
        name, rest = line.split(" = ", 1)
        value, origin = rest.rsplit("   # ", 1)
        key = f"{section}.{name}"
        if ".toml:" not in origin:
            continue  # not set by the file
        address = key.endswith("listen") or key.startswith("backends.")
        if not address and table.get(key, (None, None))[1] == value:
            found.append(f"{path}: {key} = {value} repeats its default ({origin.rsplit('/', 1)[-1]})")
    return found


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir, check = sys.argv[1], "--check" in sys.argv[2:]
    text, tables = document(bin_dir)
    target = os.path.join(ROOT, "CONFIG.md")
    if not check:
        with open(target, "w") as f:
            f.write(text)
        print("config-docs: wrote CONFIG.md")
        return 0
    problems = []
    if not os.path.exists(target) or open(target).read() != text:
        problems.append("CONFIG.md is not what the apps declare: run scripts/config-docs.py build/bin")
    for app in tables:
        problems += repeated_defaults(bin_dir, app, tables[app])
        shown = subprocess.run([os.path.join(bin_dir, f"coronet-{app}"), "--help"], capture_output=True,
                               text=True).stdout
        problems += [f"coronet-{app} --help does not list {key}" for key in tables[app] if f"  {key} = " not in shown]
    for p in problems:
        print("config-docs:", p)
    if not problems:
        print("config-docs: CONFIG.md and configs/*.toml agree with the keys the apps declare")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
