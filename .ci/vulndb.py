#!/usr/bin/env python3
"""Builds the Go vulnerability database that govulncheck reads (-db
file://DIR, schema v1: index/db.json, index/modules.json, ID/<id>.json)
from the OSV entries of the golang.org/x/vulndb module, which the Go module
proxy serves: CI reaches the proxy, not vuln.go.dev.

usage: vulndb.py VULNDB_MODULE_DIR OUT_DIR
"""
import json
import os
import sys

src, dst = os.path.join(sys.argv[1], "data", "osv"), sys.argv[2]
os.makedirs(os.path.join(dst, "ID"), exist_ok=True)
os.makedirs(os.path.join(dst, "index"), exist_ok=True)
ZERO = "0001-01-01T00:00:00Z"
DEFAULT = "2000-01-01T00:00:00Z"  # the repository's entries carry no dates: the server sets them
modules, newest = {}, DEFAULT
for name in sorted(os.listdir(src)):
    if not name.endswith(".json"):
        continue
    with open(os.path.join(src, name)) as f:
        entry = json.load(f)
    for field in ("modified", "published"):
        if entry.get(field, ZERO) == ZERO:
            entry[field] = DEFAULT
    newest = max(newest, entry["modified"])
    with open(os.path.join(dst, "ID", entry["id"] + ".json"), "w") as f:
        json.dump(entry, f)
    for affected in entry.get("affected", []):
        path = affected["package"]["name"]
        fixed = ""
        for r in affected.get("ranges", []):
            for event in r.get("events", []):
                fixed = event.get("fixed", fixed)
        vuln = {"id": entry["id"], "modified": entry["modified"]}
        if fixed:
            vuln["fixed"] = fixed
        modules.setdefault(path, []).append(vuln)
with open(os.path.join(dst, "index", "db.json"), "w") as f:
    json.dump({"modified": newest}, f)
with open(os.path.join(dst, "index", "modules.json"), "w") as f:
    json.dump([{"path": p, "vulns": v} for p, v in sorted(modules.items())], f)
print(f"{sum(len(v) for v in modules.values())} entries for {len(modules)} modules in {dst}", file=sys.stderr)
