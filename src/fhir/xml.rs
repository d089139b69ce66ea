//! FHIR XML in and out (http://hl7.org/fhir/R4/xml.html). JSON is the stored
//! form; XML is converted at the edge, driven by the R4 schema
//! (`fhir::schema`): element order, which elements are primitives, choice
//! types and nested resources all come from it.
//!
//! - `read`: XML → JSON. Unknown elements and attributes, text where none
//!   belongs, foreign namespaces and DOCTYPE declarations are refused with the
//!   element's path. XML comments outside the narrative are dropped.
//! - `write`: JSON → XML, compact, elements in schema order.
//!
//! The narrative `div` is copied verbatim in both directions (whitespace,
//! comments, entities and attributes as they are), after a check that it is a
//! well-formed XHTML `div` element on its own.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;
use serde_json::Value;

use crate::fhir::schema::schema;

mod read;
mod write;

const FHIR_NS: &str = "http://hl7.org/fhir";
const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";
/// `xsi:schemaLocation` and the like are allowed and ignored.
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Parses FHIR XML into FHIR JSON.
pub fn xml_to_json(xml: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("the XML is not UTF-8: {e}"))?;
    read::document(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Renders FHIR JSON as FHIR XML.
pub fn json_to_xml(json: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    write::document(&value)
}

/// How an element of a given type is represented.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// The narrative `div`: embedded XHTML.
    Xhtml,
    /// `<name value="..."/>` with `id` and `extension`.
    Primitive,
    /// A nested resource, wrapped: `<contained><Patient>…</Patient></contained>`.
    Resource,
    /// A datatype or backbone element: `id` (and `Extension.url`) as attributes.
    Complex,
}

fn shape(ty: &str) -> Shape {
    match ty {
        "xhtml" => Shape::Xhtml,
        "Resource" => Shape::Resource,
        _ if schema().is_primitive(ty) => Shape::Primitive,
        _ => Shape::Complex,
    }
}

/// Whether an element of `type_name` is written as an XML attribute rather
/// than a child element: `Element.id` (but not a resource's `id`) and
/// `Extension.url`.
fn is_attribute(type_name: &str, is_resource: bool, element: &str) -> bool {
    (element == "id" && !is_resource) || (element == "url" && type_name == "Extension")
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Checks a narrative (`xhtml`) value for validation: one well-formed XHTML
/// `div`, so that it can always be served as XML too.
pub fn check_narrative(text: &str, path: &str) -> Result<(), String> {
    checked_div(text, path).map(|_| ())
}

/// Checks that `text` is one well-formed XHTML `div` element and returns it as
/// it is, or with `xmlns="http://www.w3.org/1999/xhtml"` added to the `div`
/// when it does not declare it itself. Surrounding whitespace is dropped.
fn checked_div<'a>(text: &'a str, path: &str) -> Result<Cow<'a, str>, String> {
    let text = text.trim_matches(|c: char| c.is_ascii() && is_xml_space(c as u8));
    let bad = |why: &str| format!("{path}: the narrative is not a well-formed XHTML div: {why}");
    let mut xml = NsReader::from_str(text);
    let syntax = |xml: &NsReader<&[u8]>, e: quick_xml::Error| {
        bad(&format!(
            "{e} (at byte {} of the div)",
            xml.error_position()
        ))
    };
    let (ns, div, empty) = match xml.read_resolved_event() {
        Ok((ns, Event::Start(e))) => (ns_of(&ns), e, false),
        Ok((ns, Event::Empty(e))) => (ns_of(&ns), e, true),
        Ok(_) => return Err(bad("it does not begin with <div>")),
        Err(e) => return Err(syntax(&xml, e)),
    };
    let declares = declares_xhtml(&div);
    let other_xmlns = || {
        !declares
            && div
                .attributes()
                .flatten()
                .any(|a| a.key.as_ref() == b"xmlns")
    };
    if div.name().as_ref() != b"div" || !matches!(ns, Ns::Xhtml | Ns::None) || other_xmlns() {
        return Err(bad(&format!(
            "it must be an unprefixed <div xmlns=\"{XHTML_NS}\"> element"
        )));
    }
    check_attributes(&div, &bad)?;
    let mut depth = 0usize;
    let mut open = !empty;
    while open {
        let event = match xml.read_resolved_event() {
            Ok((ResolveResult::Unknown(p), _)) => {
                return Err(bad(&format!(
                    "the prefix '{}' is not declared",
                    String::from_utf8_lossy(&p)
                )))
            }
            Ok((_, event)) => event,
            Err(e) => return Err(syntax(&xml, e)),
        };
        match event {
            Event::Start(e) => {
                check_attributes(&e, &bad)?;
                depth += 1;
            }
            Event::Empty(e) => check_attributes(&e, &bad)?,
            Event::End(_) if depth == 0 => open = false,
            Event::End(_) => depth -= 1,
            Event::GeneralRef(r) => check_reference(&r, &bad)?,
            Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Decl(_) | Event::DocType(_) => {
                return Err(bad("it holds an XML or DOCTYPE declaration"))
            }
            Event::Eof => return Err(bad("the div is not closed")),
        }
    }
    match xml.read_event() {
        Ok(Event::Eof) => {}
        Ok(_) => return Err(bad("there is content after the div")),
        Err(e) => return Err(syntax(&xml, e)),
    }
    Ok(if declares {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("<div xmlns=\"{XHTML_NS}\"{}", &text[4..]))
    })
}

