//! v2 data types to FHIR data types (IG 1.0.0 "Data Type" maps, reduced to
//! the components the mappers use).

use serde_json::{json, Map, Value};

use crate::hl7v2::message::Rep;

/// Percent-encodes text for use inside a URN.
pub fn uri_part(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An HD (hierarchic designator) or the namespace/universal id pair of an
/// EI/CX as an identifier system:
/// - universal id of type ISO → `urn:oid:<id>`; UUID → `urn:uuid:<id>`;
///   a universal id that is already a URI (has `:`) → itself;
/// - otherwise the namespace → `urn:charaka:hl7v2:aa:<namespace>`.
pub fn system_of(namespace: &str, universal: &str, kind: &str) -> Option<String> {
    if !universal.is_empty() {
        return Some(match kind.to_ascii_uppercase().as_str() {
            "ISO" if !universal.starts_with("urn:") => format!("urn:oid:{universal}"),
            "UUID" if !universal.starts_with("urn:") => format!("urn:uuid:{universal}"),
            _ if universal.contains(':') => universal.to_string(),
            _ => format!("urn:charaka:hl7v2:aa:{}", uri_part(universal)),
        });
    }
    if !namespace.is_empty() {
        return Some(format!("urn:charaka:hl7v2:aa:{}", uri_part(namespace)));
    }
    None
}

/// CX → Identifier. `default_system` is used when CX-4 is empty (the
/// sending facility's namespace: identifiers without an assigning authority
/// are local to the sender).
pub fn identifier_cx(cx: &Rep, default_system: &str) -> Option<Value> {
    let value = cx.comp(1);
    if value.is_empty() {
        return None;
    }
    let aa = cx.part(4);
    let system = system_of(
        &aa.sub_part(1).text(),
        &aa.sub_part(2).text(),
        &aa.sub_part(3).text(),
    )
    .unwrap_or_else(|| default_system.to_string());
    let mut id = json!({"system": system, "value": value});
    if let Some(t) = cx.opt(5) {
        id["type"] = json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": t
        }]});
    }
    Some(id)
}

/// EI → Identifier (entity identifier: id^namespace^universal id^type).
pub fn identifier_ei(ei: &Rep, default_system: &str) -> Option<Value> {
    let value = ei.comp(1);
    if value.is_empty() {
        return None;
    }
    let system = system_of(&ei.comp(2), &ei.comp(3), &ei.comp(4))
        .unwrap_or_else(|| default_system.to_string());
    Some(json!({"system": system, "value": value}))
}

/// The (system, value) pair of an Identifier.
pub fn key_of(identifier: &Value) -> Option<(String, String)> {
    Some((
        identifier["system"].as_str()?.to_string(),
        identifier["value"].as_str()?.to_string(),
    ))
}

/// XPN → HumanName (family^given^middle^suffix^prefix^degree^type).
pub fn human_name(xpn: &Rep) -> Option<Value> {
    let mut name = Map::new();
    let family = xpn.part(1).sub_part(1).text();
    if !family.trim().is_empty() {
        name.insert("family".into(), json!(family.trim()));
    }
    let given: Vec<String> = [2, 3].iter().filter_map(|i| xpn.opt(*i)).collect();
    if !given.is_empty() {
        name.insert("given".into(), json!(given));
    }
    if let Some(s) = xpn.opt(4) {
        name.insert("suffix".into(), json!([s]));
    }
    if let Some(p) = xpn.opt(5) {
        name.insert("prefix".into(), json!([p]));
    }
    let usage = match xpn.comp(7).as_str() {
        "L" => Some("official"),
        "D" => Some("usual"),
        "M" | "B" => Some("maiden"),
        "N" => Some("nickname"),
        "A" | "S" => Some("anonymous"),
        "T" => Some("temp"),
        _ => None,
    };
    if name.is_empty() {
        return None;
    }
    if let Some(u) = usage {
        name.insert("use".into(), json!(u));
    }
    Some(Value::Object(name))
}

