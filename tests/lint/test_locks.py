#!/usr/bin/env python3
"""lint.test-locks: the host suite stays serial when ctest runs with -j (scripts/test.sh: -j2).

Reads `ctest --show-only=json-v1` of a build tree and checks that every test outside labels vm,
package and beside holds the host suite's lock (RESOURCE_LOCK, tests/CMakeLists.txt's
NT_HOST_LOCK) or runs alone (RUN_SERIAL), and that vm.image, vm.boot, package.deb and the tests
labelled beside (CPU work that touches no namespace, interface, pin or bus: lint.tidy) hold
neither, so they run beside the host suite. Usage: test_locks.py BUILD_DIR LOCK. Exit 1 names the tests that break the rule.
"""
import json
import subprocess
import sys


def props(test):
    return {p["name"]: p["value"] for p in test.get("properties", [])}


def main():
    build, lock = sys.argv[1], sys.argv[2]
    out = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build, check=True,
                         capture_output=True, text=True).stdout
    tests = json.loads(out)["tests"]
    bad = []
    host = 0
    for t in tests:
        p = props(t)
        labels = p.get("LABELS", [])
        locked = lock in p.get("RESOURCE_LOCK", [])
        serial = bool(p.get("RUN_SERIAL", False))
        if {"vm", "package", "beside"} & set(labels):
            free = t["name"] in ("vm.image", "vm.boot", "package.deb") or "beside" in labels
            if free and (locked or serial):
                bad.append(f"{t['name']}: holds {lock} or RUN_SERIAL, so it cannot run beside the host suite")
            continue
        host += 1
        if not (locked or serial):
            bad.append(f"{t['name']}: neither RESOURCE_LOCK {lock} nor RUN_SERIAL; it would run beside "
                       "another host test under ctest -j2")
    for b in bad:
        print(b)
    print(f"test-locks: {len(tests)} tests, {host} in the host suite, {len(bad)} wrong")
    return 1 if bad or host == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
