//! FHIRPath Patch (a Parameters body): each operation type, values built
//! from parts, the XML form, conditional patch, errors that leave the
//! resource as it was, and PATCH entries of transactions.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Resp, TestServer};

fn op(kind: &str, path: &str, more: Value) -> Value {
    let mut parts = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    parts.extend(more.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": parts})
}

fn parameters(ops: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": ops})
}

async fn patch(s: &TestServer, path: &str, ops: Vec<Value>) -> Resp {
    s.json(Method::PATCH, path, &parameters(ops), &[]).await
}

async fn patient(s: &TestServer) -> Value {
    s.create(&json!({
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:mrn", "value": "fp-1"},
            {"system": "urn:other", "value": "fp-2"}
        ],
        "name": [{"family": "Okafor", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1970-05-01"
    }))
    .await
}

async fn each_operation_type(s: &TestServer) {
    let p = patient(s).await;
    let path = format!("Patient/{}", p["id"].as_str().unwrap());

    // add: a single element, and a HumanName with nested parts.
    let r = patch(
        s,
        &path,
        vec![
            op("add", "Patient", json!([
                {"name": "name", "valueString": "active"},
                {"name": "value", "valueBoolean": true}
            ])),
            op("add", "Patient", json!([
                {"name": "name", "valueString": "name"},
                {"name": "value", "part": [
                    {"name": "use", "valueCode": "nickname"},
                    {"name": "given", "valueString": "Adaeze"},
                    {"name": "given", "valueString": "Ada"},
                    {"name": "period", "part": [{"name": "start", "valueDateTime": "2001-02-03"}]}
                ]}
            ])),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = s.get(&path).await.json();
    assert_eq!(got["meta"]["versionId"], "2");
    assert_eq!(got["active"], true);
    assert_eq!(got["name"].as_array().unwrap().len(), 2);
    assert_eq!(got["name"][1]["use"], "nickname");
    assert_eq!(got["name"][1]["given"], json!(["Adaeze", "Ada"]));
    assert_eq!(got["name"][1]["period"]["start"], "2001-02-03");
    // The response is the patched resource.
    assert_eq!(r.json()["name"], got["name"]);

    // insert at the front, move it to the end.
    let r = patch(
        s,
        &path,
        vec![op(
            "insert",
            "Patient.identifier",
            json!([
                {"name": "index", "valueInteger": 0},
                {"name": "value", "valueIdentifier": {"system": "urn:new", "value": "fp-0"}}
            ]),
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let values = |v: &Value| -> Vec<String> {
        v["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["value"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(values(&s.get(&path).await.json()), ["fp-0", "fp-1", "fp-2"]);
    let r = patch(
        s,
        &path,
        vec![op(
            "move",
            "Patient.identifier",
            json!([
                {"name": "source", "valueInteger": 0},
                {"name": "destination", "valueInteger": 2}
            ]),
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(values(&s.get(&path).await.json()), ["fp-1", "fp-2", "fp-0"]);

    // replace and delete, selecting with where().
    let r = patch(
        s,
        &path,
        vec![
            op(
                "replace",
                "Patient.gender",
                json!([{"name": "value", "valueCode": "other"}]),
            ),
            op(
                "delete",
                "Patient.identifier.where(system = 'urn:other')",
                json!([]),
            ),
            op("delete", "Patient.birthDate", json!([])),
            // Nothing matches: no change.
            op("delete", "Patient.deceased", json!([])),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = s.get(&path).await.json();
    assert_eq!(got["gender"], "other");
    assert_eq!(values(&got), ["fp-1", "fp-0"]);
    assert!(got.get("birthDate").is_none());
    assert_eq!(got["meta"]["versionId"], "5");

    // The patched resource is indexed like any other version.
    let b = s
        .get("Patient?identifier=urn:new|fp-0&gender=other")
        .await
        .json();
    assert_eq!(b["total"], 1, "{b}");
}

async fn xml_body(s: &TestServer) {
    let p = patient(s).await;
    let path = format!("Patient/{}", p["id"].as_str().unwrap());
    let xml = r#"<Parameters xmlns="http://hl7.org/fhir">
  <parameter>
    <name value="operation"/>
    <part><name value="type"/><valueCode value="replace"/></part>
    <part><name value="path"/><valueString value="Patient.birthDate"/></part>
    <part><name value="value"/><valueDate value="1930-01-01"/></part>
  </parameter>
  <parameter>
    <name value="operation"/>
    <part><name value="type"/><valueCode value="add"/></part>
    <part><name value="path"/><valueString value="Patient"/></part>
    <part><name value="name"/><valueString value="contact"/></part>
    <part>
      <name value="value"/>
      <part><name value="name"/><valueHumanName><text value="a name"/></valueHumanName></part>
    </part>
  </parameter>
</Parameters>"#;
    let r = s
        .send(
            Method::PATCH,
            &path,
            Some(xml.as_bytes().to_vec()),
            &[("content-type", "application/fhir+xml")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = s.get(&path).await.json();
    assert_eq!(got["birthDate"], "1930-01-01");
    assert_eq!(got["contact"], json!([{"name": {"text": "a name"}}]));
}

async fn conditional_patch(s: &TestServer) {
    let p = patient(s).await;
    let r = patch(
        s,
        "Patient?identifier=urn:mrn|fp-1",
        vec![op(
            "replace",
            "Patient.name[0].family",
            json!([{"name": "value", "valueString": "Obi"}]),
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = s
        .get(&format!("Patient/{}", p["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(got["name"][0]["family"], "Obi");
}

async fn errors_leave_the_resource_unchanged(s: &TestServer) {
    let p = patient(s).await;
    let path = format!("Patient/{}", p["id"].as_str().unwrap());
    let before = s.get(&path).await.json();
    let good = op(
        "replace",
        "Patient.gender",
        json!([{"name": "value", "valueCode": "male"}]),
    );
    let cases: Vec<(Vec<Value>, u16, &str)> = vec![
        // Malformed operations.
        (
            vec![good.clone(), op("frobnicate", "Patient", json!([]))],
            400,
            "operation 2",
        ),
        (
            vec![op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "active"}]),
            )],
            400,
            "`value` is missing",
        ),
        (
            vec![op("delete", "Patient.name.(", json!([]))],
            400,
            "not valid FHIRPath",
        ),
        // Operations that do not fit the resource.
        (
            vec![
                good.clone(),
                op(
                    "replace",
                    "Patient.deceased",
                    json!([{"name": "value", "valueBoolean": true}]),
                ),
            ],
            422,
            "operation 2 (replace",
        ),
        (
            vec![op("delete", "Patient.identifier", json!([]))],
            422,
            "matches 2 elements",
        ),
        (
            vec![op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "gender"}, {"name": "value", "valueCode": "male"}]),
            )],
            422,
            "use replace",
        ),
        (
            vec![op(
                "insert",
                "Patient.identifier",
                json!([{"name": "index", "valueInteger": 9}, {"name": "value", "valueIdentifier": {"value": "x"}}]),
            )],
            422,
            "index 9",
        ),
        (
            vec![op(
                "replace",
                "Patient.birthDate",
                json!([{"name": "value", "valueBoolean": true}]),
            )],
            422,
            "valueDate",
        ),
        (
            vec![op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "colour"}, {"name": "value", "valueString": "blue"}]),
            )],
            422,
            "no element `colour`",
        ),
        // The result is not a valid resource.
        (
            vec![
                good.clone(),
                op(
                    "replace",
                    "Patient.gender",
                    json!([{"name": "value", "valueCode": "banana"}]),
                ),
            ],
            422,
            "banana",
        ),
        (vec![op("delete", "Patient.id", json!([]))], 422, "id"),
    ];
    for (ops, status, expect) in cases {
        let r = patch(s, &path, ops).await;
        let oo = r.outcome(status);
        let text = oo.to_string();
        assert!(text.contains(expect), "expected `{expect}` in {text}");
        assert_eq!(s.get(&path).await.json(), before, "unchanged after {text}");
    }
    // Not a Parameters resource.
    let r = s
        .json(
            Method::PATCH,
            &path,
            &json!({"resourceType": "Basic", "code": {"text": "x"}}),
            &[],
        )
        .await;
    r.outcome(400);
    // Unknown resource.
    patch(s, "Patient/no-such-patient", vec![good])
        .await
        .outcome(404);
    assert_eq!(s.get(&path).await.json(), before);
}

async fn transaction_patch_entry(s: &TestServer) {
    let p = patient(s).await;
    let url = format!("Patient/{}", p["id"].as_str().unwrap());
    let patch_entry = |ops: Vec<Value>| json!({"request": {"method": "PATCH", "url": url}, "resource": parameters(ops)});
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6b0c7e5e-8a8e-4a3b-9a47-4f2b1c3d5e6f",
         "request": {"method": "POST", "url": "Organization"},
         "resource": {"resourceType": "Organization", "name": "Clinic"}},
        patch_entry(vec![op("add", "Patient", json!([
            {"name": "name", "valueString": "managingOrganization"},
            {"name": "value", "valueReference": {"reference": "urn:uuid:6b0c7e5e-8a8e-4a3b-9a47-4f2b1c3d5e6f"}}
        ]))]),
    ]});
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = r.json()["entry"].as_array().unwrap().clone();
    assert_eq!(e[1]["response"]["status"], "200 OK");
    let got = s.get(&url).await.json();
    let org = got["managingOrganization"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        org.starts_with("Organization/"),
        "reference rewritten: {org}"
    );
    assert_eq!(s.get(&org).await.status, 200);

    // A failing patch entry rolls the whole transaction back.
    let before = s.get(&url).await.json();
    let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Organization"},
         "resource": {"resourceType": "Organization", "name": "Never stored"}},
        patch_entry(vec![op("replace", "Patient.deceased", json!([{"name": "value", "valueBoolean": true}]))]),
    ]});
    let oo = s.post("", &b).await.outcome(422);
    assert!(oo.to_string().contains("operation 1"), "{oo}");
    assert_eq!(s.get(&url).await.json(), before);
    let orgs = s.get("Organization?name=Never").await.json();
    assert_eq!(orgs["total"], 0);

    // In a batch, the entry fails on its own.
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        patch_entry(vec![op("replace", "Patient.gender", json!([{"name": "value", "valueCode": "unknown"}]))]),
        patch_entry(vec![op("move", "Patient.identifier", json!([
            {"name": "source", "valueInteger": 5}, {"name": "destination", "valueInteger": 0}
        ]))]),
    ]});
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = r.json()["entry"].as_array().unwrap().clone();
    assert_eq!(e[0]["response"]["status"], "200 OK");
    assert!(
        e[1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("422"),
        "{}",
        e[1]
    );
    assert_eq!(s.get(&url).await.json()["gender"], "unknown");
}

crate::on_both_databases!(
    each_operation_type,
    xml_body,
    conditional_patch,
    errors_leave_the_resource_unchanged,
    transaction_patch_entry,
);
