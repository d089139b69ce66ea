//! SMART scopes, v1 and v2, parsed into one model.
//!
//! - v1: `patient/Observation.read`, `user/*.write`, `system/*.*`
//! - v2: `patient/Observation.rs`, `user/Encounter.cruds`, with search
//!   constraints `patient/Observation.rs?category=laboratory`
//!
//! `read` means read + search (`rs`), `write` means create + update + delete
//! (`cud`), `*` all five. Launch and identity scopes (`openid`, `fhirUser`,
//! `launch`, `launch/patient`, `launch/encounter`, `offline_access`,
//! `online_access`) are kept as flags. Unknown scopes are kept verbatim and
//! grant nothing.

use std::fmt;

/// Whose data a resource scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// The token's patient only (the patient compartment).
    Patient,
    /// Whatever the signed-in user may see.
    User,
    /// A backend system, no user.
    System,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }
}

/// One of the five SMART v2 permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Perm {
    pub const ALL: [Perm; 5] = [
        Perm::Create,
        Perm::Read,
        Perm::Update,
        Perm::Delete,
        Perm::Search,
    ];

    fn bit(self) -> u8 {
        match self {
            Perm::Create => 1,
            Perm::Read => 2,
            Perm::Update => 4,
            Perm::Delete => 8,
            Perm::Search => 16,
        }
    }

    fn letter(self) -> char {
        match self {
            Perm::Create => 'c',
            Perm::Read => 'r',
            Perm::Update => 'u',
            Perm::Delete => 'd',
            Perm::Search => 's',
        }
    }

    /// In plain words, for consent pages and error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Perm::Create => "create",
            Perm::Read => "read",
            Perm::Update => "update",
            Perm::Delete => "delete",
            Perm::Search => "search",
        }
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u8);

impl Perms {
    pub const ALL: Perms = Perms(31);

    pub fn has(self, p: Perm) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn with(self, p: Perm) -> Perms {
        Perms(self.0 | p.bit())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every permission of `self` is in `other`.
    pub fn within(self, other: Perms) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn intersect(self, other: Perms) -> Perms {
        Perms(self.0 & other.0)
    }

    /// The v2 letters, in canonical order (`cruds`).
    pub fn letters(self) -> String {
        Perm::ALL
            .iter()
            .filter(|p| self.has(**p))
            .map(|p| p.letter())
            .collect()
    }
}

/// A resource scope: context, type (None for `*`), permissions and v2
/// search constraints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: Context,
    pub rtype: Option<String>,
    pub perms: Perms,
    /// `?name=value&...` of a v2 scope, in order.
    pub constraints: Vec<(String, String)>,
}

impl ResourceScope {
    pub fn covers_type(&self, rtype: &str) -> bool {
        self.rtype.as_deref().is_none_or(|t| t == rtype)
    }

    /// Whether `self` grants nothing beyond `other`.
    pub fn within(&self, other: &ResourceScope) -> bool {
        self.context == other.context
            && (other.rtype.is_none() || other.rtype == self.rtype)
            && self.perms.within(other.perms)
            && other
                .constraints
                .iter()
                .all(|c| self.constraints.contains(c))
    }