/// XAD → Address.
pub fn address(xad: &Rep) -> Option<Value> {
    let mut a = Map::new();
    let lines: Vec<String> = [1, 2]
        .iter()
        .filter_map(|i| {
            Some(xad.part(*i).sub_part(1).text().trim().to_string()).filter(|s| !s.is_empty())
        })
        .collect();
    if !lines.is_empty() {
        a.insert("line".into(), json!(lines));
    }
    for (i, key) in [
        (3, "city"),
        (4, "state"),
        (5, "postalCode"),
        (6, "country"),
        (9, "district"),
    ] {
        if let Some(v) = xad.opt(i) {
            a.insert(key.into(), json!(v));
        }
    }
    if a.is_empty() {
        return None;
    }
    match xad.comp(7).as_str() {
        "H" => {
            a.insert("use".into(), json!("home"));
        }
        "B" | "O" => {
            a.insert("use".into(), json!("work"));
        }
        "C" => {
            a.insert("use".into(), json!("temp"));
        }
        "M" => {
            a.insert("type".into(), json!("postal"));
        }
        _ => {}
    }
    Some(Value::Object(a))
}

/// XTN → ContactPoint. `default_use` applies when XTN-2 does not say.
pub fn contact_point(xtn: &Rep, default_use: Option<&str>) -> Option<Value> {
    let equipment = xtn.comp(3);
    let email = xtn.comp(4);
    let mut c = Map::new();
    if equipment == "Internet"
        || equipment == "X.400"
        || (!email.is_empty() && xtn.comp(1).is_empty())
    {
        if email.is_empty() {
            return None;
        }
        c.insert("system".into(), json!("email"));
        c.insert("value".into(), json!(email));
    } else {
        let mut value = xtn.comp(1);
        if value.is_empty() {
            value = xtn.comp(12);
        }
        if value.is_empty() {
            let (area, local, ext) = (xtn.comp(6), xtn.comp(7), xtn.comp(8));
            if local.is_empty() {
                return None;
            }
            value = if area.is_empty() {
                local
            } else {
                format!("({area}) {local}")
            };
            if !ext.is_empty() {
                value = format!("{value} x{ext}");
            }
        }
        let system = match equipment.as_str() {
            "FX" => "fax",
            "BP" => "pager",
            _ => "phone",
        };
        c.insert("system".into(), json!(system));
        c.insert("value".into(), json!(value));
        if equipment == "CP" {
            c.insert("use".into(), json!("mobile"));
        }
    }
    if !c.contains_key("use") {
        let usage = match xtn.comp(2).as_str() {
            "PRN" | "ORN" | "VHN" => Some("home"),
            "WPN" => Some("work"),
            "PRS" => Some("mobile"),
            _ => default_use,
        };
        if let Some(u) = usage {
            c.insert("use".into(), json!(u));
        }
    }
    Some(Value::Object(c))
}

/// A v2 coding system name (CWE-3) as a FHIR system URI.
pub fn code_system(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    Some(
        match upper.as_str() {
            "" => return None,
            "LN" | "LOINC" => "http://loinc.org",
            "SCT" | "SNM" | "SNOMEDCT" | "SNOMED" => "http://snomed.info/sct",
            "I10" | "I10C" | "ICD10CM" | "ICD-10-CM" => "http://hl7.org/fhir/sid/icd-10-cm",
            "I9" | "I9C" | "ICD9CM" => "http://hl7.org/fhir/sid/icd-9-cm",
            "CVX" => "http://hl7.org/fhir/sid/cvx",
            "MVX" => "http://hl7.org/fhir/sid/mvx",
            "NCIT" => "http://ncimeta.nci.nih.gov",
            "RXNORM" => "http://www.nlm.nih.gov/research/umls/rxnorm",
            "NDC" => "http://hl7.org/fhir/sid/ndc",
            "CPT" | "C4" => "http://www.ama-assn.org/go/cpt",
            "UCUM" => "http://unitsofmeasure.org",
            _ if upper.starts_with("HL7") && upper.len() == 7 => {
                return Some(format!(
                    "http://terminology.hl7.org/CodeSystem/v2-{}",
                    &upper[3..]
                ))
            }
            _ if name.contains(':') => return Some(name.to_string()),
            _ => return Some(format!("urn:charaka:hl7v2:cs:{}", uri_part(name))),
        }
        .to_string(),
    )
}

