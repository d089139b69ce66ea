//! Unit tests of the parser and the main features.

use serde_json::json;

use super::*;

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "active": true,
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://x/time", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"]}
        ],
        "deceasedBoolean": false,
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Acme"}],
        "managingOrganization": {"reference": "#o1"}
    })
}

fn eval(expr: &str) -> Vec<String> {
    let p = patient();
    let ctx = Context {
        strict: true,
        ..Context::default()
    };
    let e = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    evaluate(&e, &p, &ctx)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .iter()
        .map(|n| n.render().unwrap_or_else(|| "<complex>".into()))
        .collect()
}

fn check(expr: &str, want: &[&str]) {
    assert_eq!(eval(expr), want, "{expr}");
}

#[test]
fn parses_precedence_and_literals() {
    use ast::{BinOp, Expr, Literal};
    let e = parse("1 + 2 * 3").unwrap();
    let Expr::Binary(BinOp::Add, _, r) = e else {
        panic!()
    };
    assert!(matches!(*r, Expr::Binary(BinOp::Mul, _, _)));
    assert!(matches!(
        parse("-5").unwrap(),
        Expr::Literal(Literal::Int(-5))
    ));
    assert!(matches!(
        parse("4 'mg'").unwrap(),
        Expr::Literal(Literal::Quantity(_))
    ));
    assert!(matches!(
        parse("@2014-01-01T10:00").unwrap(),
        Expr::Literal(Literal::DateTime(_))
    ));
    assert!(matches!(parse("a is FHIR.string").unwrap(), Expr::Is(_, _)));
    assert!(parse("2 + 2 /").is_err());
    assert!(parse("'unterminated").is_err());
    assert!(parse("2 /* x").is_err());
    check("2 + 2 // comment", &["4"]);
}

#[test]
fn paths_and_choice_types() {
    check("Patient.name.given", &["Peter", "James", "Jim"]);
    check("name[1].given", &["Jim"]);
    check("Patient.deceased", &["false"]);
    check("Patient.deceased is boolean", &["true"]);
    check("Patient.deceased.ofType(boolean)", &["false"]);
    check(
        "birthDate.extension.value.ofType(dateTime)",
        &["1974-12-25T14:35:45-05:00"],
    );
    check("birthDate.hasValue()", &["true"]);
    let p = patient();
    let ctx = Context {
        strict: true,
        ..Context::default()
    };
    assert!(evaluate(&parse("name.given1").unwrap(), &p, &ctx).is_err());
    assert!(evaluate(&parse("Patient.deceasedBoolean").unwrap(), &p, &ctx).is_err());
}

#[test]
fn filters_and_collections() {
    check("name.where(use = 'usual').given", &["Jim"]);
    check("name.select(given.first())", &["Peter", "Jim"]);
    check("name.given.count()", &["3"]);
    check("name.given.exists($this = 'Jim')", &["true"]);
    check("name.all(given.exists())", &["true"]);
    check("(1 | 2 | 2).count()", &["2"]);
    check("(1 | 2).combine(2).count()", &["3"]);
    check("(1 | 2 | 3).intersect(2 | 4)", &["2"]);
    check("(1 | 2 | 3).exclude(2)", &["1", "3"]);
    check("(1 | 2).subsetOf(1 | 2 | 3)", &["true"]);
    check("name.given.skip(1).take(1)", &["James"]);
    check("(1 | 2 | 3).aggregate($this + $total, 0)", &["6"]);
    check("name.given.select($index)", &["0", "1", "2"]);
    check("iif(active, 'yes', 'no')", &["yes"]);
    check("managingOrganization.resolve().name", &["Acme"]);
}

#[test]
fn logic_equality_and_comparison() {
    check("true and {}", &[]);
    check("false and {}", &["false"]);
    check("true or {}", &["true"]);
    check("{} implies true", &["true"]);
    check("1 = 1.0", &["true"]);
    check("'a' ~ 'A'", &["true"]);
    check("@2012-04-15 = @2012-04-15T10:00", &[]);
    check(
        "@2012-04-15T10:00:00+02:00 = @2012-04-15T08:00:00Z",
        &["true"],
    );
    check("@2012 < @2013-01", &["true"]);
    check("4 'g' = 4000 'mg'", &["true"]);
    check("1 year ~ 1 'a'", &["true"]);
    check("birthDate < @1980-01-01", &["true"]);
}

