//! Conformance of values to the profiles an element names, each checked in
//! a nested walk of the other profile:
//! - `type.profile`: a value in place (an extension, a datatype, a
//!   contained or bundled resource) conforms to one of its type's
//!   profiles; the issues of that walk are the value's own;
//! - `targetProfile`: the resource a Reference points to (contained,
//!   a Bundle entry, or stored on the server) conforms to one of the
//!   targets; its issues are summed up at the reference;
//! - `profile` discriminators use the same check to sort items into slices.
//!
//! A profile the server does not know, or a reference it cannot resolve,
//! leaves the value unchecked: a warning, not an error.

use serde_json::Value;

use super::{
    core_type, plain_url, same_type, target_type, Elem, Item, Outcome, Profile, Walker, MAX_DEPTH,
};
use crate::fhir::outcome::{Issue, IssueType, Severity};

/// Whether a value conforms to one of the profiles an element names.
pub(super) enum Conformance {
    /// It conforms to one: that walk's outcome (warnings, bindings left to
    /// the terminology service); None for a core type named as a profile.
    Conforms(Option<Outcome>),
    /// It conforms to none: each profile with the walk's outcome.
    Fails(Vec<(String, Outcome)>),
    /// It conforms to none the server knows; some cannot be checked (why).
    Unknown(String),
}

/// Why a Reference was not resolved.
pub(super) fn unresolved(reference: &Value) -> String {
    let r = reference
        .get("reference")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!(
        "the reference `{r}` could not be resolved (to a contained resource, a Bundle entry, or a stored resource this caller may read, at most 32 per validation)"
    )
}

fn has_errors(out: &Outcome) -> bool {
    out.issues
        .iter()
        .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
}