/// CWE/CE → CodeableConcept (identifier^text^system, then the alternate
/// triple), or None when empty.
pub fn codeable_concept(cwe: &Rep) -> Option<Value> {
    let mut codings = Vec::new();
    for (c, t, s) in [(1, 2, 3), (4, 5, 6)] {
        let code = cwe.comp(c);
        if code.is_empty() {
            continue;
        }
        let mut coding = Map::new();
        if let Some(system) = code_system(&cwe.comp(s)) {
            coding.insert("system".into(), json!(system));
        }
        coding.insert("code".into(), json!(code));
        if let Some(d) = cwe.opt(t) {
            coding.insert("display".into(), json!(d));
        }
        codings.push(Value::Object(coding));
    }
    let text = cwe.comp(9);
    let text = if text.is_empty() { cwe.comp(2) } else { text };
    if codings.is_empty() && text.is_empty() {
        return None;
    }
    let mut cc = Map::new();
    if !codings.is_empty() {
        cc.insert("coding".into(), json!(codings));
    }
    if !text.is_empty() {
        cc.insert("text".into(), json!(text));
    }
    Some(Value::Object(cc))
}

const V3_CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const V2_0177: &str = "http://terminology.hl7.org/CodeSystem/v2-0177";

/// A confidentiality code (CWE, table 0177: ORC-28) → a security label
/// Coding, through the IG ConceptMap ConfidentialityCode. A code given in
/// another coding system (CWE-3 not HL70177) is kept as a Coding of that
/// system. `Ok(None)` when empty; `Err(code)` for a code the table does not
/// have, since a restriction silently dropped would expose the resource.
pub fn confidentiality_code(cwe: &Rep) -> Result<Option<Value>, String> {
    let code = cwe.comp(1);
    if code.is_empty() {
        return Ok(None);
    }
    let table = cwe.comp(3).to_ascii_uppercase();
    if !table.is_empty() && table != "HL70177" {
        let mut coding = Map::new();
        if let Some(system) = code_system(&cwe.comp(3)) {
            coding.insert("system".into(), json!(system));
        }
        coding.insert("code".into(), json!(code));
        if let Some(d) = cwe.opt(2) {
            coding.insert("display".into(), json!(d));
        }
        return Ok(Some(Value::Object(coding)));
    }
    let (system, target, display) = match code.as_str() {
        "V" => (V3_CONFIDENTIALITY, "V", "very restricted"),
        "R" => (V3_CONFIDENTIALITY, "R", "restricted"),
        "U" => (V2_0177, "U", "Usual control"),
        "EMP" => (V3_ACT_CODE, "EMP", "employee information sensitivity"),
        "UWM" => (V2_0177, "UWM", "Unwed mother"),
        "VIP" => (V2_0177, "VIP", "Very important person or celebrity"),
        "PSY" => (V3_CONFIDENTIALITY, "PSY", "psychiatry relate"),
        "AID" | "HIV" => (V3_CONFIDENTIALITY, "HIV", "HIV related"),
        "ETH" => (
            V3_ACT_CODE,
            "ETHUD",
            "alcohol use disorder information sensitivity",
        ),
        _ => return Err(code),
    };
    Ok(Some(
        json!({"system": system, "code": target, "display": display}),
    ))
}

/// A document confidentiality status (ID, table 0272: TXA-18) → a security
/// label Coding, through the IG ConceptMap DocumentConfidentialityStatus
/// (V, R, U in v2-0272). `Err(code)` for another code.
pub fn document_confidentiality(code: &str) -> Result<Option<Value>, String> {
    let display = match code {
        "" => return Ok(None),
        "V" => "Very restricted",
        "R" => "Restricted",
        "U" => "Usual control",
        other => return Err(other.to_string()),
    };
    Ok(Some(json!({
        "system": "http://terminology.hl7.org/CodeSystem/v2-0272",
        "code": code,
        "display": display,
    })))
}

/// A single code of an HL7 table as a CodeableConcept.
pub fn table_concept(code: &str, table: &str) -> Option<Value> {
    (!code.is_empty()).then(|| {
        json!({"coding": [{
            "system": format!("http://terminology.hl7.org/CodeSystem/v2-{table}"),
            "code": code
        }]})
    })
}

