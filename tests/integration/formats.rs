//! Content negotiation and response shaping: XML in and out, `Accept` and
//! `_format`, rejected media types and charsets, `_pretty`, `_summary`,
//! `_elements`, decimal precision and Unicode.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Resp, TestServer};

const FHIR_XML: &str = "application/fhir+xml";
const FHIR_JSON: &str = "application/fhir+json";
const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

crate::on_both_databases!(
    xml_create_reads_back_as_json,
    xml_read_by_accept_and_format,
    html_only_is_not_acceptable,
    unknown_format_is_not_acceptable,
    unsupported_content_type_is_rejected,
    charset_other_than_utf8_is_rejected,
    pretty_json_is_indented,
    summary_true_drops_non_summary_elements,
    summary_text_and_data,
    elements_keeps_only_the_named_elements,
    summary_count_on_a_read_is_invalid,
    decimals_keep_their_precision,
    unicode_round_trips_in_json_and_xml,
    errors_follow_the_requested_format,
);

/// The resource without the server-set `id` and `meta`.
fn content(resource: &Value) -> Value {
    let mut v = resource.clone();
    let obj = v.as_object_mut().expect("a resource is an object");
    obj.remove("id");
    obj.remove("meta");
    v
}

fn assert_xml(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text);
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with(FHIR_XML), "content type {ct:?}");
    assert!(r.text.trim_start().starts_with('<'), "not XML: {}", r.text);
    assert!(
        r.text.contains("xmlns=\"http://hl7.org/fhir\""),
        "no FHIR namespace: {}",
        r.text
    );
}

fn assert_json(r: &Resp) {
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with(FHIR_JSON), "content type {ct:?}");
}

