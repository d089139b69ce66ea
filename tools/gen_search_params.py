#!/usr/bin/env python3
"""Generate conformance/search-parameters.json and conformance/compartments.json
from the official FHIR R4 (4.0.1) definitions.

Usage: python3 tools/gen_search_params.py [PACKAGE_DIR]

PACKAGE_DIR defaults to /tmp/r4pkg/package (the unpacked npm package
hl7.fhir.r4.examples@4.0.1, CC0). It must contain Bundle-searchParams.json
and CompartmentDefinition-{patient,encounter,practitioner,relatedPerson,device}.json.

search-parameters.json: {"fhirVersion", "source", "parameters": [...]}, one
object per SearchParameter (all 1,375) with url, code, base, type,
expression (absent for _text, _content, _query), target, comparator,
multipleOr, multipleAnd, xpathUsage and, for composites, component
[{definition, expression}]. Fields absent in the source are left out.

compartments.json: {"<Compartment>": {"<ResourceType>": [param, ...]}} for
the five R4 CompartmentDefinitions (types with no param are left out).

Standard library only.
"""

import json
import os
import sys

KEEP = ["url", "code", "base", "type", "expression", "target", "comparator",
        "multipleOr", "multipleAnd", "xpathUsage"]


def main():
    pkg = sys.argv[1] if len(sys.argv) > 1 else "/tmp/r4pkg/package"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "conformance")

    bundle = json.load(open(os.path.join(pkg, "Bundle-searchParams.json")))
    params = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        item = {k: sp[k] for k in KEEP if k in sp}
        if "component" in sp:
            item["component"] = [
                {"definition": c["definition"], "expression": c["expression"]}
                for c in sp["component"]
            ]
        params.append(item)
    params.sort(key=lambda p: p["url"])
    with open(os.path.join(out_dir, "search-parameters.json"), "w") as f:
        # One parameter a line: small, and diffs stay readable.
        f.write('{"fhirVersion": "4.0.1",\n')
        f.write('"source": "npm hl7.fhir.r4.examples@4.0.1, Bundle-searchParams.json (CC0)",\n')
        f.write('"parameters": [\n')
        f.write(",\n".join(json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in params))
        f.write("\n]}\n")

    compartments = {}
    for name in ["patient", "encounter", "practitioner", "relatedPerson", "device"]:
        cd = json.load(open(os.path.join(pkg, f"CompartmentDefinition-{name}.json")))
        members = {}
        for r in cd["resource"]:
            if r.get("param"):
                members[r["code"]] = r["param"]
        compartments[cd["code"]] = members
    with open(os.path.join(out_dir, "compartments.json"), "w") as f:
        json.dump(compartments, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(params)} search parameters, {len(compartments)} compartments")


if __name__ == "__main__":
    main()
