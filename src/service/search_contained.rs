//! `_contained` and `_containedType` (http://hl7.org/fhir/R4/search.html,
//! "Contained Resources"): what a search matches (`false`: resources that
//! are not contained, the default; `true`: contained resources only;
//! `both`: either) and what it returns for a contained match (`container`,
//! the default, or `contained`: the contained resource itself, with the
//! fullUrl `[base]/[ContainerType]/[id]#[local id]`).

use bytes::Bytes;
use serde_json::Value;

use crate::error::{FhirError, FhirResult};

/// `_contained`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matches {
    /// `false`: resources that are not contained.
    Plain,
    /// `true`: contained resources only.
    Contained,
    /// `both`.
    Both,
}

/// What a search asks of contained resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainedMode {
    pub matches: Matches,
    /// `_containedType=contained`: return the contained resource itself.
    pub return_contained: bool,
}

impl ContainedMode {
    /// The mode of a search's parameters (the last value of each counts);
    /// a value outside the parameter's codes is a 400 naming it.
    pub fn of(params: &[(String, String)]) -> FhirResult<ContainedMode> {
        let mut mode = ContainedMode {
            matches: Matches::Plain,
            return_contained: false,
        };
        for (name, value) in params {
            match name.as_str() {
                "_contained" => {
                    mode.matches = match value.as_str() {
                        "false" => Matches::Plain,
                        "true" => Matches::Contained,
                        "both" => Matches::Both,
                        _ => return Err(bad(name, value, &["false", "true", "both"])),
                    }
                }
                "_containedType" => {
                    mode.return_contained = match value.as_str() {
                        "container" => false,
                        "contained" => true,
                        _ => return Err(bad(name, value, &["container", "contained"])),
                    }
                }
                n if n.starts_with("_contained:") || n.starts_with("_containedType:") => {
                    return Err(FhirError::invalid(format!(
                        "search parameter `{n}`: takes no modifier"
                    )))
                }
                _ => {}
            }
        }
        Ok(mode)
    }

    /// Whether contained resources are searched at all.
    pub fn searches_contained(self) -> bool {
        self.matches != Matches::Plain
    }
}

fn bad(name: &str, value: &str, codes: &[&str]) -> FhirError {
    FhirError::invalid(format!(
        "{name} must be {}, not `{value}`",
        codes.join(", ")
    ))
}

/// The contained resource at `position` of a container's stored JSON: its
/// local id and its JSON.
pub fn cut_out(container: &[u8], position: i64) -> FhirResult<(String, Bytes)> {
    let value: Value = serde_json::from_slice(container)
        .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
    let item = value
        .get("contained")
        .and_then(Value::as_array)
        .and_then(|c| c.get(usize::try_from(position).ok()?))
        .ok_or_else(|| {
            FhirError::internal("an index row names a contained resource that is not there")
        })?;
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((id, serde_json::to_vec(item).expect("serialises").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn modes() {
        let m = ContainedMode::of(&p(&[("code", "x")])).unwrap();
        assert_eq!(m.matches, Matches::Plain);
        assert!(!m.return_contained);
        let m = ContainedMode::of(&p(&[
            ("_contained", "both"),
            ("_containedType", "contained"),
        ]))
        .unwrap();
        assert_eq!(m.matches, Matches::Both);
        assert!(m.return_contained);
        let e = ContainedMode::of(&p(&[("_contained", "yes")])).unwrap_err();
        assert!(format!("{e:?}").contains("_contained"));
        assert!(ContainedMode::of(&p(&[("_containedType", "resource")])).is_err());
    }

    #[test]
    fn cuts_out_by_position() {
        let body = br#"{"resourceType":"Observation","id":"o","contained":[{"resourceType":"Patient","id":"p1"},{"resourceType":"Patient","id":"p2"}]}"#;
        let (id, json) = cut_out(body, 1).unwrap();
        assert_eq!(id, "p2");
        assert_eq!(&json[..], br#"{"resourceType":"Patient","id":"p2"}"#);
        assert!(cut_out(body, 2).is_err());
    }
}