    /// In plain words: "read and search your Observations (category = laboratory)".
    pub fn describe(&self) -> String {
        let perms: Vec<&str> = Perm::ALL
            .iter()
            .filter(|p| self.perms.has(**p))
            .map(|p| p.describe())
            .collect();
        let what = match &self.rtype {
            Some(t) => format!("{t} resources"),
            None => "all kinds of data".to_string(),
        };
        let whose = match self.context {
            Context::Patient => "of the selected patient",
            Context::User => "you can access",
            Context::System => "on the whole server, without a user",
        };
        let mut text = format!("{} {what} {whose}", join_words(&perms));
        if !self.constraints.is_empty() {
            let c: Vec<String> = self
                .constraints
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            text.push_str(&format!(" (only where {})", c.join(" and ")));
        }
        text
    }
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => capitalise(one),
        [init @ .., last] => format!("{} and {last}", capitalise(&init.join(", "))),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl fmt::Display for ResourceScope {
    /// The v2 form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}.{}",
            self.context.as_str(),
            self.rtype.as_deref().unwrap_or("*"),
            self.perms.letters()
        )?;
        for (i, (k, v)) in self.constraints.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// A parsed `scope` string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// Every scope as given, deduplicated, in order.
    pub raw: Vec<String>,
    pub resources: Vec<ResourceScope>,
    pub openid: bool,
    pub fhir_user: bool,
    /// `launch` (EHR launch).
    pub launch: bool,
    pub launch_patient: bool,
    pub launch_encounter: bool,
    pub offline_access: bool,
    pub online_access: bool,
}

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError(pub String);

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Scopes {
    /// Parses a space-separated scope string. Malformed resource scopes are
    /// errors (a client asking for `patient/Observation.rad` made a mistake
    /// worth telling it about); scopes of other shapes are kept and ignored.
    pub fn parse(s: &str) -> Result<Scopes, ScopeError> {
        let mut scopes = Scopes::default();
        for word in s.split_ascii_whitespace() {
            if scopes.raw.iter().any(|r| r == word) {
                continue;
            }
            scopes.raw.push(word.to_string());
            match word {
                "openid" => scopes.openid = true,
                "fhirUser" => scopes.fhir_user = true,
                "launch" => scopes.launch = true,
                "launch/patient" => scopes.launch_patient = true,
                "launch/encounter" => scopes.launch_encounter = true,
                "offline_access" => scopes.offline_access = true,
                "online_access" => scopes.online_access = true,
                w => {
                    if let Some(r) = parse_resource_scope(w)? {
                        scopes.resources.push(r);
                    }
                }
            }
        }
        Ok(scopes)
    }

    /// The resource scopes granting `perm` on `rtype`.
    pub fn grants<'a>(
        &'a self,
        perm: Perm,
        rtype: &'a str,
    ) -> impl Iterator<Item = &'a ResourceScope> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.perms.has(perm) && r.covers_type(rtype))
    }

    pub fn has_context(&self, context: Context) -> bool {
        self.resources.iter().any(|r| r.context == context)
    }

    /// The scopes of `self` that `allowed` permits: resource scopes are cut
    /// to the permissions an allowed scope of the same context and type
    /// grants; other scopes are kept when listed in `allowed`.
    pub fn restricted_to(&self, allowed: &Scopes) -> Scopes {
        let mut out = Scopes::default();
        for word in &self.raw {
            let Ok(Some(r)) = parse_resource_scope(word) else {
                if allowed.raw.iter().any(|a| a == word) {
                    out.raw.push(word.clone());
                }
                continue;
            };
            let mut perms = Perms::default();
            for a in &allowed.resources {
                let same_target = a.context == r.context
                    && (a.rtype.is_none() || a.rtype == r.rtype)
                    && a.constraints.iter().all(|c| r.constraints.contains(c));
                if same_target {
                    perms = Perms(perms.0 | a.perms.intersect(r.perms).0);
                }
            }
            if !perms.is_empty() {
                let cut = ResourceScope { perms, ..r };
                out.raw.push(if perms == self_perms(word) {
                    word.clone()
                } else {
                    cut.to_string()
                });
            }
        }
        Scopes::parse(&out.raw.join(" ")).expect("scopes built from parsed scopes parse")
    }

    /// Whether every scope of `self` is also granted by `other` (refresh
    /// requests may narrow the scope, never widen it).
    pub fn within(&self, other: &Scopes) -> bool {
        let flags_ok = (!self.openid || other.openid)
            && (!self.fhir_user || other.fhir_user)
            && (!self.launch || other.launch)
            && (!self.launch_patient || other.launch_patient)
            && (!self.launch_encounter || other.launch_encounter)
            && (!self.offline_access || other.offline_access)
            && (!self.online_access || other.online_access);
        flags_ok
            && self
                .resources
                .iter()
                .all(|r| other.resources.iter().any(|o| r.within(o)))
    }

    pub fn to_scope_string(&self) -> String {
        self.raw.join(" ")
    }
}

fn self_perms(word: &str) -> Perms {
    parse_resource_scope(word)
        .ok()
        .flatten()
        .map(|r| r.perms)
        .unwrap_or_default()
}

/// `context/Type.perms[?constraints]`; None when `word` is not shaped like a
/// resource scope at all.
fn parse_resource_scope(word: &str) -> Result<Option<ResourceScope>, ScopeError> {
    let Some((context, rest)) = word.split_once('/') else {
        return Ok(None);
    };
    let context = match context {
        "patient" => Context::Patient,
        "user" => Context::User,
        "system" => Context::System,
        _ => return Ok(None),
    };
    let bad = |why: &str| ScopeError(format!("scope `{word}`: {why}"));
    let (target, query) = match rest.split_once('?') {
        Some((t, q)) => (t, Some(q)),
        None => (rest, None),
    };
    let Some((rtype, perms)) = target.rsplit_once('.') else {
        return Err(bad("expected Type.permissions, such as Observation.rs"));
    };
    let rtype = match rtype {
        "*" => None,
        t if crate::fhir::schema::schema().is_resource_type(t) => Some(t.to_string()),
        t => return Err(bad(&format!("`{t}` is not a FHIR R4 resource type"))),
    };
    let (perms, v2) = match perms {
        "read" => (Perms::default().with(Perm::Read).with(Perm::Search), false),
        "write" => (
            Perms::default()
                .with(Perm::Create)
                .with(Perm::Update)
                .with(Perm::Delete),
            false,
        ),
        "*" => (Perms::ALL, false),
        letters => (
            parse_letters(letters).ok_or_else(|| {
                bad("permissions must be read, write, * or a subset of cruds in that order")
            })?,
            true,
        ),
    };
    let mut constraints = Vec::new();
    if let Some(q) = query {
        if !v2 {
            return Err(bad(
                "search constraints (?...) need v2 permissions such as .rs",
            ));
        }
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k.is_empty() {
                return Err(bad("empty constraint parameter"));
            }
            constraints.push((k.into_owned(), v.into_owned()));
        }
        if constraints.is_empty() {
            return Err(bad("empty search constraint"));
        }
    }
    Ok(Some(ResourceScope {
        context,
        rtype,
        perms,
        constraints,
    }))
}

