//! Every error is an OperationOutcome with a specific status, and leaves the
//! data as it was.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;

const FHIR_JSON: &str = "application/fhir+json";
const JSON_PATCH: &str = "application/json-patch+json";

crate::on_both_databases!(
    invalid_resources_are_rejected_with_their_path,
    update_ids_must_match,
    bad_id_in_url_is_rejected,
    unknown_resource_type_is_not_found,
    unknown_path_is_not_found,
    search_of_an_unknown_type_is_not_found,
    post_on_an_instance_is_not_allowed,
    json_patch_with_a_fhir_content_type_is_refused,
    failed_patch_test_leaves_resource_unchanged,
    patch_to_an_invalid_resource_is_unprocessable,
    patch_removing_id_is_unprocessable,
    garbage_if_match_is_rejected,
    request_id_is_echoed_or_generated,
);

/// Number of entries of a history bundle (all of them: tests write few).
async fn history_len(s: &TestServer, path: &str) -> usize {
    let r = s.get(&format!("{path}?_count=1000")).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json()["entry"].as_array().map_or(0, Vec::len)
}

/// The `expression` values of all issues of an OperationOutcome.
fn expressions(oo: &Value) -> Vec<String> {
    oo["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

struct Invalid {
    name: &'static str,
    rtype: &'static str,
    body: Vec<u8>,
    /// The FHIRPath the OperationOutcome must name, if the problem has one.
    expression: Option<&'static str>,
}

fn invalid(
    name: &'static str,
    rtype: &'static str,
    body: Value,
    expression: Option<&'static str>,
) -> Invalid {
    Invalid {
        name,
        rtype,
        body: serde_json::to_vec(&body).unwrap(),
        expression,
    }
}

fn invalid_cases() -> Vec<Invalid> {
    vec![
        invalid(
            "unknown element",
            "Patient",
            json!({"resourceType": "Patient", "name": [{"family": "A"}], "foo": 1}),
            Some("Patient.foo"),
        ),
        invalid(
            "unknown nested element",
            "Patient",
            json!({"resourceType": "Patient", "name": [{"family": "A", "surname": "B"}]}),
            Some("Patient.name[0].surname"),
        ),
        invalid(
            "bad date",
            "Patient",
            json!({"resourceType": "Patient", "birthDate": "2020-13-45"}),
            Some("Patient.birthDate"),
        ),
        invalid(
            "code not in the required value set",
            "Patient",
            json!({"resourceType": "Patient", "gender": "xyz"}),
            Some("Patient.gender"),
        ),
        invalid(
            "object where an array is required",
            "Patient",
            json!({"resourceType": "Patient", "name": {"family": "A"}}),
            Some("Patient.name"),
        ),
        invalid(
            "array where a single value is required",
            "Patient",
            json!({"resourceType": "Patient", "gender": ["male"]}),
            Some("Patient.gender"),
        ),
        invalid(
            "string where a boolean is required",
            "Patient",
            json!({"resourceType": "Patient", "active": "yes"}),
            Some("Patient.active"),
        ),
        invalid(
            "missing resourceType",
            "Patient",
            json!({"name": [{"family": "A"}]}),
            None,
        ),
        invalid(
            "resourceType not matching the URL",
            "Patient",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
            None,
        ),
        invalid(
            "body is an array",
            "Patient",
            json!([{"resourceType": "Patient"}]),
            None,
        ),
        Invalid {
            name: "body not JSON",
            rtype: "Patient",
            body: b"{\"resourceType\": \"Patient\",".to_vec(),
            expression: None,
        },
        Invalid {
            name: "body is plain text",
            rtype: "Patient",
            body: b"hello".to_vec(),
            expression: None,
        },
        Invalid {
            name: "empty body",
            rtype: "Patient",
            body: Vec::new(),
            expression: None,
        },
        Invalid {
            name: "whitespace body",
            rtype: "Patient",
            body: b"  \n ".to_vec(),
            expression: None,
        },
        invalid(
            "status missing on Observation",
            "Observation",
            json!({"resourceType": "Observation", "code": {"text": "weight"}}),
            Some("Observation.status"),
        ),
        invalid(
            "invalid contained resource",
            "Patient",
            json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "bar": 2}]}),
            Some("Patient.contained[0].bar"),
        ),
    ]
}

