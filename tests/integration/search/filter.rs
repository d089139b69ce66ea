//! `_filter` (http://hl7.org/fhir/R4/search_filter.html): tests joined by
//! `and`, `or` and `not`, left to right; each operator as the operator
//! table gives it for the parameter's type; chains and `_has`; errors.

use serde_json::{json, Value};

use super::{assert_names_param, create_id, enc, ids, link, search, set};
use crate::harness::TestServer;

fn patient(given: &str, family: &str, born: &str, gender: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"given": [given], "family": family}],
        "birthDate": born,
        "gender": gender,
    })
}

fn observation(subject: &str, code: &str, value: f64, when: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{subject}")},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "mmol/L",
                          "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    })
}

async fn filter(s: &TestServer, rtype: &str, expression: &str) -> Vec<String> {
    ids(s, &format!("{rtype}?_filter={}", enc(expression))).await
}

async fn operators_follow_the_parameter_type(s: &TestServer) {
    let peter = create_id(s, patient("Peter", "Pan", "2014-10-10", "male")).await;
    let petra = create_id(s, patient("Petra", "Müller", "2001-03-05", "female")).await;
    let wendy = create_id(s, patient("Wendy", "Darling", "2015-01-02", "female")).await;

    // Strings: eq is the whole value, any case and accents; sw, co, ew.
    assert_eq!(
        filter(s, "Patient", r#"given eq "peter""#).await,
        set(&[&peter])
    );
    assert_eq!(
        filter(s, "Patient", "given eq PET").await,
        Vec::<String>::new()
    );
    assert_eq!(
        filter(s, "Patient", "given sw pet").await,
        set(&[&peter, &petra])
    );
    assert_eq!(
        filter(s, "Patient", r#"name co "ll""#).await,
        set(&[&petra])
    );
    assert_eq!(filter(s, "Patient", "family ew ling").await, set(&[&wendy]));
    assert_eq!(
        filter(s, "Patient", "family eq muller").await,
        set(&[&petra])
    );
    assert_eq!(
        filter(s, "Patient", r#"given ne "peter""#).await,
        set(&[&petra, &wendy])
    );
    // Dates: the prefixes, and po (the periods overlap).
    assert_eq!(
        filter(s, "Patient", "birthdate ge 2014-10-10").await,
        set(&[&peter, &wendy])
    );
    assert_eq!(
        filter(s, "Patient", "birthdate lt 2014").await,
        set(&[&petra])
    );
    assert_eq!(
        filter(s, "Patient", "birthdate po 2015").await,
        set(&[&wendy])
    );
    assert_eq!(
        filter(s, "Patient", "birthdate ne 2014-10-10").await,
        set(&[&petra, &wendy])
    );
    // Tokens: eq, ne; values are not case sensitive in the operator.
    assert_eq!(
        filter(s, "Patient", "gender eq female").await,
        set(&[&petra, &wendy])
    );
    assert_eq!(
        filter(s, "Patient", "gender NE female").await,
        set(&[&peter])
    );
    assert_eq!(
        filter(s, "Patient", &format!("_id eq {peter}")).await,
        set(&[&peter])
    );
    // pr: the parameter has a value or not.
    let nameless = create_id(s, json!({"resourceType": "Patient", "gender": "other"})).await;
    assert_eq!(
        filter(s, "Patient", "family pr false").await,
        set(&[&nameless])
    );
    assert_eq!(
        filter(s, "Patient", "family pr true").await,
        set(&[&peter, &petra, &wendy])
    );
}

async fn logic_runs_left_to_right(s: &TestServer) {
    let peter = create_id(s, patient("Peter", "Pan", "2014-10-10", "male")).await;
    let petra = create_id(s, patient("Petra", "Pan", "2001-03-05", "female")).await;
    let wendy = create_id(s, patient("Wendy", "Darling", "2015-01-02", "female")).await;

    assert_eq!(
        filter(
            s,
            "Patient",
            r#"given eq "peter" and birthdate ge 2014-10-10"#
        )
        .await,
        set(&[&peter])
    );
    assert_eq!(
        filter(s, "Patient", "given eq wendy or given eq peter").await,
        set(&[&peter, &wendy])
    );
    // No precedence: (gender eq male or given eq wendy) and family eq pan.
    assert_eq!(
        filter(
            s,
            "Patient",
            "gender eq male or given eq wendy and family eq pan"
        )
        .await,
        set(&[&peter])
    );
    // Parentheses regroup it.
    assert_eq!(
        filter(
            s,
            "Patient",
            "gender eq male or (given eq wendy and family eq darling)"
        )
        .await,
        set(&[&peter, &wendy])
    );
    // not, around a test, an and and an or.
    assert_eq!(
        filter(s, "Patient", "not (family eq pan)").await,
        set(&[&wendy])
    );
    assert_eq!(
        filter(s, "Patient", "not (family eq pan and gender eq male)").await,
        set(&[&petra, &wendy])
    );
    assert_eq!(
        filter(s, "Patient", "not (given eq peter or given eq wendy)").await,
        set(&[&petra])
    );
    assert_eq!(
        filter(s, "Patient", "not (not (gender eq female))").await,
        set(&[&petra, &wendy])
    );
    // _filter ANDs with the other parameters, and stays in the self link.
    let query = format!("Patient?family=pan&_filter={}", enc("gender eq female"));
    let bundle = search(s, &query).await;
    assert_eq!(super::match_ids(&bundle), vec![petra.clone()]);
    let self_link = link(&bundle, "self").unwrap();
    assert!(self_link.contains("_filter="), "{self_link}");
}

async fn chains_has_tokens_and_quantities(s: &TestServer) {
    let peter = create_id(s, patient("Peter", "Pan", "2014-10-10", "male")).await;
    let wendy = create_id(s, patient("Wendy", "Darling", "2015-01-02", "female")).await;
    let sodium = create_id(s, observation(&peter, "2951-2", 140.0, "2024-05-01")).await;
    let glucose = create_id(s, observation(&wendy, "2345-7", 5.5, "2024-06-01")).await;

    // `loinc` stands for its URI.
    assert_eq!(
        filter(s, "Observation", "code eq loinc|2951-2").await,
        set(&[&sodium])
    );
    assert_eq!(
        filter(s, "Observation", "code eq http://loinc.org|2345-7").await,
        set(&[&glucose])
    );
    assert_eq!(
        filter(s, "Observation", "code ne loinc|2951-2").await,
        set(&[&glucose])
    );
    assert_eq!(
        filter(s, "Observation", "value-quantity gt 100|ucum|mmol/L").await,
        set(&[&sodium])
    );
    // Chains and references.
    assert_eq!(
        filter(s, "Observation", r#"subject.name co "wend""#).await,
        set(&[&glucose])
    );
    assert_eq!(
        filter(s, "Observation", &format!("subject re Patient/{peter}")).await,
        set(&[&sodium])
    );
    assert_eq!(
        filter(s, "Observation", "not (subject.gender eq male)").await,
        set(&[&glucose])
    );
    // Reverse chains.
    assert_eq!(
        filter(
            s,
            "Patient",
            "_has:Observation:subject:code eq loinc|2345-7"
        )
        .await,
        set(&[&wendy])
    );
    assert_eq!(
        filter(
            s,
            "Observation",
            "date ge 2024-05-15 or subject:Patient.birthdate lt 2015"
        )
        .await,
        set(&[&sodium, &glucose])
    );
}

async fn malformed_and_unsupported_filters_are_400(s: &TestServer) {
    create_id(s, patient("Peter", "Pan", "2014-10-10", "male")).await;
    for (expression, says) in [
        ("given eq", "no value"),
        ("(given eq peter", "not closed"),
        ("given eq peter family eq pan", "expected `and` or `or`"),
        ("nonsense eq 1", "nonsense"),
        ("birthdate eq not-a-date", "birthdate"),
        ("given gt peter", "operator `gt`"),
        (
            "related[type eq has-component].target pr true",
            "not supported",
        ),
        ("given:exact eq Peter", "modifiers"),
        ("family pr maybe", "true or false"),
        ("_content eq peter", "only `co`"),
        (
            &format!("{}given eq x{}", "(".repeat(20), ")".repeat(20)),
            "nest at most",
        ),
    ] {
        let query = format!("Patient?_filter={}", enc(expression));
        let r = s.get(&query).await;
        assert_names_param(&r, "_filter", &query);
        assert!(r.text.contains(says), "{expression}: {}", r.text);
    }
    // A search of every type takes only the parameters every type has.
    let query = format!("?_filter={}", enc("not (gender eq male)"));
    let r = s.get(&query).await;
    assert_names_param(&r, "_filter", &query);
    assert!(r.text.contains("every resource type"), "{}", r.text);
}

async fn system_search_and_spacing(s: &TestServer) {
    let peter = create_id(s, patient("Peter", "Pan", "2014-10-10", "male")).await;
    let wendy = create_id(s, patient("Wendy", "Darling", "2015-01-02", "female")).await;
    assert_eq!(
        ids(
            s,
            &format!(
                "?_filter={}",
                enc(&format!("_id eq {peter} or _id eq {wendy}"))
            )
        )
        .await,
        set(&[&peter, &wendy])
    );
    // `not(` and `)and(` need no spaces.
    assert_eq!(
        filter(s, "Patient", "not(given eq peter)and(family sw darl)").await,
        set(&[&wendy])
    );
}

crate::on_both_databases!(
    operators_follow_the_parameter_type,
    logic_runs_left_to_right,
    chains_has_tokens_and_quantities,
    malformed_and_unsupported_filters_are_400,
    system_search_and_spacing,
);