/// Whether a start tag declares the XHTML namespace as its default.
fn declares_xhtml(e: &BytesStart) -> bool {
    e.attributes()
        .flatten()
        .any(|a| a.key.as_ref() == b"xmlns" && a.value.as_ref() == XHTML_NS.as_bytes())
}

/// Attributes of an XHTML element: well-formed, no undefined entities.
fn check_attributes(e: &BytesStart, bad: &dyn Fn(&str) -> String) -> Result<(), String> {
    for a in e.attributes() {
        let a = a.map_err(|err| bad(&err.to_string()))?;
        a.normalized_value(XmlVersion::Implicit1_0).map_err(|err| {
            bad(&format!(
                "attribute '{}': {err}",
                String::from_utf8_lossy(a.key.as_ref())
            ))
        })?;
    }
    Ok(())
}

/// An entity or character reference in XHTML text: only XML's five entities
/// and references to characters that XML allows.
fn check_reference(
    r: &quick_xml::events::BytesRef,
    bad: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let name = String::from_utf8_lossy(r);
    if r.is_char_ref() {
        match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(()),
            _ => Err(bad(&format!("&{name}; is not a character that XML allows"))),
        }
    } else if matches!(name.as_ref(), "lt" | "gt" | "amp" | "quot" | "apos") {
        Ok(())
    } else {
        Err(bad(&format!(
            "the entity &{name}; is not defined (XML knows only &lt; &gt; &amp; &quot; &apos; \
             and character references such as &#160;)"
        )))
    }
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// An element's namespace, as far as FHIR cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ns {
    Fhir,
    Xhtml,
    Xsi,
    Other,
    /// No namespace.
    None,
    /// An undeclared prefix.
    Unknown,
}

