//! Checks of FHIR primitive values in JSON: the JSON kind and the lexical
//! form of each of the 20 R4 primitive types.

use serde_json::Value;

use super::datetime;

/// Whether a FHIR id is well formed: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn is_code(s: &str) -> bool {
    // [^\s]+( [^\s]+)*
    !s.is_empty()
        && !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && !s.contains("  ")
        && !s.chars().any(|c| c.is_whitespace() && c != ' ')
}

fn is_base64(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    compact.len() % 4 == 0
        && compact
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut parts = rest.split('.');
    matches!(parts.next(), Some("0" | "1" | "2"))
        && rest.contains('.')
        && parts.all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        })
}

fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    rest.len() == 36
        && rest.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit() && !b.is_ascii_uppercase(),
        })
}

/// Checks a primitive value; returns a description of the problem.
pub fn check(ty: &str, value: &Value) -> Result<(), String> {
    match ty {
        "boolean" => match value {
            Value::Bool(_) => Ok(()),
            _ => Err("must be a JSON boolean (true or false)".into()),
        },
        "integer" | "positiveInt" | "unsignedInt" => {
            let Some(n) = value.as_i64().filter(|_| value.is_number()) else {
                return Err(format!("must be a JSON number without a fraction ({ty})"));
            };
            let (min, max) = match ty {
                "positiveInt" => (1, i64::from(i32::MAX)),
                "unsignedInt" => (0, i64::from(i32::MAX)),
                _ => (i64::from(i32::MIN), i64::from(i32::MAX)),
            };
            if n < min || n > max {
                return Err(format!("{n} is out of range for {ty}"));
            }
            Ok(())
        }
        "decimal" => match value {
            Value::Number(_) => Ok(()),
            _ => Err("must be a JSON number (decimal)".into()),
        },
        _ => {
            let Value::String(s) = value else {
                return Err(format!("must be a JSON string ({ty})"));
            };
            if s.is_empty() {
                return Err("must not be empty".into());
            }
            if s.chars()
                .any(|c| c < ' ' && !matches!(c, '\t' | '\r' | '\n'))
            {
                return Err(
                    "must not contain control characters (below U+0020 other than tab, CR, LF)"
                        .into(),
                );
            }
            let ok = match ty {
                "string" | "markdown" | "xhtml" => true,
                "code" => is_code(s),
                "id" => is_id(s),
                "uri" | "url" | "canonical" => !s.chars().any(char::is_whitespace),
                "oid" => is_oid(s),
                "uuid" => is_uuid(s),
                "base64Binary" => is_base64(s),
                "date" => datetime::is_date(s),
                "dateTime" => datetime::is_date_time(s),
                "instant" => datetime::is_instant(s),
                "time" => datetime::is_time(s),
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err(format!("`{}` is not a valid {ty}", shorten(s)))
            }
        }
    }
}

/// Quotes at most 40 characters of a value in a message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_kinds_and_forms() {
        assert!(check("boolean", &json!(true)).is_ok());
        assert!(check("boolean", &json!("true")).is_err());
        assert!(check("integer", &json!(5)).is_ok());
        assert!(check("integer", &json!(5.5)).is_err());
        assert!(check("positiveInt", &json!(0)).is_err());
        assert!(check("decimal", &json!(1.50)).is_ok());
        assert!(check("string", &json!("")).is_err());
        assert!(check("string", &json!("a\u{1}b")).is_err());
        assert!(check("string", &json!("a\tb\nc")).is_ok());
        assert!(check("code", &json!("a b")).is_ok());
        assert!(check("code", &json!(" a")).is_err());
        assert!(check("id", &json!("a.b-C9")).is_ok());
        assert!(check("id", &json!("a b")).is_err());
        assert!(check("uri", &json!("http://x y")).is_err());
        assert!(check("oid", &json!("urn:oid:1.2.3")).is_ok());
        assert!(check("oid", &json!("urn:oid:1.02")).is_err());
        assert!(check(
            "uuid",
            &json!("urn:uuid:c757873d-ec9a-4326-a141-556f43239520")
        )
        .is_ok());
        assert!(check("base64Binary", &json!("aGVsbG8=")).is_ok());
        assert!(check("base64Binary", &json!("a$b")).is_err());
        assert!(check("date", &json!("2020-13-45")).is_err());
        assert!(check("instant", &json!("2020-01-01T00:00:00Z")).is_ok());
    }
}
