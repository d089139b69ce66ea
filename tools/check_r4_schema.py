#!/usr/bin/env python3
"""Check the FHIR R4 example instances against src/fhir/r4_schema.json.

Usage: python3 tools/check_r4_schema.py [PACKAGE_DIR] [SCHEMA]

Walks every *.json file in PACKAGE_DIR (default /tmp/r4pkg/package, skipping
package.json and .index.json), validates it as a resource against the schema
produced by tools/gen_r4_schema.py and reports:

  * unknown elements (names the schema does not know)      -> the main result
  * structural problems: array given for a max-1 element, wrong JSON kind for
    a primitive / complex value, "_x" companions of non-primitive elements,
    bad or unknown resourceType
  * informational: single value for a repeating element, missing min>=1
    elements, codes outside a required-binding value set

Standard library only.
"""

import json
import os
import re
import sys
from collections import Counter, defaultdict

INT_TYPES = {"integer", "positiveInt", "unsignedInt"}


class Checker:
    def __init__(self, schema):
        self.resources = set(schema["resources"])
        self.primitives = set(schema["primitives"])
        self.valuesets = {k: set(v) for k, v in schema["valueSets"].items()}
        self.types = {}
        for tname, elems in schema["types"].items():
            direct = {}
            choice = {}
            for e in elems:
                name, types, mn, mx, flags, binding = e
                if "c" in flags:
                    for t in types:
                        choice[name + t[0].upper() + t[1:]] = (e, t)
                else:
                    if len(types) != 1:
                        raise SystemExit("non-choice element with several types: %s.%s" % (tname, name))
                    direct[name] = (e, types[0])
            self.types[tname] = (elems, direct, choice)
        # results
        self.problems = defaultdict(list)   # category -> [(file, location, detail)]
        self.binding_bad = []               # (file, location, valueset, code)
        self.binding_checked = 0
        self.binding_vs_used = Counter()
        self.files_with_binding_bad = set()
        self.file = None

    def report(self, category, loc, detail=""):
        self.problems[category].append((self.file, loc, detail))

    # --------------------------------------------------------------
    def check_resource(self, obj, loc):
        if not isinstance(obj, dict):
            self.report("resource is not an object", loc)
            return
        rt = obj.get("resourceType")
        if rt not in self.resources:
            self.report("unknown resourceType", loc, repr(rt))
            return
        self.check_object(obj, rt, loc, is_resource=True)

    def resolve(self, tname, key):
        _, direct, choice = self.types[tname]
        if key in direct:
            return direct[key]
        if key in choice:
            return choice[key]
        return None

    def check_object(self, obj, tname, loc, is_resource=False):
        elems, direct, choice = self.types[tname]
        present = set()
        for key, val in obj.items():
            if key == "fhir_comments":
                continue
            if key == "resourceType" and (is_resource or key not in direct):
                if not is_resource:
                    self.report("resourceType on a non-resource", loc + ".resourceType")
                continue
            if key.startswith("_"):
                r = self.resolve(tname, key[1:])
                if r is None:
                    self.report("unknown element", "%s.%s" % (loc, key), tname)
                    continue
                e, t = r
                present.add(e[0])
                if t not in self.primitives:
                    self.report("_companion of non-primitive", "%s.%s" % (loc, key), t)
                    continue
                items = val if isinstance(val, list) else [val]
                if isinstance(val, list) and e[3] != -1:
                    self.report("array for max-1 element", "%s.%s" % (loc, key))
                if isinstance(val, list) and isinstance(obj.get(key[1:]), list) and \
                        len(val) != len(obj[key[1:]]):
                    self.report("_companion array length mismatch", "%s.%s" % (loc, key))
                for i, it in enumerate(items):
                    iloc = "%s.%s[%d]" % (loc, key, i) if isinstance(val, list) else "%s.%s" % (loc, key)
                    if it is None:
                        continue
                    if not isinstance(it, dict):
                        self.report("_companion is not an object", iloc)
                        continue
                    self.check_object(it, "Element", iloc)
                continue
            r = self.resolve(tname, key)
            if r is None:
                self.report("unknown element", "%s.%s" % (loc, key), tname)
                continue
            e, t = r
            present.add(e[0])
            name, types, mn, mx, flags, binding = e
            if isinstance(val, list):
                if mx != -1:
                    self.report("array for max-1 element", "%s.%s" % (loc, key))
                if not val:
                    self.report("empty array", "%s.%s" % (loc, key))
                items = val
                multi = True
            else:
                if mx == -1:
                    self.report("single value for repeating element (info)", "%s.%s" % (loc, key))
                items = [val]
                multi = False
            for i, it in enumerate(items):
                iloc = "%s.%s[%d]" % (loc, key, i) if multi else "%s.%s" % (loc, key)
                self.check_value(it, t, binding, iloc, companion=obj.get("_" + key))
        for e in elems:
            if e[2] >= 1 and e[0] not in present:
                self.report("missing required element (info)", "%s.%s" % (loc, e[0]), tname)

    def check_value(self, val, t, binding, loc, companion=None):
        if t in self.primitives:
            if val is None:
                if companion is None:
                    self.report("null primitive without _companion", loc)
                return
            ok = True
            if t == "boolean":
                ok = isinstance(val, bool)
            elif t in INT_TYPES:
                ok = isinstance(val, int) and not isinstance(val, bool)
            elif t == "decimal":
                ok = isinstance(val, (int, float)) and not isinstance(val, bool)
            else:
                ok = isinstance(val, str)
            if not ok:
                self.report("wrong JSON kind for primitive", loc, "%s: %r" % (t, val))
                return
            if binding is not None:
                self.binding_checked += 1
                self.binding_vs_used[binding] += 1
                if val not in self.valuesets[binding]:
                    self.binding_bad.append((self.file, loc, binding, val))
                    self.files_with_binding_bad.add(self.file)
            return
        if t == "Resource":
            self.check_resource(val, loc)
            return
        if not isinstance(val, dict):
            self.report("complex value is not an object", loc, "%s: %r" % (t, val)[:80])
            return
        self.check_object(val, t, loc)


