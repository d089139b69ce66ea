//! Criteria of conditional create, update, patch and delete: any search
//! criteria (`identifier=...&birthdate=...`), parsed by the search parser.
//! Result parameters (`_count`, `_sort`, `_format`...) are ignored.

use crate::error::{FhirError, FhirResult};
use crate::search::parse::{parse_filter, RESULT_PARAMETERS};
use crate::search::registry::{registry, Registry};
use crate::store::Filter;

/// Parsed conditional criteria.
#[derive(Debug, Clone)]
pub struct Criteria {
    pub filters: Vec<Filter>,
    /// The criteria in a canonical order, to serialise concurrent
    /// conditional writes on the same criteria.
    canonical: String,
}

impl Criteria {
    /// A key naming the criteria, independent of parameter order.
    pub fn lock_key(&self, tenant: i64, rtype: &str) -> String {
        format!("{tenant}/{rtype}?{}", self.canonical)
    }
}

/// Parses criteria such as `identifier=http://hospital/mrn|123&_id=a,b`
/// (a leading `?`, `Type?` or `[base]/Type?` is allowed).
pub fn parse(base_url: &str, rtype: &str, query: &str) -> FhirResult<Criteria> {
    parse_with(registry(), base_url, rtype, query)
}

/// `parse` with the search parameters of `reg` (the built-in and custom
/// ones of the server: `Fhir::criteria`).
pub fn parse_with(
    reg: &Registry,
    base_url: &str,
    rtype: &str,
    query: &str,
) -> FhirResult<Criteria> {
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
    let mut filters = Vec::new();
    let mut parts = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if RESULT_PARAMETERS.contains(&name.as_ref()) {
            continue;
        }
        filters.push(parse_filter(reg, rtype, &name, &value, base_url, 0)?);
        // Encoded, so that a value holding `&` or `=` cannot make the key
        // of other criteria (lookups are shared by key, `prefetch_matches`).
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        parts.push(format!("{}={}", encode(&name), encode(&value)));
    }
    if filters.is_empty() {
        return Err(FhirError::invalid(
            "a conditional interaction needs search criteria (e.g. identifier=system|value)",
        ));
    }
    if let Some(set) = crate::search::codes::code_sets_mut(&mut filters).first() {
        return Err(FhirError::invalid(format!(
            "`{}` in conditional criteria: terminology-backed modifiers (:in, :not-in, :below, :above) are for searches only",
            set.param
        )));
    }
    parts.sort();
    Ok(Criteria {
        filters,
        canonical: parts.join("&"),
    })
}

impl super::Fhir {
    /// Conditional criteria on `rtype`, with the server's custom
    /// parameters.
    pub fn criteria(&self, rtype: &str, query: &str) -> FhirResult<Criteria> {
        parse_with(&self.search_registry(), &self.base_url, rtype, query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://example.org/fhir";

    #[test]
    fn refuses_terminology_modifiers() {
        let e = parse(
            BASE,
            "Condition",
            "code:below=http://hl7.org/fhir/sid/icd-10-cm|E11",
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.to_string().contains("code:below"), "{e}");
    }

    #[test]
    fn accepts_any_search_criteria() {
        let c = parse(
            BASE,
            "Patient",
            "Patient?identifier=http://x|1&name=zoe&_id=a,b",
        )
        .unwrap();
        assert_eq!(c.filters.len(), 3);
        assert!(parse(
            BASE,
            "Patient",
            "http://example.org/fhir/Patient?identifier=x|1"
        )
        .is_ok());
        assert!(parse(BASE, "Bundle", "_id=1").is_ok());
    }

    #[test]
    fn rejects_what_is_not_criteria() {
        assert_eq!(
            parse(BASE, "Patient", "nonsense=x").unwrap_err().status,
            400
        );
        assert_eq!(parse(BASE, "Patient", "").unwrap_err().status, 400);
        assert_eq!(parse(BASE, "Patient", "_count=1").unwrap_err().status, 400);
        assert_eq!(
            parse(BASE, "Patient", "Observation?_id=1")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(BASE, "Patient", "http://example.org/fhir/XPatient?_id=1")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn lock_keys_ignore_parameter_order() {
        let a = parse(BASE, "Patient", "_id=1&identifier=x|1").unwrap();
        let b = parse(BASE, "Patient", "identifier=x|1&_id=1").unwrap();
        assert_eq!(a.lock_key(1, "Patient"), b.lock_key(1, "Patient"));
    }

    #[test]
    fn lock_keys_tell_an_escaped_ampersand_from_two_parameters() {
        let one = parse(BASE, "Patient", "family=Iyer%26identifier%3Dx%7C1").unwrap();
        let two = parse(BASE, "Patient", "family=Iyer&identifier=x|1").unwrap();
        assert_eq!(one.filters.len(), 1);
        assert_eq!(two.filters.len(), 2);
        assert_ne!(one.lock_key(1, "Patient"), two.lock_key(1, "Patient"));
    }
}