/// DTM/TS → FHIR date or dateTime: `YYYY[MM[DD[HH[MM[SS[.S]]]]]][±ZZZZ]`.
/// A time without an offset is read as UTC (documented rule; v2 senders
/// rarely give the offset). Returns None for malformed values.
pub fn date_time(ts: &str) -> Option<String> {
    let ts = ts.trim();
    if ts.is_empty() {
        return None;
    }
    let (main, offset) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i..])),
        None => (ts, None),
    };
    if offset.is_some_and(|o| o.len() != 5 || !o[1..].chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let (digits, fraction) = match main.find('.') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() < 4 || digits.len() % 2 != 0 {
        return None;
    }
    let part = |a: usize, b: usize| digits.get(a..b);
    let mut out = digits[..4].to_string();
    if let Some(m) = part(4, 6) {
        out.push('-');
        out.push_str(m);
    }
    if let Some(d) = part(6, 8) {
        out.push('-');
        out.push_str(d);
    }
    if digits.len() <= 8 {
        return Some(out);
    }
    let h = part(8, 10)?;
    let mi = part(10, 12).unwrap_or("00");
    let s = part(12, 14).unwrap_or("00");
    out.push_str(&format!("T{h}:{mi}:{s}"));
    if let Some(f) = fraction.filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit())) {
        out.push('.');
        out.push_str(f);
    }
    match offset {
        Some(o) if o.len() == 5 && o[1..].chars().all(|c| c.is_ascii_digit()) => {
            out.push_str(&format!("{}:{}", &o[..3], &o[3..]));
        }
        _ => out.push('Z'),
    }
    Some(out)
}

/// DTM/TS → FHIR date (the day only).
pub fn date(ts: &str) -> Option<String> {
    date_time(ts)
        .map(|d| d.chars().take(10).collect::<String>())
        .filter(|d| d.len() == 4 || d.len() == 7 || d.len() == 10)
}

/// An NM value as a JSON number, its decimal text kept (`.5` → `0.5`,
/// `+2` → `2`); None when it is not a number.
pub fn number(raw: &str) -> Option<Value> {
    let t = raw.trim().trim_start_matches('+');
    t.parse::<f64>().ok().filter(|v| v.is_finite())?;
    let (sign, digits) = match t.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", t),
    };
    let digits = digits.trim_end_matches('.');
    let digits = if digits.starts_with('.') {
        format!("0{digits}")
    } else {
        digits.to_string()
    };
    serde_json::from_str::<Value>(&format!("{sign}{digits}"))
        .ok()
        .filter(Value::is_number)
}

/// An amount and its units (CWE: code^text^system) → Quantity.
pub fn quantity(raw: &str, units: &Rep) -> Option<Value> {
    let mut q = Map::new();
    q.insert("value".into(), number(raw)?);
    put_units(&mut q, units);
    Some(Value::Object(q))
}

/// Units (CWE: code^text^system) into a Quantity: `unit` is the text (or
/// the code); `system` and `code` are UCUM when the units' system says so
/// (or says nothing and the code is valid UCUM), another coded system when
/// named, else absent.
pub fn put_units(q: &mut Map<String, Value>, units: &Rep) {
    let code = units.comp(1);
    let text = units.opt(2).unwrap_or_else(|| code.clone());
    if !text.is_empty() {
        q.insert("unit".into(), json!(text));
    }
    if code.is_empty() {
        return;
    }
    let system = units.comp(3);
    if system.is_empty() || system.eq_ignore_ascii_case("UCUM") {
        if crate::ucum::canonical(&code).is_some() {
            q.insert("system".into(), json!("http://unitsofmeasure.org"));
            q.insert("code".into(), json!(code));
        }
    } else if let Some(s) = code_system(&system) {
        q.insert("system".into(), json!(s));
        q.insert("code".into(), json!(code));
    }
}

/// The 1-based occurrence of a segment in its message (for ERR-2).
pub fn occurrence(
    message: &crate::hl7v2::message::Message,
    seg: &crate::hl7v2::message::SegmentRef,
) -> usize {
    message
        .all(seg.name())
        .position(|s| std::ptr::eq(s.segment, seg.segment))
        .map_or(1, |i| i + 1)
}