fn ns_of(r: &ResolveResult) -> Ns {
    match r {
        ResolveResult::Bound(Namespace(n)) if *n == FHIR_NS.as_bytes() => Ns::Fhir,
        ResolveResult::Bound(Namespace(n)) if *n == XHTML_NS.as_bytes() => Ns::Xhtml,
        ResolveResult::Bound(Namespace(n)) if *n == XSI_NS.as_bytes() => Ns::Xsi,
        ResolveResult::Bound(_) => Ns::Other,
        ResolveResult::Unbound => Ns::None,
        ResolveResult::Unknown(_) => Ns::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_xml() {
        let json = br#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}"#;
        let xml = json_to_xml(json).unwrap();
        assert!(xml.contains(r#"<value value="1.50"/>"#), "{xml}");
        let back = xml_to_json(xml.as_bytes()).unwrap();
        let original: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(back, original);
    }

    /// JSON → XML → JSON gives the same JSON; returns the XML.
    fn round_trip(json: &Value) -> String {
        let xml = json_to_xml(json.to_string().as_bytes()).unwrap();
        assert!(
            xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#),
            "{xml}"
        );
        let back = xml_to_json(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(&back, json, "{xml}");
        xml
    }

    fn rejected(xml: &str) -> String {
        match xml_to_json(xml.as_bytes()) {
            Ok(v) => panic!("accepted: {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn narrative_is_copied_verbatim() {
        let div = "<div xmlns=\"http://www.w3.org/1999/xhtml\">\n  <p>Id: <b>x</b> y</p>\r\n\t\
                   <!-- a comment --><p class=\"c\" title=\"a &amp; b\">&lt;tag&gt; &amp; &#160;&#x263A; \
                   caf\u{e9}</p>  <![CDATA[ <raw> ]]><br/></div>";
        let json = json!({"resourceType": "Patient", "text": {"status": "generated", "div": div}});
        let xml = round_trip(&json);
        assert!(xml.contains(div), "{xml}");

        // Read from XML: the div's text as it is in the document.
        let xml = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">\n  <text>\n    <status value=\"generated\"/>\n    \
             {div}\n  </text>\n</Patient>"
        );
        let json = xml_to_json(xml.as_bytes()).unwrap();
        assert_eq!(json["text"]["div"], div);
    }

    #[test]
    fn narrative_gets_its_namespace_and_must_be_xml() {
        // A prefixed div would need its prefix rewritten: refused.
        let xml = r#"<Patient xmlns="http://hl7.org/fhir"><text xmlns:h="http://www.w3.org/1999/xhtml"><status value="generated"/><h:div><h:p>x</h:p></h:div></text></Patient>"#;
        let e = rejected(xml);
        assert!(e.contains("Patient.text.div"), "{e}");
        // A JSON div without its xmlns is given it.
        let json = json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>x</div>"}});
        let xml = json_to_xml(json.to_string().as_bytes()).unwrap();
        assert!(
            xml.contains(r#"<div xmlns="http://www.w3.org/1999/xhtml">x</div>"#),
            "{xml}"
        );
        for bad in [
            "<div xmlns=\"http://www.w3.org/1999/xhtml\">&nbsp;</div>",
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</div>",
            "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div><p/>",
            "<p xmlns=\"http://www.w3.org/1999/xhtml\">x</p>",
            "plain text",
            "<div xmlns=\"\">x</div>",
        ] {
            let json =
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": bad}});
            let e = json_to_xml(json.to_string().as_bytes()).unwrap_err();
            assert!(e.starts_with("Patient.text.div: "), "{bad}: {e}");
            let xml = format!(
                r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/>{bad}</text></Patient>"#
            );
            assert!(xml_to_json(xml.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn primitive_extensions_and_ids_in_arrays() {
        let json = json!({
            "resourceType": "Patient",
            "id": "p1",
            "_id": {"extension": [{"url": "http://example.org/a", "valueCode": "x"}]},
            "name": [{
                "id": "n1",
                "given": ["Anna", null, "Clara"],
                "_given": [null, {"id": "g2", "extension": [
                    {"url": "http://example.org/b", "valueString": "Bea"}
                ]}, {"id": "g3"}]
            }],
            "birthDate": "1970-01-01",
            "_birthDate": {"id": "bd", "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-01-01T10:00:00Z"}
            ]},
            "_gender": {"extension": [{"url": "http://example.org/c", "valueBoolean": true}]}
        });
        let xml = round_trip(&json);
        assert!(xml.contains(r#"<id value="p1"><extension url="http://example.org/a"><valueCode value="x"/></extension></id>"#), "{xml}");
        assert!(xml.contains(r#"<name id="n1"><given value="Anna"/><given id="g2"><extension url="http://example.org/b"><valueString value="Bea"/></extension></given><given id="g3" value="Clara"/></name>"#), "{xml}");
        assert!(xml.contains(r#"<gender><extension url="http://example.org/c"><valueBoolean value="true"/></extension></gender>"#), "{xml}");
    }

    #[test]
    fn choice_types() {
        let json = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "2020-01-01",
            "valueCodeableConcept": {"coding": [{"system": "http://s", "code": "c"}]},
            "component": [
                {"code": {"text": "a"}, "valueInteger": 7},
                {"code": {"text": "b"}, "valueBoolean": false},
                {"code": {"text": "c"}, "valuePeriod": {"start": "2020"}}
            ]
        });
        let xml = round_trip(&json);
        assert!(
            xml.contains(r#"<effectiveDateTime value="2020-01-01"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<valueInteger value="7"/>"#), "{xml}");
        let e = rejected(
            r#"<Observation xmlns="http://hl7.org/fhir"><valueString value="a"/><valueBoolean value="true"/></Observation>"#,
        );
        assert!(
            e.contains("Observation: both 'valueString' and 'valueBoolean'"),
            "{e}"
        );
        let e = rejected(
            r#"<Observation xmlns="http://hl7.org/fhir"><value value="a"/></Observation>"#,
        );
        assert!(e.contains("Observation: unknown element 'value'"), "{e}");
    }

    #[test]
    fn contained_resources() {
        let json = json!({
            "resourceType": "Patient",
            "id": "p",
            "contained": [
                {"resourceType": "Organization", "id": "o1", "name": "Org",
                 "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"> Org </div>"}},
                {"resourceType": "Practitioner", "id": "pr1", "active": true}
            ],
            "managingOrganization": {"reference": "#o1"}
        });
        let xml = round_trip(&json);
        assert!(
            xml.contains(r#"<contained><Organization><id value="o1"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"</Organization></contained><contained><Practitioner>"#),
            "{xml}"
        );
        let e = rejected(
            r#"<Patient xmlns="http://hl7.org/fhir"><contained><Foo/></contained></Patient>"#,
        );
        assert!(
            e.contains("Patient.contained[0]: 'Foo' is not a resource type"),
            "{e}"
        );
        let e = rejected(
            r#"<Patient xmlns="http://hl7.org/fhir"><contained><Basic/><Basic/></contained></Patient>"#,
        );
        assert!(
            e.contains("Patient.contained[0]: holds more than one resource"),
            "{e}"
        );
    }

    #[test]
    fn bundle_entries_and_parameters_hold_resources() {
        let json = json!({
            "resourceType": "Bundle",
            "id": "b",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "1",
                    "name": [{"family": "A"}]}},
                {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Parameters", "parameter": [
                    {"name": "r", "resource": {"resourceType": "Basic", "code": {"text": "t"}}},
                    {"name": "v", "valueDecimal": 2.50, "part": [{"name": "p", "valueString": "s"}]}
                ]}},
                {"request": {"method": "GET", "url": "Patient"},
                 "response": {"status": "200", "outcome": {"resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational"}]}}}
            ]
        });
        let xml = round_trip(&json);
        assert!(
            xml.contains(
                r#"<entry><fullUrl value="urn:uuid:1"/><resource><Patient><id value="1"/>"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<outcome><OperationOutcome><issue>"#),
            "{xml}"
        );
        let e = rejected(
            r#"<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Patient><name><foo/></name></Patient></resource></entry></Bundle>"#,
        );
        assert_eq!(e, "Bundle.entry[0].resource.name[0]: unknown element 'foo'");
    }

    #[test]
    fn extensions_have_url_attributes_and_nest() {
        let json = json!({
            "resourceType": "Patient",
            "extension": [{
                "id": "e1",
                "url": "http://example.org/outer",
                "extension": [
                    {"url": "inner", "valueQuantity": {"value": 1.0, "unit": "kg"}},
                    {"url": "deeper", "extension": [{"url": "x", "valueReference": {"reference": "Patient/1"}}]}
                ]
            }],
            "modifierExtension": [{"url": "http://example.org/mod", "valueString": "m"}],
            "address": [{"extension": [{"url": "http://example.org/geo", "valueAddress": {"city": "X"}}], "city": "Y"}]
        });
        let xml = round_trip(&json);
        assert!(xml.contains(r#"<extension id="e1" url="http://example.org/outer"><extension url="inner"><valueQuantity><value value="1.0"/>"#), "{xml}");
        assert!(xml.contains(r#"<modifierExtension url="http://example.org/mod"><valueString value="m"/></modifierExtension>"#), "{xml}");
        let e = rejected(
            r#"<Patient xmlns="http://hl7.org/fhir"><extension><url value="x"/></extension></Patient>"#,
        );
        assert!(
            e.contains("Patient.extension[0]: 'url' is an attribute here"),
            "{e}"
        );
        let e = rejected(
            r#"<Patient xmlns="http://hl7.org/fhir"><name><id value="x"/></name></Patient>"#,
        );
        assert!(
            e.contains("Patient.name[0]: 'id' is an attribute here"),
            "{e}"
        );
    }

    #[test]
    fn numbers_and_booleans_keep_their_text() {
        let json: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"w"},
                "valueQuantity":{"value":1.50},
                "referenceRange":[{"low":{"value":0.010},"high":{"value":123456789012345678.90}}],
                "component":[{"code":{"text":"a"},"valueQuantity":{"value":1.0e-7}},
                             {"code":{"text":"b"},"valueQuantity":{"value":-3.14159265358979323846264338327950288}},
                             {"code":{"text":"c"},"valueInteger":-12},
                             {"code":{"text":"d"},"valueBoolean":true}]}"#,
        )
        .unwrap();
        let xml = round_trip(&json);
        for literal in [
            "1.50",
            "0.010",
            "123456789012345678.90",
            "1.0e-7",
            "-12",
            "true",
        ] {
            assert!(
                xml.contains(&format!(r#" value="{literal}"/>"#)),
                "{literal}: {xml}"
            );
        }
        let back = xml_to_json(xml.as_bytes()).unwrap();
        assert!(back.to_string().contains(r#""value":1.50"#));
        for bad in [
            r#"<valueInteger value="x"/>"#,
            r#"<valueBoolean value="yes"/>"#,
            r#"<valueQuantity><value value="1,5"/></valueQuantity>"#,
        ] {
            let xml = format!(r#"<Observation xmlns="http://hl7.org/fhir">{bad}</Observation>"#);
            let e = rejected(&xml);
            assert!(e.starts_with("Observation.value"), "{e}");
        }
    }

    #[test]
    fn strings_escape_and_unicode_survive() {
        let family = "Ñandú 张伟 👩‍⚕️ 𝄞";
        let given = "a & b < c > d \"q\" 'a'\nline two\r\n\ttabbed  two  spaces ";
        let json =
            json!({"resourceType": "Patient", "name": [{"family": family, "given": [given]}]});
        let xml = round_trip(&json);
        assert!(
            xml.contains(&format!(r#"<family value="{family}"/>"#)),
            "{xml}"
        );
        assert!(
            xml.contains(
                "a &amp; b &lt; c &gt; d &quot;q&quot; 'a'&#10;line two&#13;&#10;&#9;tabbed"
            ),
            "{xml}"
        );
        // Literal line breaks in attribute values are normalised to spaces, as
        // XML wants; character references are not.
        let xml = "<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"a\nb&#10;c\"/></name></Patient>";
        assert_eq!(
            xml_to_json(xml.as_bytes()).unwrap()["name"][0]["family"],
            "a b\nc"
        );
        // Control characters have no XML form.
        let json = json!({"resourceType": "Patient", "name": [{"family": "a\u{1}b"}]});
        let e = json_to_xml(json.to_string().as_bytes()).unwrap_err();
        assert!(
            e.contains("Patient.name[0].family: the character U+0001"),
            "{e}"
        );
    }

    #[test]
    fn elements_are_written_in_schema_order() {
        let json = json!({"gender": "male", "name": [{"given": ["A"], "family": "B", "use": "official"}],
                          "id": "x", "resourceType": "Patient", "active": true,
                          "meta": {"versionId": "1"}});
        let xml = json_to_xml(json.to_string().as_bytes()).unwrap();
        assert_eq!(
            xml,
            r#"<?xml version="1.0" encoding="UTF-8"?><Patient xmlns="http://hl7.org/fhir"><id value="x"/><meta><versionId value="1"/></meta><active value="true"/><name><use value="official"/><family value="B"/><given value="A"/></name><gender value="male"/></Patient>"#
        );
    }

    #[test]
    fn reads_the_official_xml_style() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root -->
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
  <id value="example"/>
  <!--   a comment   -->
  <active value="true"/>
  <name>
    <use value="official"/>
    <given value="Peter"/>
    <given value="James"/>
  </name>
</Patient>
"#;
        let json = xml_to_json(xml.as_bytes()).unwrap();
        assert_eq!(
            json,
            json!({"resourceType": "Patient", "id": "example", "active": true,
                   "name": [{"use": "official", "given": ["Peter", "James"]}]})
        );
        // A byte order mark is fine.
        let mut bom = "\u{feff}".as_bytes().to_vec();
        bom.extend_from_slice(xml.as_bytes());
        assert_eq!(xml_to_json(&bom).unwrap(), json);
    }

    #[test]
    fn rejects_what_is_not_fhir_xml() {
        let cases = [
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="x"><foo/></family></name></Patient>"#,
                "Patient.name[0].family: unknown element 'foo'",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><foo value="x"/></Patient>"#,
                "Patient: unknown element 'foo'",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><active value="true" colour="red"/></Patient>"#,
                "Patient.active: unknown attribute 'colour'",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name>Peter</name></Patient>"#,
                "Patient.name[0]: text content is not allowed",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><x:active xmlns:x="urn:other" value="true"/></Patient>"#,
                "Patient: element 'x:active' is not in the FHIR namespace",
            ),
            (
                r#"<Patient><active value="true"/></Patient>"#,
                "not in the FHIR namespace",
            ),
            (
                r#"<Foo xmlns="http://hl7.org/fhir"/>"#,
                "'Foo' is not a resource type",
            ),
            (
                r#"<name xmlns="http://hl7.org/fhir"/>"#,
                "'name' is not a resource type",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"/><active value="false"/></Patient>"#,
                "Patient: 'active' appears more than once",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name><given/></name></Patient>"#,
                "Patient.name[0].given[0]: has neither a value nor extensions",
            ),
            (
                r#"<?xml version="1.0" encoding="ISO-8859-1"?><Patient xmlns="http://hl7.org/fhir"/>"#,
                "only UTF-8",
            ),
            ("", "no root element"),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"/>"#,
                "not closed",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"></Patient><Patient xmlns="http://hl7.org/fhir"/>"#,
                "after the root",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name></nome></Patient>"#,
                "XML syntax error",
            ),
        ];
        for (xml, expected) in cases {
            let e = rejected(xml);
            assert!(e.contains(expected), "{xml}: {e}");
        }
        assert!(xml_to_json(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn rejects_doctype_declarations() {
        let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>"#;
        assert_eq!(rejected(xxe), "DOCTYPE declarations are not allowed");
        // Undeclared entities are refused, not expanded to nothing.
        let e = rejected(
            r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>"#,
        );
        assert!(e.starts_with("Patient.name[0].family: "), "{e}");
    }

    #[test]
    fn refuses_json_it_cannot_write() {
        for (json, expected) in [
            (
                json!({"resourceType": "Patient", "foo": 1}),
                "Patient: unknown property 'foo'",
            ),
            (
                json!({"resourceType": "Nope"}),
                "'Nope' is not a resource type",
            ),
            (json!({"id": "x"}), "no resourceType"),
            (
                json!({"resourceType": "Patient", "active": "yes"}),
                "Patient.active: expected a boolean",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"_id": {"id": "x"}}]}),
                "Patient.name[0]: '_id' is not possible",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"given": [null]}]}),
                "Patient.name[0].given[0]: null",
            ),
            (
                json!({"resourceType": "Observation", "valueString": "a", "valueBoolean": true}),
                "Observation: both",
            ),
        ] {
            let e = json_to_xml(json.to_string().as_bytes()).unwrap_err();
            assert!(e.contains(expected), "{json}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let mut xml = String::from(r#"<Patient xmlns="http://hl7.org/fhir">"#);
        let depth = 5000;
        for _ in 0..depth {
            xml.push_str(r#"<extension url="x">"#);
        }
        for _ in 0..depth {
            xml.push_str("</extension>");
        }
        xml.push_str("</Patient>");
        let e = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || xml_to_json(xml.as_bytes()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert!(e.contains("nested too deeply"), "{e}");

        // Fine as XML, but too deep for JSON (two levels per extension).
        let nested = |depth: usize| {
            let open = r#"<extension url="x">"#.repeat(depth);
            let close = "</extension>".repeat(depth);
            format!(r#"<Patient xmlns="http://hl7.org/fhir">{open}{close}</Patient>"#)
        };
        let e = xml_to_json(nested(64).as_bytes()).unwrap_err();
        assert!(e.contains("deeper than 127 levels as JSON"), "{e}");
        let json = xml_to_json(nested(63).as_bytes()).unwrap();
        let text = serde_json::to_string(&json).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