async fn invalid_resources_are_rejected_with_their_path(s: &TestServer) {
    // Something stored before, so "unchanged" is not just "empty".
    let existing = s
        .create(&json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let existing_path = format!("Patient/{}", existing["id"].as_str().unwrap());
    let before = history_len(s, "_history").await;
    for (i, case) in invalid_cases().into_iter().enumerate() {
        let what = case.name;
        let check = |oo: &Value, how: &str| {
            if let Some(expected) = case.expression {
                let found = expressions(oo);
                assert!(
                    found.iter().any(|e| e == expected),
                    "{what} ({how}): expected an issue at `{expected}`, got {found:?}: {oo}"
                );
            }
        };
        // create
        let r = s
            .send(
                Method::POST,
                case.rtype,
                Some(case.body.clone()),
                &[("content-type", FHIR_JSON)],
            )
            .await;
        assert_eq!(r.status, 400, "{what} (POST): {}", r.text);
        check(&r.outcome(400), "POST");

        // update-as-create on a fixed id: nothing there afterwards
        let path = format!("{}/invalid-{i}", case.rtype);
        let mut body = case.body.clone();
        if let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&body) {
            obj.insert("id".into(), json!(format!("invalid-{i}")));
            body = serde_json::to_vec(&obj).unwrap();
        }
        let r = s
            .send(
                Method::PUT,
                &path,
                Some(body.clone()),
                &[("content-type", FHIR_JSON)],
            )
            .await;
        assert_eq!(r.status, 400, "{what} (PUT): {}", r.text);
        check(&r.outcome(400), "PUT");
        assert_eq!(
            s.get(&path).await.status,
            404,
            "{what}: the rejected PUT stored {path}"
        );

        // update of an existing resource: still version 1
        let mut body = case.body.clone();
        if let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&body) {
            obj.insert("id".into(), existing["id"].clone());
            body = serde_json::to_vec(&obj).unwrap();
        }
        let r = s
            .send(
                Method::PUT,
                &existing_path,
                Some(body),
                &[("content-type", FHIR_JSON)],
            )
            .await;
        if case.rtype == "Patient" {
            assert_eq!(r.status, 400, "{what} (PUT over existing): {}", r.text);
            check(&r.outcome(400), "PUT over existing");
        } else {
            r.outcome(400);
        }
        assert_eq!(
            s.get(&existing_path).await.json(),
            existing,
            "{what}: the existing resource changed"
        );
    }
    assert_eq!(
        history_len(s, "_history").await,
        before,
        "a rejected write was stored"
    );
    assert_eq!(history_len(s, "Patient/_history").await, 1);
    assert_eq!(history_len(s, "Observation/_history").await, 0);

    // Every problem of a body is reported, each with its own path.
    let r = s
        .post("Patient", &json!({"resourceType": "Patient", "foo": 1, "birthDate": "2020-13-45", "gender": "xyz"}))
        .await;
    let found = expressions(&r.outcome(400));
    for expected in ["Patient.foo", "Patient.birthDate", "Patient.gender"] {
        assert!(
            found.iter().any(|e| e == expected),
            "{expected} missing from {found:?}"
        );
    }
}

