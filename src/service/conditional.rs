//! Criteria of conditional create, update, patch and delete. Until full search
//! lands these accept `_id` and `identifier` only, and say so for anything else.

use crate::error::{FhirError, FhirResult};
use crate::fhir::schema::schema;
use crate::store::{Criteria, TokenMatch};

/// Parameters that shape the response, not the match; ignored in criteria.
const RESULT_PARAMETERS: &[&str] = &["_format", "_pretty", "_summary", "_elements"];

/// Splits a parameter value on unescaped `sep`, removing FHIR escapes (`\,`, `\|`, `\$`, `\\`).
fn split_escaped(value: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) if next == sep => parts.last_mut().unwrap().push(next),
                Some(next) => {
                    parts.last_mut().unwrap().push('\\');
                    parts.last_mut().unwrap().push(next);
                }
                None => parts.last_mut().unwrap().push('\\'),
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

fn token(value: &str) -> FhirResult<TokenMatch> {
    let parts = split_escaped(value, '|');
    let unescape = |s: &str| {
        s.replace("\\\\", "\\")
            .replace("\\$", "$")
            .replace("\\,", ",")
    };
    Ok(match parts.as_slice() {
        [code] if !code.is_empty() => TokenMatch::Code(unescape(code)),
        [system, code] if system.is_empty() && !code.is_empty() => {
            TokenMatch::NoSystem(unescape(code))
        }
        [system, code] if code.is_empty() && !system.is_empty() => {
            TokenMatch::System(unescape(system))
        }
        [system, code] if !system.is_empty() => {
            TokenMatch::SystemCode(unescape(system), unescape(code))
        }
        _ => {
            return Err(FhirError::invalid(format!(
                "`{value}` is not a token (code, system|code, |code or system|)"
            )))
        }
    })
}

/// Parses criteria such as `identifier=http://hospital/mrn|123&_id=a,b`
/// (a leading `Type?` or `?` is allowed).
pub fn parse(rtype: &str, query: &str) -> FhirResult<Criteria> {
    // The criteria may come as `?query`, `Type?query` or `[base]/Type?query`.
    let query = match query.split_once('?') {
        Some((prefix, rest))
            if prefix.is_empty()
                || prefix == rtype
                || prefix.strip_suffix(rtype).is_some_and(|b| b.ends_with('/')) =>
        {
            rest
        }
        Some((prefix, _)) => {
            return Err(FhirError::invalid(format!(
                "the criteria name `{prefix}`, but the request is about {rtype}"
            )))
        }
        None => query,
    };
    let mut criteria = Criteria::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if RESULT_PARAMETERS.contains(&name.as_ref()) {
            continue;
        }
        let values: Vec<String> = split_escaped(&value, ',');
        if values.iter().any(String::is_empty) {
            return Err(FhirError::invalid(format!(
                "parameter `{name}` has an empty value"
            )));
        }
        match name.as_ref() {
            "_id" => criteria.ids.push(values),
            "identifier" => {
                let has_identifier = schema()
                    .type_def(rtype)
                    .and_then(|d| d.property("identifier"))
                    .is_some();
                if !has_identifier {
                    return Err(FhirError::not_supported(format!(
                        "{rtype} has no `identifier` search parameter"
                    )));
                }
                let alternatives = values.iter().map(|v| token(v)).collect::<FhirResult<_>>()?;
                criteria.tokens.push(("identifier", alternatives));
            }
            other => {
                return Err(FhirError::not_supported(format!(
                    "conditional criteria support only `_id` and `identifier` so far; `{other}` is not supported"
                )))
            }
        }
    }
    if criteria.ids.is_empty() && criteria.tokens.is_empty() {
        return Err(FhirError::invalid(
            "a conditional interaction needs search criteria (e.g. identifier=system|value)",
        ));
    }
    Ok(criteria)
}

/// A key naming the criteria, independent of parameter order, used to
/// serialise concurrent conditional writes on the same criteria.
pub fn lock_key(tenant: i64, rtype: &str, criteria: &Criteria) -> String {
    let mut parts: Vec<String> = criteria
        .ids
        .iter()
        .map(|ids| format!("_id={}", ids.join(",")))
        .chain(
            criteria
                .tokens
                .iter()
                .map(|(p, alts)| format!("{p}={alts:?}")),
        )
        .collect();
    parts.sort();
    format!("{tenant}/{rtype}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_tokens() {
        let c = parse(
            "Patient",
            "Patient?identifier=http://x|1,|2,3,urn:s|&_id=a,b",
        )
        .unwrap();
        assert_eq!(c.ids, vec![vec!["a".to_string(), "b".to_string()]]);
        let (param, alts) = &c.tokens[0];
        assert_eq!(*param, "identifier");
        assert_eq!(
            alts,
            &vec![
                TokenMatch::SystemCode("http://x".into(), "1".into()),
                TokenMatch::NoSystem("2".into()),
                TokenMatch::Code("3".into()),
                TokenMatch::System("urn:s".into()),
            ]
        );
    }

    #[test]
    fn handles_escapes_and_rejects_the_unsupported() {
        let c = parse("Patient", "identifier=a\\,b").unwrap();
        assert_eq!(c.tokens[0].1, vec![TokenMatch::Code("a,b".into())]);
        assert_eq!(parse("Patient", "name=x").unwrap_err().status, 400);
        assert_eq!(parse("Patient", "").unwrap_err().status, 400);
        assert_eq!(
            parse("Patient", "Observation?_id=1").unwrap_err().status,
            400
        );
        assert_eq!(parse("Bundle", "_id=1").unwrap().ids.len(), 1);
        let full = parse("Patient", "http://example.org/fhir/Patient?identifier=x|1").unwrap();
        assert_eq!(
            full.tokens[0].1,
            vec![TokenMatch::SystemCode("x".into(), "1".into())]
        );
        assert_eq!(
            parse("Patient", "http://example.org/fhir/XPatient?_id=1")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn lock_keys_ignore_parameter_order() {
        let a = parse("Patient", "_id=1&identifier=x|1").unwrap();
        let b = parse("Patient", "identifier=x|1&_id=1").unwrap();
        assert_eq!(lock_key(1, "Patient", &a), lock_key(1, "Patient", &b));
    }
}
