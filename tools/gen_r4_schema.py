#!/usr/bin/env python3
"""Generate src/fhir/r4_schema.json from the official FHIR R4 (4.0.1) definitions.

Usage: python3 tools/gen_r4_schema.py [PACKAGE_DIR] [OUTPUT]

PACKAGE_DIR defaults to /tmp/r4pkg/package (the unpacked npm package
hl7.fhir.r4.examples@4.0.1, CC0) and must contain Bundle-resources.json,
Bundle-types.json and Bundle-valuesets.json.  OUTPUT defaults to
src/fhir/r4_schema.json relative to the repository root.

Output format (loaded by the Rust validator with serde_json):

  {
    "fhirVersion": "4.0.1",
    "source": "...",
    "resources": [concrete resource type names, sorted],
    "primitives": [primitive type names, sorted],
    "types": {"<type name or backbone path>": [element, ...], ...},
    "valueSets": {"<ValueSet url without |version>": [code, ...], ...}
  }

Each element is [name, types, min, max, flags, binding]:
  name    last path segment, "[x]" removed
  types   list of type names (backbone elements / contentReference use the
          element path, e.g. "Patient.contact", "Questionnaire.item")
  min     integer
  max     1, 0, or -1 for "*" (any max > 1 is -1)
  flags   string of letters: c = choice ([x]), s = isSummary, m = isModifier
  binding ValueSet url when the element has a required binding, a code type,
          and the ValueSet's codes could be enumerated; otherwise null

Standard library only.
"""

import json
import os
import sys

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
SOURCE = ("hl7.fhir.r4.examples@4.0.1 Bundle-resources.json, Bundle-types.json, "
          "Bundle-valuesets.json (CC0)")


def load_bundle(directory, name):
    with open(os.path.join(directory, name), encoding="utf-8") as f:
        bundle = json.load(f)
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def strip_version(url):
    return url.split("|", 1)[0]


# ---------------------------------------------------------------- value sets

def collect_codes(concepts, out):
    for c in concepts or []:
        out.append(c["code"])
        collect_codes(c.get("concept"), out)


def expand_valueset(vs, codesystems):
    """Return the list of codes of a ValueSet, or None if not derivable."""
    compose = vs.get("compose")
    if not compose or compose.get("exclude"):
        return None
    includes = compose.get("include") or []
    if not includes:
        return None
    codes = []
    for inc in includes:
        if inc.get("filter") or inc.get("valueSet"):
            return None
        if inc.get("concept"):
            codes.extend(c["code"] for c in inc["concept"])
            continue
        system = inc.get("system")
        if not system:
            return None
        cs = codesystems.get(system)
        if cs is None or cs.get("content") != "complete":
            return None
        collect_codes(cs.get("concept"), codes)
    # de-duplicate, keep order
    seen = set()
    result = []
    for c in codes:
        if c not in seen:
            seen.add(c)
            result.append(c)
    return result


# --------------------------------------------------------------- structures

def type_name(t):
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or ext.get("valueString")
        if code in SYSTEM_TYPES:
            return SYSTEM_TYPES[code]
        raise SystemExit("unmapped system type %r" % code)
    return code


def parse_max(m):
    if m == "*":
        return -1
    n = int(m)
    if n > 1:
        return -1
    return n


def build_types(sd, valuesets_needed):
    """Return {path: [elements]} for one StructureDefinition.

    Elements are returned with their raw binding url (or None); the binding is
    resolved later once we know which ValueSets are derivable.
    """
    elements = sd["snapshot"]["element"]
    paths = [e["path"] for e in elements]
    root = sd["type"]
    # paths that have children in this snapshot
    parents = set()
    for p in paths:
        if "." in p:
            parents.add(p.rsplit(".", 1)[0])
    out = {root: []}
    for el in elements:
        path = el["path"]
        if "." not in path:
            continue  # the root element
        parent, last = path.rsplit(".", 1)
        choice = last.endswith("[x]")
        name = last[:-3] if choice else last
        if "contentReference" in el:
            ref = el["contentReference"]
            if not ref.startswith("#"):
                raise SystemExit("unexpected contentReference %r" % ref)
            types = [ref[1:]]
        else:
            raw = [type_name(t) for t in el.get("type", [])]
            if path in parents and (raw in (["BackboneElement"], ["Element"])):
                types = [path]
                out.setdefault(path, [])
            else:
                if path in parents:
                    raise SystemExit("element %s has children but type %r" % (path, raw))
                types = raw
            if not types:
                raise SystemExit("element %s has no type" % path)
        flags = ""
        if choice:
            flags += "c"
        if el.get("isSummary"):
            flags += "s"
        if el.get("isModifier"):
            flags += "m"
        binding = None
        b = el.get("binding")
        if b and b.get("strength") == "required" and b.get("valueSet") and "code" in types:
            binding = strip_version(b["valueSet"])
            valuesets_needed.add(binding)
        if parent not in out:
            raise SystemExit("parent %s of %s not seen before (or not a backbone)" % (parent, path))
        out[parent].append([name, types, int(el.get("min", 0)), parse_max(el.get("max", "*")),
                            flags, binding])
    return out