async fn update_ids_must_match(s: &TestServer) {
    let before = history_len(s, "_history").await;
    let r = s
        .put(
            "Patient/p1",
            &json!({"resourceType": "Patient", "id": "p2", "gender": "male"}),
        )
        .await;
    let oo = r.outcome(400);
    let text = oo["issue"][0]["diagnostics"].as_str().unwrap_or("");
    assert!(text.contains("p1") && text.contains("p2"), "{oo}");
    assert_eq!(s.get("Patient/p1").await.status, 404);
    assert_eq!(s.get("Patient/p2").await.status, 404);

    s.put(
        "Patient/p1",
        &json!({"resourceType": "Patient", "gender": "male"}),
    )
    .await
    .outcome(400);
    assert_eq!(s.get("Patient/p1").await.status, 404);

    // Same on an existing resource.
    let r = s
        .put(
            "Patient/p3",
            &json!({"resourceType": "Patient", "id": "p3", "gender": "male"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let stored = r.json();
    s.put(
        "Patient/p3",
        &json!({"resourceType": "Patient", "id": "p4", "gender": "female"}),
    )
    .await
    .outcome(400);
    s.put(
        "Patient/p3",
        &json!({"resourceType": "Patient", "gender": "female"}),
    )
    .await
    .outcome(400);
    assert_eq!(s.get("Patient/p3").await.json(), stored);
    assert_eq!(s.get("Patient/p4").await.status, 404);
    assert_eq!(history_len(s, "_history").await, before + 1);
}

async fn bad_id_in_url_is_rejected(s: &TestServer) {
    for id in ["a$b", "a_b", "a%20b", &"x".repeat(65)] {
        let path = format!("Patient/{id}");
        let r = s
            .put(&path, &json!({"resourceType": "Patient", "id": id}))
            .await;
        r.outcome(400);
    }
    assert_eq!(history_len(s, "_history").await, 0);
}

async fn unknown_resource_type_is_not_found(s: &TestServer) {
    s.get("Foo/1").await.outcome(404);
    s.get("patient/1").await.outcome(404);
    s.get("Foo/1/_history").await.outcome(404);
    s.get("Foo/_history").await.outcome(404);
    let r = s
        .put("Foo/1", &json!({"resourceType": "Foo", "id": "1"}))
        .await;
    r.outcome(404);
    let r = s.post("Foo", &json!({"resourceType": "Foo"})).await;
    r.outcome(404);
    s.delete("Foo/1").await.outcome(404);
    assert_eq!(history_len(s, "_history").await, 0);
}

fn root(s: &TestServer) -> &str {
    s.base
        .strip_suffix("/fhir")
        .expect("the base ends in /fhir")
}

async fn unknown_path_is_not_found(s: &TestServer) {
    let oo = s.get(&format!("{}/nothing", root(s))).await.outcome(404);
    assert_eq!(oo["issue"][0]["code"], "not-found");
    let r = s
        .send(
            Method::POST,
            &format!("{}/nothing/at/all", root(s)),
            Some(b"{}".to_vec()),
            &[],
        )
        .await;
    r.outcome(404);
    s.get("Patient/1/_history/1/extra").await.outcome(404);
}

async fn search_of_an_unknown_type_is_not_found(s: &TestServer) {
    s.get("Foo").await.outcome(404);
    s.get("Foo?name=x").await.outcome(404);
}

async fn post_on_an_instance_is_not_allowed(s: &TestServer) {
    let r = s
        .post("Patient/1", &json!({"resourceType": "Patient", "id": "1"}))
        .await;
    r.outcome(405);
    assert_eq!(s.get("Patient/1").await.status, 404);
    s.post("Patient/1/_history", &json!({"resourceType": "Patient"}))
        .await
        .outcome(405);
    s.delete("_history").await.outcome(405);
    assert_eq!(history_len(s, "_history").await, 0);
}

async fn patient_v1(s: &TestServer, id: &str) -> Value {
    let r = s
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "gender": "male", "name": [{"family": "Original"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn patch(
    s: &TestServer,
    path: &str,
    ops: &Value,
    content_type: &str,
) -> crate::harness::Resp {
    s.send(
        Method::PATCH,
        path,
        Some(serde_json::to_vec(ops).unwrap()),
        &[("content-type", content_type)],
    )
    .await
}

async fn json_patch_with_a_fhir_content_type_is_refused(s: &TestServer) {
    let v1 = patient_v1(s, "pa").await;
    let ops = json!([{"op": "replace", "path": "/gender", "value": "female"}]);
    // A FHIR content type means FHIRPath Patch (a Parameters resource).
    for ct in [FHIR_JSON, "application/json", "text/plain"] {
        patch(s, "Patient/pa", &ops, ct).await.outcome(415);
    }
    patch(s, "Patient/pa", &ops, "application/fhir+xml")
        .await
        .outcome(400);
    assert_eq!(s.get("Patient/pa").await.json(), v1);
    // The same patch with the right content type works.
    let r = patch(s, "Patient/pa", &ops, JSON_PATCH).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("Patient/pa").await.json()["gender"], "female");
}

async fn failed_patch_test_leaves_resource_unchanged(s: &TestServer) {
    let v1 = patient_v1(s, "pt").await;
    let ops = json!([
        {"op": "replace", "path": "/name/0/family", "value": "Changed"},
        {"op": "test", "path": "/gender", "value": "female"}
    ]);
    let oo = patch(s, "Patient/pt", &ops, JSON_PATCH).await.outcome(422);
    assert_eq!(oo["issue"][0]["severity"], "error");
    assert_eq!(s.get("Patient/pt").await.json(), v1);
    // A patch on a path that does not exist also fails whole.
    let ops = json!([
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "remove", "path": "/telecom/0"}
    ]);
    patch(s, "Patient/pt", &ops, JSON_PATCH).await.outcome(422);
    // A body that is not a JSON Patch document is a bad request.
    let r = s
        .send(
            Method::PATCH,
            "Patient/pt",
            Some(b"{\"op\": \"add\"}".to_vec()),
            &[("content-type", JSON_PATCH)],
        )
        .await;
    r.outcome(400);
    assert_eq!(s.get("Patient/pt").await.json(), v1);
    assert_eq!(history_len(s, "Patient/pt/_history").await, 1);
}

async fn patch_to_an_invalid_resource_is_unprocessable(s: &TestServer) {
    let v1 = patient_v1(s, "pi").await;
    let ops = json!([{"op": "replace", "path": "/gender", "value": "xyz"}]);
    let oo = patch(s, "Patient/pi", &ops, JSON_PATCH).await.outcome(422);
    assert!(
        expressions(&oo).iter().any(|e| e == "Patient.gender"),
        "{oo}"
    );
    let ops = json!([{"op": "add", "path": "/foo", "value": 1}]);
    let oo = patch(s, "Patient/pi", &ops, JSON_PATCH).await.outcome(422);
    assert!(expressions(&oo).iter().any(|e| e == "Patient.foo"), "{oo}");
    let ops = json!([{"op": "replace", "path": "/resourceType", "value": "Observation"}]);
    patch(s, "Patient/pi", &ops, JSON_PATCH).await.outcome(422);
    assert_eq!(s.get("Patient/pi").await.json(), v1);
    assert_eq!(history_len(s, "Patient/pi/_history").await, 1);
}

async fn patch_removing_id_is_unprocessable(s: &TestServer) {
    let v1 = patient_v1(s, "pr").await;
    patch(
        s,
        "Patient/pr",
        &json!([{"op": "remove", "path": "/id"}]),
        JSON_PATCH,
    )
    .await
    .outcome(422);
    patch(
        s,
        "Patient/pr",
        &json!([{"op": "replace", "path": "/id", "value": "other"}]),
        JSON_PATCH,
    )
    .await
    .outcome(422);
    assert_eq!(s.get("Patient/pr").await.json(), v1);
    assert_eq!(s.get("Patient/other").await.status, 404);
    assert_eq!(history_len(s, "_history").await, 1);
}

async fn garbage_if_match_is_rejected(s: &TestServer) {
    let v1 = patient_v1(s, "pm").await;
    let body = json!({"resourceType": "Patient", "id": "pm", "gender": "female"});
    for garbage in ["abc", "W/\"abc\"", "W/\"0\"", "W/\"-1\""] {
        let r = s
            .json(Method::PUT, "Patient/pm", &body, &[("if-match", garbage)])
            .await;
        r.outcome(400);
        let ops = json!([{"op": "replace", "path": "/gender", "value": "female"}]);
        let r = s
            .send(
                Method::PATCH,
                "Patient/pm",
                Some(serde_json::to_vec(&ops).unwrap()),
                &[("content-type", JSON_PATCH), ("if-match", garbage)],
            )
            .await;
        r.outcome(400);
        let r = s
            .send(Method::DELETE, "Patient/pm", None, &[("if-match", garbage)])
            .await;
        r.outcome(400);
    }
    assert_eq!(s.get("Patient/pm").await.json(), v1);
    assert_eq!(history_len(s, "_history").await, 1);
}

async fn request_id_is_echoed_or_generated(s: &TestServer) {
    let sent = "test-request-4711";
    let r = s.get_with("metadata", &[("x-request-id", sent)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some(sent));
    // On errors too, including errors produced outside the FHIR handlers.
    for path in [
        "Patient/none".to_string(),
        "Foo/1".to_string(),
        format!("{}/nothing", root(s)),
    ] {
        let r = s.get_with(&path, &[("x-request-id", sent)]).await;
        r.outcome(404);
        assert_eq!(r.header("x-request-id"), Some(sent), "{path}");
    }
    let r = s
        .get_with("Patient?birthdate=nonsense", &[("x-request-id", sent)])
        .await;
    r.outcome(400);
    assert_eq!(r.header("x-request-id"), Some(sent));

    let mut seen = std::collections::HashSet::new();
    for path in [
        "metadata".to_string(),
        "Patient/none".to_string(),
        format!("{}/nothing", root(s)),
    ] {
        let r = s.get(&path).await;
        let id = r.header("x-request-id").unwrap_or("").to_string();
        assert!(!id.trim().is_empty(), "{path}: no generated x-request-id");
        assert!(
            seen.insert(id.clone()),
            "{path}: request id {id} was reused"
        );
    }
}

/// A body over the configured limit is refused with 413 before it is read
/// whole, and nothing is stored (SQLite only: the limit is the HTTP layer's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_too_large() {
    let s = TestServer::sqlite_with(|c| c.max_body_bytes = 10_000).await;
    let big =
        json!({"resourceType": "Patient", "id": "big", "name": [{"family": "x".repeat(20_000)}]});
    for (method, path) in [(Method::POST, "Patient"), (Method::PUT, "Patient/big")] {
        let r = s.json(method.clone(), path, &big, &[]).await;
        let oo = r.outcome(413);
        assert_eq!(oo["issue"][0]["code"], "too-long", "{oo}");
    }
    let ops = json!([{"op": "add", "path": "/name", "value": [{"family": "x".repeat(20_000)}]}]);
    let r = s
        .send(
            Method::PATCH,
            "Patient/big",
            Some(serde_json::to_vec(&ops).unwrap()),
            &[("content-type", JSON_PATCH)],
        )
        .await;
    r.outcome(413);
    // XML too.
    let xml = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="{}"/></name></Patient>"#,
        "x".repeat(20_000)
    );
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(xml.into_bytes()),
            &[("content-type", "application/fhir+xml")],
        )
        .await;
    r.outcome(413);
    assert_eq!(s.get("Patient/big").await.status, 404);
    assert_eq!(history_len(&s, "_history").await, 0);
    // Just under the limit is fine.
    let small =
        json!({"resourceType": "Patient", "id": "small", "name": [{"family": "x".repeat(9_000)}]});
    let r = s.put("Patient/small", &small).await;
    assert_eq!(r.status, 201, "{}", r.text);
    s.stop().await;
}