def main(argv):
    pkg = argv[1] if len(argv) > 1 else "/tmp/r4pkg/package"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    schema_path = argv[2] if len(argv) > 2 else os.path.join(repo, "src", "fhir", "r4_schema.json")
    with open(schema_path, encoding="utf-8") as f:
        ck = Checker(json.load(f))

    files = sorted(n for n in os.listdir(pkg)
                   if n.endswith(".json") and n not in ("package.json", ".index.json"))
    rt_count = Counter()
    for n in files:
        ck.file = n
        with open(os.path.join(pkg, n), encoding="utf-8") as f:
            obj = json.load(f)
        if isinstance(obj, dict):
            rt_count[obj.get("resourceType")] += 1
        ck.check_resource(obj, obj.get("resourceType", "?") if isinstance(obj, dict) else "?")

    print("files checked: %d (%d resource types)" % (len(files), len(rt_count)))
    for cat in sorted(ck.problems):
        lst = ck.problems[cat]
        nfiles = len({p[0] for p in lst})
        print("\n== %s: %d occurrences in %d files" % (cat, len(lst), nfiles))
        info = cat.endswith("(info)")
        # group by (type-level) key: strip array indexes from location
        groups = defaultdict(list)
        for fn, loc, detail in lst:
            groups[re.sub(r"\[\d+\]", "", loc)].append((fn, detail))
        shown = 0
        for g, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            if info and shown >= 15:
                print("   ... %d more locations" % (len(groups) - shown))
                break
            fl = sorted({fn for fn, _ in items})
            det = items[0][1]
            print("  %4d  %s  %s  [%s%s]" % (len(items), g, det, ", ".join(fl[:3]),
                                             " +%d" % (len(fl) - 3) if len(fl) > 3 else ""))
            shown += 1

    print("\n== required-binding codes: %d checked, %d outside the value set, in %d files"
          % (ck.binding_checked, len(ck.binding_bad), len(ck.files_with_binding_bad)))
    print("  (%d of %d enumerated value sets exercised by the examples)"
          % (len(ck.binding_vs_used), len(ck.valuesets)))
    byvs = defaultdict(list)
    for fn, loc, vs, code in ck.binding_bad:
        byvs[(vs, code)].append((fn, loc))
    for (vs, code), items in sorted(byvs.items(), key=lambda kv: -len(kv[1])):
        print("  %4d  %-70s %r  e.g. %s %s" % (len(items), vs, code, items[0][0], items[0][1]))


if __name__ == "__main__":
    main(sys.argv)