def main(argv):
    pkg = argv[1] if len(argv) > 1 else "/tmp/r4pkg/package"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = argv[2] if len(argv) > 2 else os.path.join(repo, "src", "fhir", "r4_schema.json")

    res = load_bundle(pkg, "Bundle-resources.json")
    typ = load_bundle(pkg, "Bundle-types.json")
    vsb = load_bundle(pkg, "Bundle-valuesets.json")

    sds = [r for r in res + typ if r.get("resourceType") == "StructureDefinition"]

    resources = []
    primitives = []
    selected = []  # StructureDefinitions that get "types" entries
    for sd in sds:
        kind = sd.get("kind")
        if kind == "resource":
            if sd.get("abstract"):
                continue  # Resource, DomainResource
            if sd.get("derivation") != "specialization":
                continue
            resources.append(sd["type"])
            selected.append(sd)
        elif kind == "primitive-type":
            primitives.append(sd["type"])
        elif kind == "complex-type":
            # Element is the abstract root (no derivation); keep it and the
            # specialisations, skip constraint profiles (SimpleQuantity,
            # MoneyQuantity).
            if sd.get("derivation") == "specialization" or sd["type"] == "Element" and \
                    "baseDefinition" not in sd:
                if sd["id"] != sd["type"]:
                    continue
                selected.append(sd)
    resources.sort()
    primitives.sort()

    needed = set()
    types = {}
    for sd in selected:
        for k, v in build_types(sd, needed).items():
            if k in types:
                raise SystemExit("duplicate type entry %s" % k)
            types[k] = v

    # sanity: every referenced type name resolves
    known = set(types) | set(primitives) | {"Resource"}
    for k, elems in types.items():
        for e in elems:
            for t in e[1]:
                if t not in known:
                    raise SystemExit("unknown type %r in %s.%s" % (t, k, e[0]))

    codesystems = {}
    valuesets = {}
    for r in vsb:
        if r.get("resourceType") == "CodeSystem":
            codesystems[r["url"]] = r
        elif r.get("resourceType") == "ValueSet":
            valuesets[r["url"]] = r

    vs_codes = {}
    skipped = []
    for url in sorted(needed):
        vs = valuesets.get(url)
        codes = expand_valueset(vs, codesystems) if vs else None
        if codes:
            vs_codes[url] = codes
        else:
            skipped.append(url)

    bound = 0
    for elems in types.values():
        for e in elems:
            if e[5] is not None:
                if e[5] in vs_codes:
                    bound += 1
                else:
                    e[5] = None

    def dumps(x):
        return json.dumps(x, separators=(",", ":"), ensure_ascii=False)

    parts = ['{"fhirVersion":"4.0.1",\n"source":', dumps(SOURCE), ',\n"resources":', dumps(resources),
             ',\n"primitives":', dumps(primitives), ',\n"types":{\n']
    parts.append(",\n".join(dumps(k) + ":" + dumps(types[k]) for k in sorted(types)))
    parts.append('\n},\n"valueSets":{\n')
    parts.append(",\n".join(dumps(k) + ":" + dumps(vs_codes[k]) for k in sorted(vs_codes)))
    parts.append("\n}}\n")
    text = "".join(parts)
    json.loads(text)  # self-check

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)

    n_complex = sum(1 for sd in selected if sd["kind"] == "complex-type")
    print("resources: %d" % len(resources))
    print("primitives: %d" % len(primitives))
    print("complex data types: %d" % n_complex)
    print("types entries: %d (incl. %d backbone paths)" % (len(types), len(types) - len(selected)))
    print("required code bindings: %d value sets referenced, %d enumerated, %d skipped; %d elements bound"
          % (len(needed), len(vs_codes), len(skipped), bound))
    for url in skipped:
        print("  skipped value set: %s" % url)
    print("wrote %s (%d bytes)" % (out_path, len(text.encode("utf-8"))))


if __name__ == "__main__":
    main(sys.argv)