#[test]
fn arithmetic_and_functions() {
    check("7 div 2", &["3"]);
    check("7 mod 2", &["1"]);
    check("1 / 4", &["0.25"]);
    check("0.1 + 0.2 = 0.3", &["true"]);
    check("'a' + 'b' & {}", &["ab"]);
    check("@2014-01-31 + 1 month", &["2014-02-28"]);
    check("@T10:00 + 90 minutes", &["11:30"]);
    check("'abcdef'.substring(2, 3)", &["cde"]);
    check("'a,b'.split(',').join('-')", &["a-b"]);
    check("'abc'.matches('[a-c]+')", &["true"]);
    check("'abc'.replaceMatches('b', 'x')", &["axc"]);
    check("'5 \\'mg\\''.toQuantity() = 5 'mg'", &["true"]);
    check("'1.5'.toInteger()", &[]);
    check("'yes'.toBoolean()", &["true"]);
    check("2.power(10)", &["1024"]);
    check("3.14159.round(2)", &["3.14"]);
    check("16.sqrt()", &["4"]);
    check("Patient.active.type().namespace", &["FHIR"]);
    check("descendants().where($this = 'Jim').count()", &["1"]);
}

fn eval_lenient(expr: &str, res: &Value) -> Result<Vec<String>, Error> {
    let ctx = Context::default();
    Ok(evaluate(&parse(expr)?, res, &ctx)?
        .iter()
        .map(|n| {
            n.render()
                .unwrap_or_else(|| format!("<{}>", n.type_name().1))
        })
        .collect())
}

#[test]
fn lexes_tokens() {
    use lexer::{lex, Tok};
    let toks = lex("%`vs-x`.a[0] <= @T10:00 and `div` != 'it''s'").unwrap_or_default();
    assert_eq!(toks[0], Tok::Env("vs-x".into()));
    assert!(toks.contains(&Tok::Op("<=")));
    assert!(toks.contains(&Tok::Time("10:00".into())));
    assert!(toks.contains(&Tok::Delimited("div".into())));
    let toks = lex("@2015-02-04.toString()").unwrap();
    assert_eq!(toks[0], Tok::DateTime("2015-02-04".into()));
    assert_eq!(toks[1], Tok::Op("."));
    assert_eq!(
        lex("'a\\'b\\u0041'").unwrap(),
        vec![Tok::Str("a'bA".into())]
    );
    assert!(lex("#").is_err());
}

#[test]
fn search_parameter_style_expressions() {
    let obs = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/example"},
        "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"},
        "component": [
            {"code": {"text": "a"}, "valueCodeableConcept": {"text": "x"}},
            {"code": {"text": "b"}, "valueCodeableConcept": {"text": "y"}}
        ]
    });
    let r = |e: &str| eval_lenient(e, &obs).unwrap_or_else(|err| panic!("{e}: {err}"));
    assert_eq!(r("Observation.value as Quantity"), ["185 '[lb_av]'"]);
    assert_eq!(r("(Observation.value as Quantity).value"), ["185"]);
    // Lenient `as` filters a collection; strict mode refuses it.
    assert_eq!(
        r("(Observation.component.value as CodeableConcept).text"),
        ["x", "y"]
    );
    let strict = Context {
        strict: true,
        ..Context::default()
    };
    let e = parse("Observation.component.value as CodeableConcept").unwrap();
    assert!(evaluate(&e, &obs, &strict).is_err());
    // resolve() of an unknown literal reference gives a typed placeholder.
    assert_eq!(
        r("Observation.subject.where(resolve() is Patient).reference"),
        ["Patient/example"]
    );
    assert_eq!(
        r("Observation.subject.where(resolve() is Group)"),
        Vec::<String>::new()
    );
    assert_eq!(r("Resource.status"), ["final"]);
    assert_eq!(r("Patient.name | Observation.status"), ["final"]);
    assert_eq!(r("Observation.value > 80 'kg'"), ["true"]);
    assert_eq!(r("code.coding.where(system = %loinc).code"), ["29463-7"]);
}

#[test]
fn variables_clock_and_errors() {
    let p = patient();
    let now = chrono::DateTime::parse_from_rfc3339("2024-03-01T10:30:00+01:00").ok();
    let ctx = Context {
        now,
        variables: vec![("x".into(), json!("hello"))],
        ..Context::default()
    };
    let r = |e: &str| -> Vec<String> {
        evaluate(&parse(e).unwrap(), &p, &ctx)
            .unwrap()
            .iter()
            .filter_map(|n| n.render())
            .collect()
    };
    assert_eq!(r("today()"), ["2024-03-01"]);
    assert_eq!(r("now()"), ["2024-03-01T10:30:00.000+01:00"]);
    assert_eq!(r("%x.upper()"), ["HELLO"]);
    assert_eq!(
        r("%`vs-administrative-gender`"),
        ["http://hl7.org/fhir/ValueSet/administrative-gender"]
    );
    assert_eq!(
        r("birthDate.extension('http://x/time').value.toString()"),
        ["1974-12-25T14:35:45-05:00"]
    );
    assert_eq!(r("today() - 1 day"), ["2024-02-29"]);
    assert!(eval_lenient("today() - birthDate", &p).is_err());
    assert!(eval_lenient("name.foo(1)", &p).is_err());
    assert!(eval_lenient("%unknown", &p).is_err());
    assert!(eval_lenient("name.given.single()", &p).is_err());
    assert!(eval_lenient("(1 | 2) + 1", &p).is_err());
    assert!(eval_lenient("'a'.is(Foo)", &p).is_err());
    assert!(eval_lenient("1 + 'a'", &p).is_err());
}