/// An ED (encapsulated data: source^type^subtype^encoding^data) →
/// Attachment; data not already Base64 is encoded.
pub fn attachment_ed(ed: &Rep) -> Value {
    let (t, s) = (
        ed.comp(2).to_ascii_lowercase(),
        ed.comp(3).to_ascii_lowercase(),
    );
    let mime = if t.contains('/') {
        t
    } else if !t.is_empty() && !s.is_empty() {
        let major = match t.as_str() {
            "ap" | "application" => "application",
            "im" | "image" => "image",
            "tx" | "text" => "text",
            "au" | "audio" => "audio",
            "vi" | "video" => "video",
            other => other,
        };
        format!("{major}/{s}")
    } else {
        "application/octet-stream".to_string()
    };
    let data = ed.comp(5);
    let data = if ed.comp(4).eq_ignore_ascii_case("Base64") {
        data
    } else {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(data.as_bytes())
    };
    json!({"contentType": mime, "data": data})
}

/// A stable hash of key parts (FNV-1a, 64 bits) for derived identifiers.
pub fn derived_key(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(date_time("2024").unwrap(), "2024");
        assert_eq!(date_time("20240203").unwrap(), "2024-02-03");
        assert_eq!(date_time("202402031405").unwrap(), "2024-02-03T14:05:00Z");
        assert_eq!(
            date_time("20240203140506.25-0500").unwrap(),
            "2024-02-03T14:05:06.25-05:00"
        );
        assert_eq!(date("20240203140506").unwrap(), "2024-02-03");
        assert!(date_time("2024-02").is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(".5").unwrap(), json!(0.5));
        assert_eq!(number("-.25").unwrap(), json!(-0.25));
        assert_eq!(number("+2").unwrap(), json!(2));
        assert_eq!(number("10.").unwrap(), json!(10));
        assert!(number("lots").is_none());
        assert!(number("").is_none());
    }

    #[test]
    fn confidentiality_maps() {
        use crate::hl7v2::message::Message;
        let orc = |v: &str| {
            let m = Message::parse(
                format!(
                    "MSH|^~\\&|A|B|C|D|2024||ORM^O01|1|P|2.5\rORC|NW{}",
                    "|".repeat(27) + v
                )
                .as_bytes(),
            )
            .unwrap();
            let orc = m.first("ORC").unwrap();
            confidentiality_code(&orc.get(28))
        };
        let code = |r: Result<Option<Value>, String>| {
            let c = r.unwrap().unwrap();
            (
                c["system"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                c["code"].as_str().unwrap().to_string(),
            )
        };
        assert_eq!(code(orc("V")), ("v3-Confidentiality".into(), "V".into()));
        assert_eq!(
            code(orc("AID^AIDS patient^HL70177")),
            ("v3-Confidentiality".into(), "HIV".into())
        );
        assert_eq!(code(orc("ETH")), ("v3-ActCode".into(), "ETHUD".into()));
        assert_eq!(code(orc("U")), ("v2-0177".into(), "U".into()));
        // Another coding system: kept as given.
        let local = orc("N^normal^LOCAL").unwrap().unwrap();
        assert_eq!(local["system"], "urn:charaka:hl7v2:cs:LOCAL");
        assert_eq!(local["code"], "N");
        assert_eq!(local["display"], "normal");
        assert_eq!(orc("ZZZ^x^HL70177"), Err("ZZZ".to_string()));
        assert_eq!(orc(""), Ok(None));
        assert_eq!(document_confidentiality("R").unwrap().unwrap()["code"], "R");
        assert_eq!(document_confidentiality(""), Ok(None));
        assert!(document_confidentiality("X").is_err());
    }

    #[test]
    fn systems() {
        assert_eq!(system_of("", "1.2.3", "ISO").unwrap(), "urn:oid:1.2.3");
        assert_eq!(
            system_of("HOSP A", "", "").unwrap(),
            "urn:charaka:hl7v2:aa:HOSP%20A"
        );
        assert_eq!(code_system("LN").unwrap(), "http://loinc.org");
        assert_eq!(
            code_system("HL70078").unwrap(),
            "http://terminology.hl7.org/CodeSystem/v2-0078"
        );
    }
}
