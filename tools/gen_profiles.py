#!/usr/bin/env python3
"""Generate src/fhir/r4_constraints.json (the invariants of the R4 resources
and data types) and profiles/*.json (the R4 core constraint profiles) from
the official FHIR R4 (4.0.1) definitions.

Usage: python3 tools/gen_profiles.py [PACKAGE_DIR]

PACKAGE_DIR defaults to /tmp/r4pkg/package (the unpacked npm package
hl7.fhir.r4.examples@4.0.1, CC0). It must contain Bundle-resources.json,
Bundle-types.json and Bundle-profiles-others.json.

r4_constraints.json: {"fhirVersion", "source", "skipped": {key: reason},
"constraints": {element path: [[key, severity, human, expression], ...]}},
from the snapshot of every resource and complex data type. An element path
is the path in the definition that declares the element (`Patient.contact`,
`Period`); the constraints of a data type sit on its root (`Period`), those
of a resource's elements on their path. A key is kept once per path.
Constraints listed in SKIP are recorded in "skipped" with the reason and
not evaluated.

profiles/<id>.json: each constraint profile (StructureDefinition with
derivation "constraint") of Bundle-profiles-others.json, with its
snapshot cut to what validation reads (ids, paths, slice names,
cardinality, types with target profiles, fixed/pattern values, bounds
(minValue/maxValue, maxLength), bindings,
slicing, constraints); documentation is left out. Also writes
src/fhir/shipped_profiles.rs, the list the server embeds.

Standard library only.
"""

import json
import os
import sys

# Constraints Charaka does not evaluate, with the reason.
SKIP = {
    "ele-1": "every element has a value or children: structural validation "
             "already refuses empty objects, arrays and strings",
    "txt-1": "uses htmlChecks() (narrative content rules); the narrative is "
             "checked as XHTML by structural validation",
    "txt-2": "uses htmlChecks(); the narrative is checked by structural validation",
    "que-7": "R4's expression tests `answer is Boolean` (the FHIRPath System "
             "type), which a FHIR `boolean` answer is not under FHIRPath's type "
             "rules, so every `exists` condition fails (Questionnaire-bb)",
}

# Constraints whose expression calls these are skipped with this reason.
SKIP_FUNCTIONS = {
    "resolve()": "uses resolve(), which needs the referenced resources",
    "conformsTo(": "uses conformsTo(), which needs the profiles' own validation",
    "memberOf(": "uses memberOf(), which needs terminology",
    "htmlChecks(": "uses htmlChecks() (narrative content rules)",
}


SNAPSHOT_KEEP = ["id", "path", "sliceName", "min", "max", "type", "binding",
                 "slicing", "constraint", "contentReference", "maxLength"]
SD_KEEP = ["resourceType", "id", "url", "version", "name", "title", "status",
           "kind", "abstract", "type", "baseDefinition", "derivation"]


def cut_element(el):
    out = {k: el[k] for k in SNAPSHOT_KEEP if k in el}
    for k, v in el.items():
        if k.startswith(("fixed", "pattern", "minValue", "maxValue")):
            out[k] = v
    if "type" in out:
        out["type"] = [{k: t[k] for k in ("code", "profile", "targetProfile") if k in t}
                       for t in out["type"]]
    if "binding" in out:
        out["binding"] = {k: out["binding"][k] for k in ("strength", "valueSet")
                          if k in out["binding"]}
    if "slicing" in out:
        out["slicing"] = {k: out["slicing"][k] for k in ("discriminator", "ordered", "rules")
                          if k in out["slicing"]}
    if "constraint" in out:
        out["constraint"] = [{k: c[k] for k in ("key", "severity", "human", "expression")
                              if k in c}
                             for c in out["constraint"] if c.get("key") != "ele-1"]
        if not out["constraint"]:
            del out["constraint"]
    return out


def main():
    pkg = sys.argv[1] if len(sys.argv) > 1 else "/tmp/r4pkg/package"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    constraints = {}
    skipped = dict(SKIP)
    for name in ("Bundle-types.json", "Bundle-resources.json"):
        bundle = json.load(open(os.path.join(pkg, name)))
        for entry in bundle["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition":
                continue
            if sd.get("kind") not in ("resource", "complex-type"):
                continue
            if sd.get("derivation") == "constraint":
                continue
            for el in sd.get("snapshot", {}).get("element", []):
                path = el["path"]
                for c in el.get("constraint", []):
                    key, expr = c.get("key"), c.get("expression")
                    if not key or not expr:
                        continue
                    reason = skipped.get(key)
                    if reason is None:
                        for f, why in SKIP_FUNCTIONS.items():
                            if f in expr:
                                skipped[key] = why
                                reason = why
                                break
                    if reason is not None:
                        continue
                    # A data type's constraints repeat on every element of
                    # the type (ext-1 on each `.extension`); keep them on
                    # the type's root, where they are evaluated.
                    if key == "ext-1" and path != "Extension":
                        continue
                    # DomainResource's constraints (dom-*) repeat on every
                    # resource; they are evaluated once, from
                    # "DomainResource".
                    if key.startswith("dom-") and path != "DomainResource":
                        continue
                    items = constraints.setdefault(path, [])
                    if not any(i[0] == key for i in items):
                        items.append([key, c.get("severity", "error"),
                                      c.get("human", ""), expr])
    out = {
        "fhirVersion": "4.0.1",
        "source": "npm hl7.fhir.r4.examples@4.0.1 (Bundle-types.json, "
                  "Bundle-resources.json), CC0; generated by tools/gen_profiles.py",
        "skipped": dict(sorted(skipped.items())),
        "constraints": dict(sorted(constraints.items())),
    }
    with open(os.path.join(root, "src", "fhir", "r4_constraints.json"), "w") as f:
        json.dump(out, f, indent=0, ensure_ascii=False)
        f.write("\n")

    others = json.load(open(os.path.join(pkg, "Bundle-profiles-others.json")))
    prof_dir = os.path.join(root, "profiles")
    os.makedirs(prof_dir, exist_ok=True)
    ids = []
    for entry in others["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition":
            continue
        if sd.get("derivation") != "constraint" or "snapshot" not in sd:
            continue
        if sd.get("kind") != "resource":
            continue
        cut = {k: sd[k] for k in SD_KEEP if k in sd}
        cut["snapshot"] = {"element": [cut_element(e) for e in sd["snapshot"]["element"]]}
        with open(os.path.join(prof_dir, sd["id"] + ".json"), "w") as f:
            json.dump(cut, f, indent=1, ensure_ascii=False)
            f.write("\n")
        ids.append(sd["id"])
    ids.sort()
    with open(os.path.join(root, "src", "fhir", "shipped_profiles.rs"), "w") as f:
        f.write("// Generated by tools/gen_profiles.py: the StructureDefinitions of\n")
        f.write("// profiles/ embedded in the binary. Do not edit.\n\n")
        f.write("#[rustfmt::skip]\n")
        f.write("pub const SHIPPED: &[(&str, &str)] = &[\n")
        for i in ids:
            f.write(f'    ("{i}", include_str!("../../profiles/{i}.json")),\n')
        f.write("];\n")
    print(f"{sum(len(v) for v in constraints.values())} constraints on "
          f"{len(constraints)} paths, {len(skipped)} skipped; {len(ids)} profiles")


if __name__ == "__main__":
    main()