/// Creates a resource from raw JSON text (so numbers keep their exact text).
async fn create_raw(s: &TestServer, rtype: &str, body: &str) -> Value {
    let r = s
        .send(
            Method::POST,
            rtype,
            Some(body.as_bytes().to_vec()),
            &[("content-type", FHIR_JSON)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn has_subsetted_tag(resource: &Value) -> bool {
    resource["meta"]["tag"].as_array().is_some_and(|tags| {
        tags.iter()
            .any(|t| t["code"] == "SUBSETTED" && t["system"] == SUBSETTED_SYSTEM)
    })
}

fn rich_patient() -> Value {
    json!({
        "resourceType": "Patient",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter Chalmers</div>"},
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "active": true,
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "maritalStatus": {"text": "married"},
        "contact": [{"name": {"family": "du Marché", "given": ["Bénédicte"]}, "gender": "female"}],
        "communication": [{"language": {"text": "Dutch"}, "preferred": true}]
    })
}

async fn xml_create_reads_back_as_json(s: &TestServer) {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <active value="true"/>
  <name>
    <use value="official"/>
    <family value="Chalmers"/>
    <given value="Peter"/>
    <given value="James"/>
  </name>
  <gender value="male"/>
  <birthDate value="1974-12-25"/>
  <deceasedBoolean value="false"/>
</Patient>"#;
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(xml.as_bytes().to_vec()),
            &[("content-type", FHIR_XML)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // No Accept and no _format: the answer is JSON, whatever the body was.
    assert_json(&r);
    let created = r.json();
    let id = created["id"].as_str().expect("an id was assigned");
    let expected = json!({
        "resourceType": "Patient",
        "active": true,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "deceasedBoolean": false
    });
    assert_eq!(content(&created), expected);
    let read = s.get(&format!("Patient/{id}")).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_json(&read);
    assert_eq!(content(&read.json()), expected);
    assert_eq!(read.json()["meta"]["versionId"], "1");

    // An XML update of the same resource, answered in XML.
    let update = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><id value="{id}"/><active value="false"/><gender value="other"/></Patient>"#
    );
    let r = s
        .send(
            Method::PUT,
            &format!("Patient/{id}"),
            Some(update.into_bytes()),
            &[
                ("content-type", "application/fhir+xml; charset=utf-8"),
                ("accept", FHIR_XML),
            ],
        )
        .await;
    assert_xml(&r);
    assert!(r.text.contains(r#"<active value="false"/>"#), "{}", r.text);
    let read = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(
        content(&read),
        json!({"resourceType": "Patient", "active": false, "gender": "other"})
    );
    assert_eq!(read["meta"]["versionId"], "2");
}

async fn xml_read_by_accept_and_format(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("Patient/{id}");

    for accept in [
        FHIR_XML,
        "application/xml",
        "text/html, application/fhir+xml;q=0.9, */*;q=0.8",
    ] {
        let r = s.get_with(&path, &[("accept", accept)]).await;
        assert_xml(&r);
        assert!(
            r.text.contains(r#"<family value="Chalmers"/>"#),
            "Accept {accept}: {}",
            r.text
        );
        assert!(
            r.text.contains(&format!(r#"<id value="{id}"/>"#)),
            "{}",
            r.text
        );
        assert_eq!(r.header("etag"), Some("W/\"1\""));
    }
    for format in ["xml", "application/fhir+xml", "application/xml", "text/xml"] {
        let r = s
            .get(&format!("{path}?_format={}", urlencode(format)))
            .await;
        assert_xml(&r);
        assert!(
            r.text.contains(r#"<birthDate value="1974-12-25"/>"#),
            "_format={format}: {}",
            r.text
        );
    }
    // _format wins over Accept.
    let r = s
        .get_with(&format!("{path}?_format=json"), &[("accept", FHIR_XML)])
        .await;
    assert_eq!(r.status, 200);
    assert_json(&r);
    assert_eq!(content(&r.json()), content(&created));
    let r = s
        .get_with(&format!("{path}?_format=xml"), &[("accept", FHIR_JSON)])
        .await;
    assert_xml(&r);

    // The XML converts back to the same resource.
    let xml = s.get(&format!("{path}?_format=xml")).await.text;
    let r = s
        .send(
            Method::PUT,
            &path,
            Some(xml.into_bytes()),
            &[("content-type", FHIR_XML)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        content(&s.get(&path).await.json()),
        content(&rich_patient())
    );
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn html_only_is_not_acceptable(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let path = format!("Patient/{}", created["id"].as_str().unwrap());
    let r = s.get_with(&path, &[("accept", "text/html")]).await;
    let oo = r.outcome(406);
    assert_eq!(oo["issue"][0]["severity"], "error");
    // The same on a write: nothing is written when the answer cannot be given.
    let r = s
        .json(Method::PUT, &path, &created, &[("accept", "text/html")])
        .await;
    r.outcome(406);
    assert_eq!(s.get(&path).await.json()["meta"]["versionId"], "1");
    // Another FHIR version is not acceptable either.
    s.get_with(
        &path,
        &[("accept", "application/fhir+json; fhirVersion=3.0")],
    )
    .await
    .outcome(406);
}

async fn unknown_format_is_not_acceptable(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let path = format!("Patient/{}", created["id"].as_str().unwrap());
    for format in ["turtle", "text/turtle", "html", "foo"] {
        let r = s
            .get(&format!("{path}?_format={}", urlencode(format)))
            .await;
        let oo = r.outcome(406);
        let text = oo["issue"][0]["diagnostics"].as_str().unwrap_or("");
        assert!(
            text.contains(format),
            "diagnostics should name `{format}`: {oo}"
        );
    }
    let r = s.post("Patient?_format=foo", &rich_patient()).await;
    r.outcome(406);
    assert_eq!(
        history_len(s, "Patient/_history").await,
        1,
        "the rejected create stored nothing"
    );
}

/// Number of entries of a history bundle.
async fn history_len(s: &TestServer, path: &str) -> usize {
    let r = s.get(&format!("{path}?_count=1000")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["entry"].as_array().map_or(0, Vec::len)
}

async fn unsupported_content_type_is_rejected(s: &TestServer) {
    let body = serde_json::to_vec(&rich_patient()).unwrap();
    for ct in [
        "text/plain",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
    ] {
        let r = s
            .send(
                Method::POST,
                "Patient",
                Some(body.clone()),
                &[("content-type", ct)],
            )
            .await;
        r.outcome(415);
        let r = s
            .send(
                Method::PUT,
                "Patient/ct1",
                Some(body.clone()),
                &[("content-type", ct)],
            )
            .await;
        r.outcome(415);
    }
    // A FHIR version other than R4.
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(body.clone()),
            &[("content-type", "application/fhir+json; fhirVersion=3.0")],
        )
        .await;
    r.outcome(415);
    assert_eq!(history_len(s, "_history").await, 0);
    assert_eq!(s.get("Patient/ct1").await.status, 404);
}

async fn charset_other_than_utf8_is_rejected(s: &TestServer) {
    let body = serde_json::to_vec(&rich_patient()).unwrap();
    for ct in [
        "application/fhir+json; charset=iso-8859-1",
        "application/fhir+json;charset=latin1",
        "application/fhir+json; charset=utf-16",
        "application/fhir+xml; charset=windows-1252",
    ] {
        let r = s
            .send(
                Method::POST,
                "Patient",
                Some(body.clone()),
                &[("content-type", ct)],
            )
            .await;
        let oo = r.outcome(415);
        assert!(
            oo["issue"][0]["diagnostics"]
                .as_str()
                .unwrap_or("")
                .contains("charset"),
            "{oo}"
        );
    }
    // UTF-8 in any spelling is fine.
    for ct in [
        "application/fhir+json; charset=UTF-8",
        "application/fhir+json;charset=\"utf-8\"",
    ] {
        let r = s
            .send(
                Method::POST,
                "Patient",
                Some(body.clone()),
                &[("content-type", ct)],
            )
            .await;
        assert_eq!(r.status, 201, "{ct}: {}", r.text);
    }
    assert_eq!(history_len(s, "Patient/_history").await, 2);
}

async fn pretty_json_is_indented(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let path = format!("Patient/{}", created["id"].as_str().unwrap());
    let plain = s.get(&path).await;
    assert!(
        !plain.text.contains('\n'),
        "default JSON is compact: {}",
        plain.text
    );
    let pretty = s.get(&format!("{path}?_pretty=true")).await;
    assert_eq!(pretty.status, 200);
    assert_json(&pretty);
    assert!(
        pretty.text.contains("\n  \"resourceType\": \"Patient\""),
        "{}",
        pretty.text
    );
    assert!(
        pretty.text.contains("\n    \""),
        "nested members are indented further: {}",
        pretty.text
    );
    assert_eq!(pretty.json(), plain.json());
    let compact = s.get(&format!("{path}?_pretty=false")).await;
    assert_eq!(compact.text, plain.text);
    s.get(&format!("{path}?_pretty=yes")).await.outcome(400);
}

async fn summary_true_drops_non_summary_elements(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let id = created["id"].as_str().unwrap();
    let r = s.get(&format!("Patient/{id}?_summary=true")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let summary = r.json();
    let obj = summary.as_object().unwrap();
    for dropped in ["maritalStatus", "contact", "communication", "text"] {
        assert!(
            !obj.contains_key(dropped),
            "`{dropped}` is not a summary element: {summary}"
        );
    }
    for kept in ["identifier", "active", "name", "gender", "birthDate"] {
        assert_eq!(
            summary[kept], created[kept],
            "`{kept}` is a summary element: {summary}"
        );
    }
    assert_eq!(summary["id"], id);
    assert_eq!(summary["meta"]["versionId"], "1");
    assert!(has_subsetted_tag(&summary), "{summary}");
    // The stored resource is untouched: a plain read has everything, untagged.
    let full = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(full, created);
    assert!(!has_subsetted_tag(&full));
    // _summary=false is the whole resource, untagged.
    let r = s.get(&format!("Patient/{id}?_summary=false")).await.json();
    assert_eq!(r, created);
    // Also in XML.
    let r = s
        .get(&format!("Patient/{id}?_summary=true&_format=xml"))
        .await;
    assert_xml(&r);
    assert!(
        !r.text.contains("maritalStatus") && r.text.contains("SUBSETTED"),
        "{}",
        r.text
    );
    s.get(&format!("Patient/{id}?_summary=maybe"))
        .await
        .outcome(400);
}

async fn summary_text_and_data(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let id = created["id"].as_str().unwrap();

    let text = s.get(&format!("Patient/{id}?_summary=text")).await;
    assert_eq!(text.status, 200, "{}", text.text);
    let text = text.json();
    let mut keys: Vec<&str> = text
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["id", "meta", "resourceType", "text"], "{text}");
    assert_eq!(text["text"], created["text"]);
    assert!(has_subsetted_tag(&text));

    // An Observation keeps its mandatory elements (status, code) with the text.
    let obs = s
        .create(&json!({
            "resourceType": "Observation",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Glucose 6.3</div>"},
            "status": "final",
            "code": {"text": "glucose"},
            "valueQuantity": {"value": 6.3, "unit": "mmol/l"},
            "note": [{"text": "fasting"}]
        }))
        .await;
    let r = s
        .get(&format!(
            "Observation/{}?_summary=text",
            obs["id"].as_str().unwrap()
        ))
        .await
        .json();
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["code", "id", "meta", "resourceType", "status", "text"],
        "{r}"
    );

    let data = s.get(&format!("Patient/{id}?_summary=data")).await;
    assert_eq!(data.status, 200, "{}", data.text);
    let data = data.json();
    assert!(data.get("text").is_none(), "{data}");
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("text");
    expected.as_object_mut().unwrap().remove("meta");
    let mut got = data.clone();
    got.as_object_mut().unwrap().remove("meta");
    assert_eq!(
        got, expected,
        "_summary=data keeps everything but the narrative"
    );
    assert!(has_subsetted_tag(&data));
}

async fn elements_keeps_only_the_named_elements(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let id = created["id"].as_str().unwrap();
    let r = s.get(&format!("Patient/{id}?_elements=birthDate")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["birthDate", "id", "meta", "resourceType"], "{v}");
    assert_eq!(v["birthDate"], "1974-12-25");
    assert_eq!(v["id"], id);
    assert!(has_subsetted_tag(&v), "{v}");

    let v = s
        .get(&format!("Patient/{id}?_elements=name,gender"))
        .await
        .json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["gender", "id", "meta", "name", "resourceType"],
        "{v}"
    );
    assert_eq!(v["name"], created["name"]);

    // A choice element is named without its type suffix.
    let p = s
        .create(&json!({"resourceType": "Patient", "deceasedBoolean": true, "gender": "male"}))
        .await;
    let v = s
        .get(&format!(
            "Patient/{}?_elements=deceased",
            p["id"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(v["deceasedBoolean"], true, "{v}");
    assert!(v.get("gender").is_none(), "{v}");
}

async fn summary_count_on_a_read_is_invalid(s: &TestServer) {
    let created = s.create(&rich_patient()).await;
    let id = created["id"].as_str().unwrap();
    s.get(&format!("Patient/{id}?_summary=count"))
        .await
        .outcome(400);
    s.get(&format!("Patient/{id}/_history/1?_summary=count"))
        .await
        .outcome(400);
}

async fn decimals_keep_their_precision(s: &TestServer) {
    let body = r#"{"resourceType":"Observation","status":"final","code":{"text":"weight"},
        "valueQuantity":{"value":1.50,"unit":"kg"},
        "referenceRange":[{"low":{"value":0.010},"high":{"value":123456789012345678.90}}],
        "component":[{"code":{"text":"tiny"},"valueQuantity":{"value":1.0e-7}},
                     {"code":{"text":"long"},"valueQuantity":{"value":3.14159265358979323846264338327950288}}]}"#;
    let created = create_raw(s, "Observation", body).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("Observation/{id}");
    for r in [
        s.get(&path).await,
        s.get(&format!("{path}?_pretty=true")).await,
    ] {
        assert_eq!(r.status, 200, "{}", r.text);
        let compact: String = r.text.split_whitespace().collect();
        for literal in [
            r#""value":1.50"#,
            r#""value":0.010"#,
            r#""value":123456789012345678.90"#,
            r#""value":1.0e-7"#,
            r#""value":3.14159265358979323846264338327950288"#,
        ] {
            assert!(
                compact.contains(literal),
                "{literal} lost its precision: {}",
                r.text
            );
        }
    }
    let xml = s.get(&format!("{path}?_format=xml")).await;
    assert_xml(&xml);
    assert!(
        xml.text.contains(r#"<value value="1.50"/>"#),
        "{}",
        xml.text
    );
    assert!(
        xml.text.contains(r#"<value value="0.010"/>"#),
        "{}",
        xml.text
    );
    assert!(
        xml.text
            .contains(r#"<value value="123456789012345678.90"/>"#),
        "{}",
        xml.text
    );

    // Through XML and back, the decimal text is still 1.50.
    let r = s
        .send(
            Method::PUT,
            &path,
            Some(xml.text.into_bytes()),
            &[("content-type", FHIR_XML)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.get(&path).await;
    assert!(r.text.contains(r#""value":1.50"#), "{}", r.text);
    assert!(r.text.contains(r#""value":0.010"#), "{}", r.text);
    assert!(
        r.text.contains(r#""value":123456789012345678.90"#),
        "{}",
        r.text
    );
    assert_eq!(r.json()["meta"]["versionId"], "2");
}

async fn unicode_round_trips_in_json_and_xml(s: &TestServer) {
    let family = "Ñandú 张伟 👩‍⚕️";
    let given = "Zoë \u{0301}e\u{200d}x «ð» \"quoted\" <tag> & 𝄞";
    let patient = json!({
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{family} &amp; 𝄞</div>")}
    });
    let created = s.create(&patient).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("Patient/{id}");
    assert_eq!(created["name"][0]["family"], family);

    let json_read = s.get(&path).await;
    assert!(
        json_read.text.contains(family),
        "raw UTF-8 in the JSON: {}",
        json_read.text
    );
    assert_eq!(content(&json_read.json()), content(&patient));

    let xml = s.get_with(&path, &[("accept", FHIR_XML)]).await;
    assert_xml(&xml);
    assert!(
        xml.text.contains(&format!(r#"<family value="{family}"/>"#)),
        "{}",
        xml.text
    );

    // Back in through XML: still the same characters.
    let r = s
        .send(
            Method::PUT,
            &path,
            Some(xml.text.into_bytes()),
            &[("content-type", FHIR_XML)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let read = s.get(&path).await.json();
    assert_eq!(read["name"][0]["family"], family);
    assert_eq!(read["name"][0]["given"][0], given);
    assert_eq!(content(&read), content(&patient));

    // Created from XML directly.
    let xml = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="{family}"/><given value="Zoë &amp; &lt;ð&gt;"/></name></Patient>"#
    );
    let r = s
        .send(
            Method::POST,
            "Patient",
            Some(xml.into_bytes()),
            &[("content-type", FHIR_XML)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let read = s
        .get(&format!("Patient/{}", r.json()["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(read["name"][0]["family"], family);
    assert_eq!(read["name"][0]["given"][0], "Zoë & <ð>");
}

async fn errors_follow_the_requested_format(s: &TestServer) {
    for r in [
        s.get("Patient/none?_format=xml").await,
        s.get_with("Patient/none", &[("accept", FHIR_XML)]).await,
    ] {
        assert_eq!(r.status, 404, "{}", r.text);
        let ct = r.header("content-type").unwrap_or("");
        assert!(ct.starts_with(FHIR_XML), "content type {ct:?}");
        assert!(r.text.contains("<OperationOutcome"), "{}", r.text);
        assert!(
            r.text.contains(r#"<code value="not-found"/>"#),
            "{}",
            r.text
        );
    }
    let r = s
        .send(
            Method::POST,
            "Patient?_format=xml",
            Some(br#"{"resourceType": "Patient", "gender": "xyz"}"#.to_vec()),
            &[("content-type", FHIR_JSON)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.header("content-type").unwrap_or("").starts_with(FHIR_XML));
    assert!(
        r.text.contains("<OperationOutcome") && r.text.contains("Patient.gender"),
        "{}",
        r.text
    );
}