/// The first error of each profile's walk, for a message.
fn first_errors(fails: &[(String, Outcome)]) -> String {
    fails
        .iter()
        .map(|(url, out)| {
            let first = out
                .issues
                .iter()
                .find(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
                .map(|i| i.diagnostics.as_str())
                .unwrap_or("");
            format!("{url}: {first}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn joined(urls: &[&String]) -> String {
    urls.iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'p: 'v, 'v> Walker<'p, 'v> {
    fn warning(&mut self, code: IssueType, loc: &str, msg: String) {
        self.out
            .issues
            .push(Issue::new(Severity::Warning, code, msg).at(loc.to_string()));
    }

    /// Issues and binding checks of a nested walk, as this walk's.
    fn absorb(&mut self, out: Outcome) {
        self.out.issues.extend(out.issues);
        self.out.bindings.extend(out.bindings);
    }

    /// A profile by canonical URL, with or without its `|version`.
    fn find_profile(&self, url: &str) -> Option<&'p Profile> {
        let profiles = self.lookup.profiles;
        profiles(url).or_else(|| profiles(plain_url(url)))
    }

    /// The resource type a target profile stands for: a core type, or the
    /// type of a profile the server knows.
    fn target_type_of(&self, url: &str) -> Option<&'p str> {
        target_type(url).or_else(|| self.find_profile(url).map(|p| p.resource_type.as_str()))
    }

    /// Walks a value of type `ty` against profile `p`, its issues placed
    /// under `loc`.
    fn nested(
        &self,
        p: &'p Profile,
        value: &'v Value,
        ty: &str,
        loc: &str,
    ) -> Result<Outcome, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("profiles nest more than {MAX_DEPTH} deep"));
        }
        if !same_type(&p.resource_type, ty) {
            let mut out = Outcome::default();
            out.issues.push(
                Issue::new(
                    Severity::Error,
                    IssueType::Structure,
                    format!(
                        "{loc} is a {ty}; the profile {} is for {}",
                        p.url, p.resource_type
                    ),
                )
                .at(loc.to_string()),
            );
            return Ok(out);
        }
        let resource = if value.get("resourceType").is_some() {
            value
        } else {
            self.resource
        };
        let mut w = Walker {
            profile: p,
            resource,
            top: self.top,
            lookup: self.lookup,
            depth: self.depth + 1,
            out: Outcome::default(),
        };
        let root = Item {
            value,
            loc: loc.to_string(),
            ty: ty.to_string(),
        };
        w.items(0, std::slice::from_ref(&root));
        Ok(w.out)
    }

    /// Whether a value of type `ty` conforms to one of the profiles (or
    /// core types) `urls` name.
    pub(super) fn conformance(
        &self,
        urls: &[&String],
        value: &'v Value,
        ty: &str,
        loc: &str,
    ) -> Conformance {
        let mut fails = Vec::new();
        let mut unknown = Vec::new();
        for &url in urls {
            if let Some(p) = self.find_profile(url) {
                match self.nested(p, value, ty, loc) {
                    Ok(out) if !has_errors(&out) => return Conformance::Conforms(Some(out)),
                    Ok(out) => fails.push((url.clone(), out)),
                    Err(why) => unknown.push(why),
                }
            } else if let Some(core) = core_type(plain_url(url)) {
                if same_type(core, ty) || core == "Resource" {
                    return Conformance::Conforms(None);
                }
            } else {
                unknown.push(format!(
                    "the profile {url} is not known to this server or has no snapshot"
                ));
            }
        }
        if unknown.is_empty() {
            Conformance::Fails(fails)
        } else {
            Conformance::Unknown(unknown.join("; "))
        }
    }

    /// `type.profile`: the value conforms to one of the profiles its type
    /// names. With one profile, the issues of its walk are the value's;
    /// with several, one error names the first of each.
    pub(super) fn value_profiles(&mut self, el: &Elem, item: &Item<'v>) {
        let ty = item
            .value
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or(item.ty.as_str())
            .to_string();
        let urls: Vec<&String> = el
            .types
            .iter()
            .filter(|t| el.types.len() == 1 || same_type(&t.code, &ty))
            .flat_map(|t| &t.profiles)
            .collect();
        if urls.is_empty() {
            return;
        }
        match self.conformance(&urls, item.value, &ty, &item.loc) {
            Conformance::Conforms(Some(out)) => self.absorb(out),
            Conformance::Conforms(None) => {}
            // Only core types named, of another type: the type checks' business.
            Conformance::Fails(fails) if fails.is_empty() => {}
            Conformance::Fails(mut fails) if fails.len() == 1 => {
                let (_, out) = fails.remove(0);
                self.absorb(out);
            }
            Conformance::Fails(fails) => self.error(
                IssueType::Structure,
                &item.loc,
                format!(
                    "{} conforms to none of the profiles {} ({})",
                    item.loc,
                    joined(&urls),
                    first_errors(&fails)
                ),
            ),
            Conformance::Unknown(why) => self.warning(
                IssueType::NotSupported,
                &item.loc,
                format!(
                    "{} was not checked against the profile {}: {why}",
                    item.loc,
                    joined(&urls)
                ),
            ),
        }
    }

    /// A Reference's targets: the type of the resource referred to (known
    /// from the reference itself), and its conformance to the targets that
    /// are profiles (once resolved).
    pub(super) fn reference_target(&mut self, el: &Elem, item: &Item<'v>) {
        let targets: Vec<&String> = el
            .types
            .iter()
            .filter(|t| t.code == "Reference")
            .flat_map(|t| &t.targets)
            .collect();
        if targets.is_empty() {
            return;
        }
        let Some(reference) = item.value.get("reference").and_then(Value::as_str) else {
            return;
        };
        self.target_types(&targets, item, reference);
        self.target_profiles(&targets, item);
    }

    /// The type a relative or absolute reference names is one the targets
    /// allow; a target whose type is not known leaves it unchecked.
    fn target_types(&mut self, targets: &[&String], item: &Item<'v>, reference: &str) {
        let mut types: Vec<&str> = Vec::new();
        for t in targets {
            match self.target_type_of(t) {
                Some(ty) => types.push(ty),
                None => return,
            }
        }
        if types.contains(&"Resource")
            || reference.starts_with('#')
            || reference.starts_with("urn:")
        {
            return;
        }
        let parts: Vec<&str> = reference.split('/').collect();
        let rtype = match parts.iter().position(|p| *p == "_history") {
            Some(h) if h >= 2 => parts[h - 2],
            _ if parts.len() >= 2 => parts[parts.len() - 2],
            _ => return,
        };
        if !types.contains(&rtype) {
            self.error(
                IssueType::Structure,
                &format!("{}.reference", item.loc),
                format!(
                    "{} refers to a resource of type {rtype}; the profile allows {}",
                    item.loc,
                    types.join(", ")
                ),
            );
        }
    }

    /// `targetProfile`s that are profiles, not core resource types: the
    /// resource referred to conforms to one of the targets of its type.
    fn target_profiles(&mut self, targets: &[&String], item: &Item<'v>) {
        if targets.iter().all(|t| core_type(plain_url(t)).is_some()) {
            return;
        }
        let Some(target) = self.resolve(item.value) else {
            let why = unresolved(item.value);
            self.warning(
                IssueType::NotFound,
                &item.loc,
                format!(
                    "{}: {why}, so its conformance to {} was not checked",
                    item.loc,
                    joined(targets)
                ),
            );
            return;
        };
        let ty = target
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A target of another type is the type check's business.
        let candidates: Vec<&String> = targets
            .iter()
            .copied()
            .filter(|t| {
                self.target_type_of(t)
                    .is_none_or(|tt| tt == ty || tt == "Resource")
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let reference = item.value["reference"].as_str().unwrap_or_default();
        match self.conformance(&candidates, target, ty, ty) {
            Conformance::Conforms(_) => {}
            Conformance::Fails(fails) => self.error(
                IssueType::Invalid,
                &item.loc,
                format!(
                    "{} refers to {reference}, which conforms to none of {} ({})",
                    item.loc,
                    joined(&candidates),
                    first_errors(&fails)
                ),
            ),
            Conformance::Unknown(why) => self.warning(
                IssueType::NotSupported,
                &item.loc,
                format!(
                    "{}: the conformance of {reference} to {} was not checked: {why}",
                    item.loc,
                    joined(&candidates)
                ),
            ),
        }
    }

    /// The values the first profile a slice's type names (and the server
    /// knows) fixes at a discriminator path: an extension slice sorted by
    /// `url` without a `url` element of its own, by the extension's
    /// definition.
    pub(super) fn expected_in_profiles(&self, s: usize, segs: &[&str]) -> Vec<(Value, bool)> {
        if segs.is_empty() {
            return Vec::new();
        }
        let urls = self.elem(s).types.iter().flat_map(|t| &t.profiles);
        for p in urls.filter_map(|url| self.find_profile(url)) {
            let path = format!("{}.{}", p.resource_type, segs.join("."));
            let out: Vec<(Value, bool)> = p
                .elements
                .iter()
                .filter(|e| e.id == path)
                .flat_map(|e| [(&e.fixed, true), (&e.pattern, false)])
                .filter_map(|(v, exact)| Some((v.clone()?, exact)))
                .collect();
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }

    /// The resource a Reference points to: contained in the resource
    /// (`#id`), an entry of the Bundle validated (by `fullUrl`, or
    /// `Type/id` of the entry's resource), or stored on the server.
    pub(super) fn resolve(&self, reference: &'v Value) -> Option<&'v Value> {
        let r = reference.get("reference")?.as_str()?;
        let list = |v: &'v Value, k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.as_slice())
                .unwrap_or_default()
        };
        if let Some(id) = r.strip_prefix('#') {
            return list(self.resource, "contained")
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(id));
        }
        let in_bundle = (self.top.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
            .then(|| {
                list(self.top, "entry").iter().find_map(|e| {
                    let res = e.get("resource")?;
                    let full = e.get("fullUrl").and_then(Value::as_str).unwrap_or("");
                    let typed = match (
                        res.get("resourceType").and_then(Value::as_str),
                        res.get("id").and_then(Value::as_str),
                    ) {
                        (Some(t), Some(id)) => format!("{t}/{id}"),
                        _ => String::new(),
                    };
                    let hit = full == r
                        || (!typed.is_empty() && typed == r)
                        || (r.contains('/') && full.ends_with(&format!("/{r}")));
                    hit.then_some(res)
                })
            })
            .flatten();
        in_bundle.or_else(|| self.lookup.resources.and_then(|stored| stored(r)))
    }
}
