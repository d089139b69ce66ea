//! The examples of http://hl7.org/fhir/R4/fhirpatch.html and the rules
//! around them.

use serde_json::{json, Value};

use super::{apply, parse, PatchError};

fn op(parts: Value) -> Value {
    json!({"name": "operation", "part": parts})
}

fn patch(ops: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": ops})
}

fn run(resource: &Value, ops: Vec<Value>) -> Result<Value, PatchError> {
    let ops = parse(&patch(ops))?;
    let mut out = resource.clone();
    apply(&mut out, &ops)?;
    Ok(out)
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"system": "http://a", "value": "1"},
            {"system": "http://b", "value": "2"}
        ],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "birthDate": "1974-12-25"
    })
}

#[test]
fn add_sets_a_single_element() {
    let mut p = patient();
    p.as_object_mut().unwrap().remove("birthDate");
    let out = run(
        &p,
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "birthDate"},
            {"name": "value", "valueDate": "1930-01-01"}
        ]))],
    )
    .unwrap();
    assert_eq!(out["birthDate"], "1930-01-01");
}

#[test]
fn add_of_a_set_single_element_is_refused() {
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "birthDate"},
            {"name": "value", "valueDate": "1930-01-01"}
        ]))],
    )
    .unwrap_err();
    assert_eq!(err.status, 422);
    assert!(err.message.contains("operation 1"), "{}", err.message);
    assert!(err.message.contains("use replace"), "{}", err.message);
}

#[test]
fn add_builds_an_anonymous_element_from_parts() {
    // The spec's example: a contact whose name is a HumanName.
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "contact"},
            {"name": "value", "part": [
                {"name": "name", "valueHumanName": {"text": "a name"}}
            ]}
        ]))],
    )
    .unwrap();
    assert_eq!(out["contact"], json!([{"name": {"text": "a name"}}]));
}

#[test]
fn add_appends_to_a_list_with_nested_parts() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "name"},
            {"name": "value", "part": [
                {"name": "use", "valueCode": "nickname"},
                {"name": "given", "valueString": "Jim"},
                {"name": "given", "valueString": "Jimmy"},
                {"name": "period", "part": [{"name": "start", "valueDateTime": "2020-01-01"}]}
            ]}
        ]))],
    )
    .unwrap();
    assert_eq!(out["name"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["name"][1],
        json!({"use": "nickname", "given": ["Jim", "Jimmy"], "period": {"start": "2020-01-01"}})
    );
}

#[test]
fn add_names_a_choice_by_the_type_given() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "deceased"},
            {"name": "value", "valueBoolean": false}
        ]))],
    )
    .unwrap();
    assert_eq!(out["deceasedBoolean"], false);
    let err = run(
        &out,
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "deceased"},
            {"name": "value", "valueDateTime": "2020-01-01"}
        ]))],
    )
    .unwrap_err();
    assert!(err.message.contains("(deceasedBoolean)"), "{}", err.message);
}

#[test]
fn insert_at_an_index() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "insert"},
            {"name": "path", "valueString": "Patient.identifier"},
            {"name": "index", "valueInteger": 0},
            {"name": "value", "valueIdentifier": {"system": "http://example.org", "value": "value 3"}}
        ]))],
    )
    .unwrap();
    let ids: Vec<&str> = out["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["value 3", "1", "2"]);
}

#[test]
fn insert_into_an_empty_list_and_beyond_its_end() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "insert"},
            {"name": "path", "valueString": "Patient.telecom"},
            {"name": "index", "valueInteger": 0},
            {"name": "value", "valueContactPoint": {"system": "phone", "value": "555"}}
        ]))],
    )
    .unwrap();
    assert_eq!(out["telecom"][0]["value"], "555");
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "insert"},
            {"name": "path", "valueString": "Patient.identifier"},
            {"name": "index", "valueInteger": 3},
            {"name": "value", "valueIdentifier": {"value": "x"}}
        ]))],
    )
    .unwrap_err();
    assert!(err.message.contains("index 3"), "{}", err.message);
}