#[test]
fn dates_and_quantities() {
    check("@2014-03-31 - 1 month", &["2014-02-28"]);
    check("@2016-02-29 + 1 year", &["2017-02-28"]);
    check("@2014-01-01T10:00:00Z + 2 hours", &["2014-01-01T12:00:00Z"]);
    check("@2014 + 24 months", &["2016"]);
    check("@T23:30 + 1 hour", &["00:30"]);
    check("@2014-01-01 < @2014-01-01T10:00", &[]);
    check("@2014-01-01T10:00:00.000 = @2014-01-01T10:00:00", &["true"]);
    check("@2014-01 ~ @2014-01-01", &["false"]);
    check("1 'm' > 99 'cm'", &["true"]);
    check("1 week = 7 days", &["true"]);
    check("1 year = 1 'a'", &[]);
    check("(5 'mg').toString()", &["5 'mg'"]);
    check("'10 days'.toQuantity()", &["10 days"]);
    check("'1 g'.convertsToQuantity()", &["false"]);
    check("1000 'mg'.toQuantity('g')", &["1 'g'"]);
}

#[test]
fn hostile_input_gives_errors_not_panics() {
    let p = patient();
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(parse(&deep).is_err());
    let long_chain = format!("1{}", " + 1".repeat(150));
    assert!(parse(&long_chain).is_ok());
    assert!(eval_lenient("1.repeat($this + 1)", &p).is_err());
    assert_eq!(
        eval_lenient("9223372036854775807 + 1", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_lenient("(-9223372036854775807 - 1).abs()", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_lenient("@2014-01-01 + 100000000000000 days", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_lenient("@2014 + 9999999999 years", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_lenient("79228162514264337593543950335.0 * 10", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_lenient("79228162514264337593543950335 'g' * 10", &p).unwrap(),
        Vec::<String>::new()
    );
    assert!(eval_lenient("'a'.matches('(')", &p).is_err());
    assert_eq!(
        eval_lenient("'é'.substring(5)", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        eval_lenient("2.power(100)", &p).unwrap(),
        Vec::<String>::new()
    );
}

/// `%resource` is the resource the node is in, `%rootResource` its
/// container; `resolve()` finds `#id` among the container's contained
/// resources (R4 fhirpath.html#variables).
#[test]
fn resource_and_root_resource_in_a_contained_resource() {
    let container = json!({
        "resourceType": "Patient", "id": "p1",
        "contained": [
            {"resourceType": "Organization", "id": "o1", "name": "Acme",
             "partOf": {"reference": "#o2"}},
            {"resourceType": "Organization", "id": "o2", "name": "Parent"}
        ],
        "managingOrganization": {"reference": "#o1"}
    });
    let org = &container["contained"][0];
    let ctx = Context::default();
    let run = |expr: &str, resource: &Value, root: &Value| -> Vec<String> {
        let e = parse(expr).unwrap();
        let focus = vec![eval::Evaluator::new(resource, &ctx).root()];
        evaluate_contained(&e, resource, root, focus, &ctx)
            .unwrap()
            .iter()
            .map(|n| n.render().unwrap_or_else(|| "<complex>".into()))
            .collect()
    };
    assert_eq!(run("%resource.id", org, &container), vec!["o1"]);
    assert_eq!(run("%rootResource.id", org, &container), vec!["p1"]);
    assert_eq!(run("%resource.name", org, &container), vec!["Acme"]);
    assert_eq!(
        run("partOf.resolve().name", org, &container),
        vec!["Parent"]
    );
    // Not contained: both are the resource.
    assert_eq!(run("%rootResource.id", &container, &container), vec!["p1"]);
    assert_eq!(run("%resource.id", &container, &container), vec!["p1"]);
    let p = container.clone();
    let e = parse("%rootResource.id = %resource.id").unwrap();
    let out = evaluate(&e, &p, &ctx).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].render().as_deref(), Some("true"));
}