/// `cruds` letters, each at most once and in that order.
fn parse_letters(s: &str) -> Option<Perms> {
    if s.is_empty() {
        return None;
    }
    let mut perms = Perms::default();
    let mut next = 0;
    for c in s.chars() {
        let i = Perm::ALL.iter().position(|p| p.letter() == c)?;
        if i < next {
            return None;
        }
        perms = perms.with(Perm::ALL[i]);
        next = i + 1;
    }
    Some(perms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_parse_to_the_same_model() {
        let v1 = Scopes::parse("patient/Observation.read").unwrap();
        let v2 = Scopes::parse("patient/Observation.rs").unwrap();
        assert_eq!(v1.resources, v2.resources);
        let w = Scopes::parse("user/*.write").unwrap();
        assert_eq!(w.resources[0].perms.letters(), "cud");
        assert_eq!(w.resources[0].rtype, None);
        let all = Scopes::parse("system/*.*").unwrap();
        assert_eq!(all.resources[0].perms, Perms::ALL);
        assert_eq!(all.resources[0].to_string(), "system/*.cruds");
    }

    #[test]
    fn constraints_and_flags() {
        let s = Scopes::parse(
            "openid fhirUser launch/patient offline_access patient/Observation.rs?category=laboratory",
        )
        .unwrap();
        assert!(s.openid && s.fhir_user && s.launch_patient && s.offline_access);
        assert!(!s.launch && !s.online_access);
        assert_eq!(
            s.resources[0].constraints,
            vec![("category".to_string(), "laboratory".to_string())]
        );
        assert_eq!(
            s.resources[0].to_string(),
            "patient/Observation.rs?category=laboratory"
        );
    }

    #[test]
    fn malformed_scopes_are_errors() {
        for bad in [
            "patient/Observation.rad",
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation",
            "patient/Unicorn.rs",
            "patient/Observation.read?category=x",
            "patient/Observation.rs?",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad}");
        }
        // Other shapes are not resource scopes: kept, grant nothing.
        let s = Scopes::parse("profile email custom/thing").unwrap();
        assert!(s.resources.is_empty());
        assert_eq!(s.raw.len(), 3);
    }

    #[test]
    fn grants_by_type_and_permission() {
        let s = Scopes::parse("patient/Observation.rs user/*.c").unwrap();
        assert_eq!(s.grants(Perm::Read, "Observation").count(), 1);
        assert_eq!(s.grants(Perm::Read, "Patient").count(), 0);
        assert_eq!(s.grants(Perm::Create, "Patient").count(), 1);
        assert_eq!(s.grants(Perm::Delete, "Observation").count(), 0);
    }

    #[test]
    fn narrowing_and_widening() {
        let granted = Scopes::parse("offline_access patient/*.rs launch/patient").unwrap();
        let narrower = Scopes::parse("patient/Observation.r").unwrap();
        let wider = Scopes::parse("patient/Observation.cruds").unwrap();
        let other_context = Scopes::parse("user/Observation.r").unwrap();
        assert!(narrower.within(&granted));
        assert!(!wider.within(&granted));
        assert!(!other_context.within(&granted));
        assert!(!Scopes::parse("openid").unwrap().within(&granted));
    }

    #[test]
    fn restriction_to_a_clients_allowed_scopes() {
        let allowed = Scopes::parse("patient/*.rs openid fhirUser").unwrap();
        let asked =
            Scopes::parse("patient/Observation.cruds openid offline_access user/*.rs").unwrap();
        let got = asked.restricted_to(&allowed);
        assert_eq!(got.to_scope_string(), "patient/Observation.rs openid");
    }

    #[test]
    fn plain_language() {
        let s = Scopes::parse("patient/Observation.rs?category=laboratory").unwrap();
        assert_eq!(
            s.resources[0].describe(),
            "Read and search Observation resources of the selected patient (only where category = laboratory)"
        );
    }
}