#[test]
fn delete_one_element_or_nothing() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "delete"},
            {"name": "path", "valueString": "Patient.birthDate"}
        ]))],
    )
    .unwrap();
    assert!(out.get("birthDate").is_none());
    // A path matching nothing is no change.
    let again = run(
        &out,
        vec![op(json!([
            {"name": "type", "valueCode": "delete"},
            {"name": "path", "valueString": "Patient.birthDate"}
        ]))],
    )
    .unwrap();
    assert_eq!(again, out);
    // A list item; the last one removes the list.
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "delete"},
            {"name": "path", "valueString": "Patient.name.given[0]"}
        ]))],
    )
    .unwrap();
    assert_eq!(out["name"][0]["given"], json!(["James"]));
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "delete"},
            {"name": "path", "valueString": "Patient.identifier"}
        ]))],
    )
    .unwrap_err();
    assert!(
        err.message.contains("matches 2 elements"),
        "{}",
        err.message
    );
}

#[test]
fn delete_keeps_primitive_extensions_aligned() {
    let mut p = patient();
    p["name"][0]["_given"] =
        json!([null, {"extension": [{"url": "http://x", "valueString": "y"}]}]);
    let out = run(
        &p,
        vec![op(json!([
            {"name": "type", "valueCode": "delete"},
            {"name": "path", "valueString": "Patient.name.given[0]"}
        ]))],
    )
    .unwrap();
    assert_eq!(out["name"][0]["given"], json!(["James"]));
    assert_eq!(
        out["name"][0]["_given"][0]["extension"][0]["url"],
        "http://x"
    );
}

#[test]
fn replace_a_primitive_and_a_choice() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.birthDate"},
            {"name": "value", "valueDate": "1930-01-01"}
        ]))],
    )
    .unwrap();
    assert_eq!(out["birthDate"], "1930-01-01");
    let obs = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "valueQuantity": {"value": 1}});
    let out = run(
        &obs,
        vec![op(json!([
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Observation.value"},
            {"name": "value", "valueString": "high"}
        ]))],
    )
    .unwrap();
    assert_eq!(out["valueString"], "high");
    assert!(out.get("valueQuantity").is_none());
}

#[test]
fn replace_needs_exactly_one_match_and_the_right_type() {
    let no_match = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.gender"},
            {"name": "value", "valueCode": "male"}
        ]))],
    )
    .unwrap_err();
    assert!(
        no_match.message.contains("matches no element"),
        "{}",
        no_match.message
    );
    let wrong_type = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.birthDate"},
            {"name": "value", "valueBoolean": true}
        ]))],
    )
    .unwrap_err();
    assert!(
        wrong_type.message.contains("valueDate"),
        "{}",
        wrong_type.message
    );
}

#[test]
fn move_within_a_list() {
    let out = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "move"},
            {"name": "path", "valueString": "Patient.identifier"},
            {"name": "source", "valueInteger": 1},
            {"name": "destination", "valueInteger": 0}
        ]))],
    )
    .unwrap();
    assert_eq!(out["identifier"][0]["value"], "2");
    assert_eq!(out["identifier"][1]["value"], "1");
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "move"},
            {"name": "path", "valueString": "Patient.identifier"},
            {"name": "source", "valueInteger": 2},
            {"name": "destination", "valueInteger": 0}
        ]))],
    )
    .unwrap_err();
    assert!(err.message.contains("source 2"), "{}", err.message);
    for (path, expect) in [
        ("Patient.identifer", "no element `identifer`"),
        ("Patient.birthDate", "not a list"),
    ] {
        let err = run(
            &patient(),
            vec![op(json!([
                {"name": "type", "valueCode": "move"},
                {"name": "path", "valueString": path},
                {"name": "source", "valueInteger": 0},
                {"name": "destination", "valueInteger": 0}
            ]))],
        )
        .unwrap_err();
        assert!(err.message.contains(expect), "{}", err.message);
    }
}

#[test]
fn operations_apply_in_order_and_errors_name_the_operation() {
    let ok = json!([
        {"name": "type", "valueCode": "delete"},
        {"name": "path", "valueString": "Patient.birthDate"}
    ]);
    let bad = json!([
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "2000-01-01"}
    ]);
    let err = run(&patient(), vec![op(ok), op(bad)]).unwrap_err();
    assert!(
        err.message.starts_with("operation 2 (replace"),
        "{}",
        err.message
    );
}

#[test]
fn malformed_operations_are_400s() {
    let cases = [
        (
            json!([{"name": "type", "valueCode": "frobnicate"}, {"name": "path", "valueString": "Patient"}]),
            "frobnicate",
        ),
        (
            json!([{"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"}]),
            "`name` is missing",
        ),
        (
            json!([{"name": "type", "valueCode": "insert"}, {"name": "path", "valueString": "Patient.identifier"}, {"name": "value", "valueString": "x"}]),
            "`index` is missing",
        ),
        (
            json!([{"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient.name.("}]),
            "not valid FHIRPath",
        ),
        (
            json!([{"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "Patient"}, {"name": "index", "valueInteger": 1}]),
            "does not apply",
        ),
        (
            json!([{"name": "path", "valueString": "Patient"}]),
            "`type` is missing",
        ),
    ];
    for (parts, expect) in cases {
        let err = run(&patient(), vec![op(parts)]).unwrap_err();
        assert_eq!(err.status, 400, "{}", err.message);
        assert!(
            err.message.contains(expect),
            "{} (expected {expect})",
            err.message
        );
        assert!(err.message.starts_with("operation 1"), "{}", err.message);
    }
    let err = run(&patient(), vec![json!({"name": "op"})]).unwrap_err();
    assert!(err.message.contains("only `operation`"), "{}", err.message);
}

#[test]
fn unknown_elements_and_other_resources_are_refused() {
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "delete"},
            {"name": "path", "valueString": "Patient.nmae"}
        ]))],
    )
    .unwrap_err();
    assert_eq!(err.status, 422);
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "add"},
            {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "colour"},
            {"name": "value", "valueString": "blue"}
        ]))],
    )
    .unwrap_err();
    assert!(
        err.message.contains("no element `colour`"),
        "{}",
        err.message
    );
    let err = run(
        &patient(),
        vec![op(json!([
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.birthDate.toString()"},
            {"name": "value", "valueString": "x"}
        ]))],
    )
    .unwrap_err();
    assert!(err.message.contains("computed value"), "{}", err.message);
}

#[test]
fn a_patch_without_operations_changes_nothing() {
    assert_eq!(run(&patient(), vec![]).unwrap(), patient());
}

#[test]
fn delete_removes_the_elements_it_leaves_empty() {
    let out = run(
        &patient(),
        vec![
            op(json!([
                {"name": "type", "valueCode": "delete"},
                {"name": "path", "valueString": "Patient.name.family"}
            ])),
            op(json!([
                {"name": "type", "valueCode": "delete"},
                {"name": "path", "valueString": "Patient.name.given[0]"}
            ])),
            op(json!([
                {"name": "type", "valueCode": "delete"},
                {"name": "path", "valueString": "Patient.name.given"}
            ])),
        ],
    )
    .unwrap();
    assert!(out.get("name").is_none(), "{out}");
    assert_eq!(out["birthDate"], "1974-12-25");
}

#[test]
fn a_narrative_is_replaced_with_a_string() {
    let mut p = patient();
    p["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">a</div>"});
    let div = "<div xmlns=\"http://www.w3.org/1999/xhtml\">b</div>";
    let out = run(
        &p,
        vec![op(json!([
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.text.div"},
            {"name": "value", "valueString": div}
        ]))],
    )
    .unwrap();
    assert_eq!(out["text"]["div"], div);
}
