//! Validation of a resource against a profile: a StructureDefinition with a
//! `snapshot` (constraint profiles such as R4's `vitalsigns`).
//!
//! The walker follows the snapshot's element tree (by element `id`) and the
//! resource's JSON together, and checks
//! - cardinality (`min`/`max`) of each element within each item of its
//!   parent, and of each slice;
//! - `fixed[x]` (exact) and `pattern[x]` (the instance contains the pattern)
//!   values;
//! - `minValue[x]`, `maxValue[x]` (numbers, dates and times at their
//!   precision, Quantities of comparable units) and `maxLength`
//!   (`profile/bounds.rs`);
//! - the types a choice element may take (`value[x]` restricted to
//!   Quantity) and the target types of references (`targetProfile`s of the
//!   core resources);
//! - `type.profile` and `targetProfile`: values and the resources
//!   references point to conform to the profiles named
//!   (`profile/conformance.rs`);
//! - slicing: each item is sorted into the slice its discriminators match
//!   (`value` and `pattern`: the fixed or pattern value at the
//!   discriminator's path in the slice; `type`: the item's type; `exists`;
//!   `profile`), then each slice is checked like an element; under
//!   `closed` rules an item matching no slice is an error, under
//!   `openAtEnd` rules a slice's item after one matching no slice; an
//!   `ordered` slicing wants the items in the order of the slices;
//! - the profile's own invariants (keys the base definitions lack, e.g.
//!   `vs-2`);
//! - required and extensible bindings: to value sets the R4 schema knows
//!   here; the others are returned as [`BindingCheck`]s for the
//!   terminology service.
//!
//! Issues carry the FHIRPath location of the element
//! (`Observation.component[0].code`).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::Value;

use self::bounds::{Side, Verdict};
use self::conformance::{unresolved, Conformance};
use super::invariants;
use super::outcome::{Issue, IssueType, Severity};
use super::primitive::is_id;
use super::schema::schema;
use crate::fhirpath::{self, Expr};

/// One discriminator of a slicing.
#[derive(Debug, Clone)]
struct Discriminator {
    kind: String,
    path: String,
}

/// `slicing.rules`: whether items may match no slice, and where.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rules {
    Open,
    Closed,
    /// Items matching no slice only after all the slices' items.
    OpenAtEnd,
}

#[derive(Debug, Clone)]
struct Slicing {
    discriminators: Vec<Discriminator>,
    rules: Rules,
    /// Items in the order of the slice definitions.
    ordered: bool,
}

impl Slicing {
    /// The slicing a re-slice without its own inherits: the
    /// discriminators, not the rules.
    fn inherited(&self) -> Slicing {
        Slicing {
            discriminators: self.discriminators.clone(),
            rules: Rules::Open,
            ordered: false,
        }
    }
}

/// One `type` of an element.
struct TypeRef {
    code: String,
    /// `type.profile`: a value of this type conforms to one of them.
    profiles: Vec<String>,
    /// `type.targetProfile`: what a Reference (or canonical) may point to.
    targets: Vec<String>,
}

struct ProfileConstraint {
    key: String,
    error: bool,
    human: String,
    source: String,
    expr: Expr,
}

struct Elem {
    id: String,
    path: String,
    slice_name: Option<String>,
    min: u32,
    /// None: unbounded.
    max: Option<u32>,
    types: Vec<TypeRef>,
    fixed: Option<Value>,
    pattern: Option<Value>,
    min_value: Option<Value>,
    max_value: Option<Value>,
    max_length: Option<u64>,
    binding: Option<(String, String)>,
    slicing: Option<Slicing>,
    constraints: Vec<ProfileConstraint>,
}

/// A profile read from a StructureDefinition.
pub struct Profile {
    pub url: String,
    pub version: Option<String>,
    /// The resource type it constrains.
    pub resource_type: String,
    elements: Vec<Elem>,
    /// Element index → its children (by id: `parent.name`).
    children: HashMap<usize, Vec<usize>>,
    /// Element index → its slices (by id: `element:slice`).
    slices: HashMap<usize, Vec<usize>>,
}

/// A binding the walker could not check itself: the terminology service
/// checks the codes against the value set.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingCheck {
    pub location: String,
    /// `required` or `extensible`.
    pub strength: String,
    pub value_set: String,
    /// (system, code) pairs; a `code` element has no system.
    pub codings: Vec<(Option<String>, String)>,
}

/// What validation against a profile found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub issues: Vec<Issue>,
    pub bindings: Vec<BindingCheck>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A list of strings (`type.profile`).
fn texts(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl Profile {
    /// Reads a StructureDefinition; it must have a snapshot.
    pub fn from_resource(sd: &Value) -> Result<Profile, String> {
        let url = text(sd, "url").ok_or("the StructureDefinition has no url")?;
        let resource_type = text(sd, "type").ok_or_else(|| format!("{url} has no type"))?;
        let list = sd
            .pointer("/snapshot/element")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                format!("{url} has no snapshot; only profiles with a snapshot can be used")
            })?;
        let base_keys = invariants::table().keys();
        let mut elements = Vec::with_capacity(list.len());
        for el in list {
            let path = text(el, "path").ok_or_else(|| format!("{url}: an element has no path"))?;
            let id = text(el, "id").unwrap_or_else(|| path.clone());
            let mut fixed = None;
            let mut pattern = None;
            let mut min_value = None;
            let mut max_value = None;
            if let Some(obj) = el.as_object() {
                for (k, v) in obj {
                    if k.starts_with("fixed") {
                        fixed = Some(v.clone());
                    } else if k.starts_with("pattern") {
                        pattern = Some(v.clone());
                    } else if k.starts_with("minValue") {
                        min_value = Some(v.clone());
                    } else if k.starts_with("maxValue") {
                        max_value = Some(v.clone());
                    }
                }
            }
            let types = el
                .get("type")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(TypeRef {
                        code: text(t, "code")?,
                        profiles: texts(t, "profile"),
                        targets: texts(t, "targetProfile"),
                    })
                })
                .collect();
            let binding = el.get("binding").and_then(|b| {
                Some((
                    text(b, "strength")?,
                    text(b, "valueSet").or_else(|| text(b, "valueSetUri"))?,
                ))
            });
            let slicing = el.get("slicing").map(|s| Slicing {
                discriminators: s
                    .get("discriminator")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| {
                        Some(Discriminator {
                            kind: text(d, "type")?,
                            path: text(d, "path")?,
                        })
                    })
                    .collect(),
                rules: match text(s, "rules").as_deref() {
                    Some("closed") => Rules::Closed,
                    Some("openAtEnd") => Rules::OpenAtEnd,
                    _ => Rules::Open,
                },
                ordered: s.get("ordered").and_then(Value::as_bool) == Some(true),
            });
            let constraints = el
                .get("constraint")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    let key = text(c, "key")?;
                    if base_keys.contains(key.as_str()) || key == "ele-1" {
                        return None;
                    }
                    let source = text(c, "expression")?;
                    let expr = fhirpath::parse(&source).ok()?;
                    Some(ProfileConstraint {
                        error: text(c, "severity").as_deref() != Some("warning"),
                        human: text(c, "human").unwrap_or_default(),
                        key,
                        source,
                        expr,
                    })
                })
                .collect();
            let max = match el.get("max").and_then(Value::as_str) {
                None | Some("*") => None,
                Some(m) => Some(
                    m.parse()
                        .map_err(|_| format!("{url}: {id} has max `{m}`, not a number or *"))?,
                ),
            };
            elements.push(Elem {
                slice_name: text(el, "sliceName"),
                min: el.get("min").and_then(Value::as_u64).unwrap_or(0) as u32,
                max,
                types,
                fixed,
                pattern,
                min_value,
                max_value,
                max_length: el.get("maxLength").and_then(Value::as_u64),
                binding,
                slicing,
                constraints,
                id,
                path,
            });
        }
        let by_id: HashMap<&str, usize> = elements
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut slices: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, e) in elements.iter().enumerate() {
            let Some((parent, last)) = e.id.rsplit_once('.') else {
                continue;
            };
            match last.split_once(':') {
                Some((name, slice)) => {
                    // A reslice (`name:slice/reslice`) belongs to its slice.
                    let base = match slice.rsplit_once('/') {
                        Some((outer, _)) => format!("{parent}.{name}:{outer}"),
                        None => format!("{parent}.{name}"),
                    };
                    if let Some(&b) = by_id.get(base.as_str()) {
                        slices.entry(b).or_default().push(i);
                    }
                }
                None => {
                    if let Some(&p) = by_id.get(parent) {
                        children.entry(p).or_default().push(i);
                    }
                }
            }
        }
        if elements.first().map(|e| e.path.as_str()) != Some(resource_type.as_str()) {
            return Err(format!(
                "{url}: the snapshot does not start with the {resource_type} element"
            ));
        }
        Ok(Profile {
            version: text(sd, "version"),
            url,
            resource_type,
            elements,
            children,
            slices,
        })
    }

    /// Validates a resource against the profile; the profiles it names are
    /// looked up among the shipped ones, and no stored resource is.
    pub fn validate(&self, resource: &Value) -> Outcome {
        self.validate_with(
            resource,
            &Lookup {
                profiles: &|url| shipped(url, None),
                resources: None,
            },
        )
    }

    /// The canonical URLs of the profiles validation against this one may
    /// need, neither shipped nor a core type: the `type.profile`s of its
    /// elements (values conform to them; `profile` discriminators) and
    /// their `targetProfile`s (resources referred to conform to them).
    pub fn needed_profiles(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let urls = self
            .elements
            .iter()
            .flat_map(|e| &e.types)
            .flat_map(|t| t.profiles.iter().chain(&t.targets));
        for url in urls {
            let plain = plain_url(url);
            if core_type(plain).is_none()
                && shipped(plain, None).is_none()
                && !out.iter().any(|o| o == url)
            {
                out.push(url.clone());
            }
        }
        out
    }

    /// Whether a reference target is constrained to a profile, not just to
    /// a resource type: the resources referred to are then checked against
    /// it, and stored ones must be looked up.
    pub fn has_target_profiles(&self) -> bool {
        self.elements
            .iter()
            .flat_map(|e| &e.types)
            .flat_map(|t| &t.targets)
            .any(|url| core_type(plain_url(url)).is_none())
    }

    /// Validates a resource against the profile; `lookup` finds the
    /// profiles it names and the stored resources references point to.
    pub fn validate_with<'p>(&'p self, resource: &'p Value, lookup: &'p Lookup<'p>) -> Outcome {
        let mut w = Walker {
            profile: self,
            resource,
            top: resource,
            lookup,
            depth: 0,
            out: Outcome::default(),
        };
        let rtype = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rtype != self.resource_type {
            w.error(
                IssueType::Invalid,
                rtype,
                format!(
                    "profile {} is for {}, not {rtype}",
                    self.url, self.resource_type
                ),
            );
            return w.out;
        }
        let root = Item {
            value: resource,
            loc: rtype.to_string(),
            ty: rtype.to_string(),
        };
        w.items(0, std::slice::from_ref(&root));
        w.out.issues = without_repeats(w.out.issues);
        w.out
    }
}

/// The same finding reached twice (a slice's own elements and the
/// definition its type names stating one rule) is reported once.
fn without_repeats(issues: Vec<Issue>) -> Vec<Issue> {
    let mut seen = HashSet::new();
    issues
        .into_iter()
        .filter(|i| seen.insert((i.expression.clone(), i.diagnostics.clone())))
        .collect()
}

/// Finds a profile by canonical URL (with `|version` when the profile
/// naming it gives one).
pub type FindProfile<'a> = dyn Fn(&str) -> Option<&'a Profile> + 'a;

/// Finds a resource stored on the server by relative reference
/// (`Type/id`).
pub type FindResource<'a> = dyn Fn(&str) -> Option<&'a Value> + 'a;

/// What a validation may look up beyond the resource and the profile.
pub struct Lookup<'a> {
    pub profiles: &'a FindProfile<'a>,
    /// None: no stored resource can be looked up.
    pub resources: Option<&'a FindResource<'a>>,
}

/// The first `limit` relative references (`Type/id`) in a resource, each
/// once: the stored resources a validation may need.
pub fn relative_references(resource: &Value, limit: usize) -> Vec<String> {
    fn walk(v: &Value, limit: usize, seen: &mut HashSet<String>, out: &mut Vec<String>) {
        if out.len() >= limit {
            return;
        }
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("reference") {
                    let relative = r.split_once('/').is_some_and(|(t, id)| {
                        schema().resource_types().iter().any(|rt| rt == t) && is_id(id)
                    });
                    if relative && out.len() < limit && seen.insert(r.clone()) {
                        out.push(r.clone());
                    }
                }
                o.values().for_each(|x| walk(x, limit, seen, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, limit, seen, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(resource, limit, &mut HashSet::new(), &mut out);
    out
}

/// Where an item of a sliced element was sorted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placed {
    Slice(usize),
    /// In none of the slices.
    Nowhere,
    /// A discriminator could not be evaluated.
    Unsorted,
}

/// A value in the resource, where it is and its type.
struct Item<'v> {
    value: &'v Value,
    loc: String,
    ty: String,
}

struct Walker<'p, 'v> {
    profile: &'p Profile,
    /// The resource the walked value belongs to (invariants' `%resource`,
    /// `#id` references).
    resource: &'v Value,
    /// The resource validated by the request (a Bundle's entries).
    top: &'v Value,
    lookup: &'p Lookup<'p>,
    /// How many nested walks (other profiles) deep this walk is.
    depth: usize,
    out: Outcome,
}

/// How deep walks against other profiles may nest (a value conforming to
/// a profile whose values conform to profiles ...).
const MAX_DEPTH: usize = 8;

impl<'p: 'v, 'v> Walker<'p, 'v> {
    fn error(&mut self, code: IssueType, loc: &str, msg: String) {
        self.out
            .issues
            .push(Issue::new(Severity::Error, code, msg).at(loc.to_string()));
    }

    fn elem(&self, i: usize) -> &Elem {
        &self.profile.elements[i]
    }

    /// Checks the items of element `e` (already counted), then its children.
    fn items(&mut self, e: usize, items: &[Item<'v>]) {
        let profile = self.profile;
        let el = &profile.elements[e];
        for item in items {
            self.value_rules(el, item);
            // The root's own type is the profile's.
            if e != 0 {
                self.value_profiles(el, item);
            }
        }
        for &c in profile
            .children
            .get(&e)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            for parent in items {
                let found = child_items(parent, &profile.elements[c]);
                self.element(c, parent, found);
            }
        }
    }

    /// Element `c` within one parent item: cardinality, types, slicing, then
    /// the items themselves.
    fn element(&mut self, c: usize, parent: &Item<'v>, found: Vec<Item<'v>>) {
        let profile = self.profile;
        let el = &profile.elements[c];
        let name = last_name(&el.path);
        let here = format!("{}.{name}", parent.loc);
        self.count(el, found.len(), &here, None);
        if el.path.ends_with("[x]") && !el.types.is_empty() {
            for item in &found {
                if !el.types.iter().any(|t| same_type(&t.code, &item.ty)) {
                    let allowed: Vec<&str> = el.types.iter().map(|t| t.code.as_str()).collect();
                    self.error(
                        IssueType::Structure,
                        &item.loc,
                        format!(
                            "{} is a {}; the profile allows {}",
                            item.loc,
                            item.ty,
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        let slices = profile.slices.get(&c).cloned().unwrap_or_default();
        if !slices.is_empty() {
            self.slices(c, &slices, &found, &here);
        }
        self.items(c, &found);
    }

    fn count(&mut self, el: &Elem, n: usize, here: &str, slice: Option<&str>) {
        let what = match slice {
            Some(s) => format!("slice `{s}` of {here}"),
            None => here.to_string(),
        };
        if (n as u64) < el.min as u64 {
            self.error(
                IssueType::Required,
                here,
                format!("{what}: the profile needs at least {} (found {n})", el.min),
            );
        }
        if let Some(max) = el.max {
            if n as u64 > max as u64 {
                self.error(
                    IssueType::Structure,
                    here,
                    format!("{what}: the profile allows at most {max} (found {n})"),
                );
            }
        }
    }

    /// Sorts the items of a sliced element into its slices and checks each;
    /// a slice that is itself sliced (re-slicing, `slice/reslice`) sorts
    /// its items into its own slices, by its own slicing or else by the
    /// one it is a slice of.
    fn slices(&mut self, base: usize, slices: &[usize], found: &[Item<'v>], here: &str) {
        let profile = self.profile;
        let slicing = profile.elements[base].slicing.clone().unwrap_or(Slicing {
            discriminators: Vec::new(),
            rules: Rules::Open,
            ordered: false,
        });
        self.slices_by(&slicing, slices, found, here);
    }

    fn slices_by(&mut self, slicing: &Slicing, slices: &[usize], found: &[Item<'v>], here: &str) {
        let profile = self.profile;
        let placed: Vec<Placed> = found
            .iter()
            .map(|item| self.place(slicing, slices, item, here))
            .collect();
        self.slice_order(slicing, slices, found, &placed, here);
        for (j, &s) in slices.iter().enumerate() {
            let el = &profile.elements[s];
            let name = el.slice_name.clone().unwrap_or_default();
            let items: Vec<Item<'v>> = found
                .iter()
                .zip(&placed)
                .filter(|(_, p)| **p == Placed::Slice(j))
                .map(|(item, _)| Item {
                    value: item.value,
                    loc: item.loc.clone(),
                    ty: item.ty.clone(),
                })
                .collect();
            self.count(el, items.len(), here, Some(&name));
            if let Some(reslices) = profile.slices.get(&s) {
                let own = el.slicing.clone().unwrap_or_else(|| slicing.inherited());
                self.slices_by(&own, reslices, &items, here);
            }
            self.items(s, &items);
        }
    }

    /// The first slice an item matches; an item matching none is an error
    /// under `closed` rules, one that cannot be sorted a warning.
    fn place(
        &mut self,
        slicing: &Slicing,
        slices: &[usize],
        item: &Item<'v>,
        here: &str,
    ) -> Placed {
        let mut unknown: Option<String> = None;
        for (j, &s) in slices.iter().enumerate() {
            match self.in_slice(s, &slicing.discriminators, item) {
                Ok(true) => return Placed::Slice(j),
                Ok(false) => {}
                Err(why) => {
                    unknown.get_or_insert(why);
                }
            }
        }
        if let Some(why) = unknown {
            self.out.issues.push(
                Issue::new(
                    Severity::Warning,
                    IssueType::NotSupported,
                    format!(
                        "{} could not be sorted into the slices of {here}: {why}",
                        item.loc
                    ),
                )
                .at(item.loc.clone()),
            );
            return Placed::Unsorted;
        }
        if slicing.rules == Rules::Closed {
            self.error(
                IssueType::Structure,
                &item.loc,
                format!(
                    "{} matches none of the slices of {here}, and the slicing is closed",
                    item.loc
                ),
            );
        }
        Placed::Nowhere
    }

    /// `ordered` slicing: no item of a slice after an item of a later
    /// slice; `openAtEnd` rules: no item of a slice after an item matching
    /// none.
    fn slice_order(
        &mut self,
        slicing: &Slicing,
        slices: &[usize],
        found: &[Item<'v>],
        placed: &[Placed],
        here: &str,
    ) {
        let profile = self.profile;
        let name = |j: usize| {
            profile.elements[slices[j]]
                .slice_name
                .clone()
                .unwrap_or_default()
        };
        // The latest slice seen so far (slice, item), the first item in none.
        let mut latest: Option<(usize, usize)> = None;
        let mut first_outside: Option<usize> = None;
        for (k, p) in placed.iter().enumerate() {
            match *p {
                Placed::Slice(j) => {
                    let loc = &found[k].loc;
                    match latest {
                        Some((l, lk)) if l > j && slicing.ordered => self.error(
                            IssueType::Structure,
                            loc,
                            format!(
                                "{loc} (slice `{}`) comes after {} (slice `{}`), but the slicing of {here} is ordered",
                                name(j),
                                found[lk].loc,
                                name(l)
                            ),
                        ),
                        Some((l, _)) if l > j => {}
                        _ => latest = Some((j, k)),
                    }
                    if let (Some(u), Rules::OpenAtEnd) = (first_outside, slicing.rules) {
                        self.error(
                            IssueType::Structure,
                            loc,
                            format!(
                                "{loc} (slice `{}`) comes after {}, which matches no slice, but the slicing of {here} is open at the end only",
                                name(j),
                                found[u].loc
                            ),
                        );
                    }
                }
                Placed::Nowhere => {
                    first_outside.get_or_insert(k);
                }
                Placed::Unsorted => {}
            }
        }
    }

    /// Whether an item belongs to slice `s`: every discriminator matches;
    /// Err when a `profile` discriminator cannot be evaluated (why).
    fn in_slice(
        &self,
        s: usize,
        discriminators: &[Discriminator],
        item: &Item<'v>,
    ) -> Result<bool, String> {
        let slice = self.elem(s);
        if discriminators.is_empty() {
            return Ok(false);
        }
        let mut unknown = None;
        for d in discriminators {
            let segs: Vec<&str> = if d.path == "$this" {
                Vec::new()
            } else {
                d.path.split('.').collect()
            };
            let hit = match d.kind.as_str() {
                "value" | "pattern" => {
                    let expected = self.expected(s, &segs);
                    let actual = navigate(item.value, &segs);
                    !expected.is_empty()
                        && expected
                            .iter()
                            .all(|(v, exact)| actual.iter().any(|a| matches_value(a, v, *exact)))
                }
                "type" if segs.is_empty() => {
                    slice.types.iter().any(|t| same_type(&t.code, &item.ty))
                }
                "exists" => {
                    let target = format!("{}.{}", slice.path, d.path);
                    let present = !navigate(item.value, &segs).is_empty();
                    match self.subtree(s).find(|&i| self.elem(i).path == target) {
                        Some(i) if self.elem(i).min > 0 => present,
                        Some(i) if self.elem(i).max == Some(0) => !present,
                        _ => false,
                    }
                }
                "profile" => match self.profile_matches(s, &segs, item) {
                    Ok(hit) => hit,
                    Err(why) => {
                        unknown.get_or_insert(why);
                        continue;
                    }
                },
                _ => false,
            };
            if !hit {
                return Ok(false);
            }
        }
        match unknown {
            Some(why) => Err(why),
            None => Ok(true),
        }
    }

    /// A `profile` discriminator: the values at the path (through
    /// `resolve()` to contained, bundled or stored resources) each conform to one
    /// of the profiles the slice gives the element there (`type.profile`,
    /// or `targetProfile` after `resolve()`).
    fn profile_matches(&self, s: usize, segs: &[&str], item: &Item<'v>) -> Result<bool, String> {
        let slice = self.elem(s);
        let mut path = slice.path.clone();
        let mut values: Vec<&'v Value> = vec![item.value];
        let mut resolved = false;
        for seg in segs {
            if *seg == "resolve()" {
                let mut next = Vec::new();
                for v in values {
                    let Some(r) = self.resolve(v) else {
                        return Err(format!(
                            "{}, so its profile cannot be checked",
                            unresolved(v)
                        ));
                    };
                    next.push(r);
                }
                values = next;
                resolved = true;
                continue;
            }
            if seg.contains('(') || resolved {
                return Err(format!(
                    "the discriminator path `{}` is not supported",
                    segs.join(".")
                ));
            }
            path.push('.');
            path.push_str(seg);
            values = navigate_all(values, seg);
        }
        if values.is_empty() {
            return Ok(false);
        }
        let Some(at) = self.subtree(s).find(|&i| self.elem(i).path == path) else {
            return Ok(false);
        };
        let el = self.elem(at);
        let urls: Vec<&String> = el
            .types
            .iter()
            .flat_map(|t| if resolved { &t.targets } else { &t.profiles })
            .collect();
        if urls.is_empty() {
            return Ok(false);
        }
        for &v in &values {
            let ty = match v.get("resourceType").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None if values.len() == 1 && std::ptr::eq(v, item.value) => item.ty.clone(),
                None => el.types.first().map(|t| t.code.clone()).unwrap_or_default(),
            };
            match self.conformance(&urls, v, &ty, &item.loc) {
                Conformance::Conforms(_) => {}
                Conformance::Fails(_) => return Ok(false),
                Conformance::Unknown(why) => return Err(why),
            }
        }
        Ok(true)
    }

    /// Element `s` and every element below it (its id's descendants).
    fn subtree(&self, s: usize) -> impl Iterator<Item = usize> + 'p {
        let profile = self.profile;
        let id = profile.elements[s].id.clone();
        let prefix = format!("{id}.");
        (s..profile.elements.len()).filter(move |&i| {
            let e = &profile.elements[i].id;
            *e == id || e.starts_with(&prefix)
        })
    }

    /// The values a slice fixes at a discriminator path: each with whether
    /// it is exact (fixed) or a pattern. A value fixed higher up (a
    /// `patternCodeableConcept` on the slice for `coding.code`) is
    /// navigated down; when the slice fixes none, the profile its type
    /// names may.
    fn expected(&self, s: usize, segs: &[&str]) -> Vec<(Value, bool)> {
        let slice_path = self.elem(s).path.clone();
        for k in (0..=segs.len()).rev() {
            let mut path = slice_path.clone();
            for seg in &segs[..k] {
                path.push('.');
                path.push_str(seg);
            }
            let mut out = Vec::new();
            for i in self.subtree(s) {
                let e = self.elem(i);
                if e.path != path {
                    continue;
                }
                for (v, exact) in [(&e.fixed, true), (&e.pattern, false)] {
                    if let Some(v) = v {
                        for x in navigate(v, &segs[k..]) {
                            out.push((x.clone(), exact));
                        }
                    }
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
        self.expected_in_profiles(s, segs)
    }

    /// Fixed and pattern values, reference targets, bindings and the
    /// profile's invariants, on one item.
    fn value_rules(&mut self, el: &Elem, item: &Item<'v>) {
        if let Some(f) = &el.fixed {
            if !matches_value(item.value, f, true) {
                self.error(
                    IssueType::Value,
                    &item.loc,
                    format!(
                        "{} is {}; the profile fixes it to {f}",
                        item.loc, item.value
                    ),
                );
            }
        }
        if let Some(p) = &el.pattern {
            if !matches_value(item.value, p, false) {
                self.error(
                    IssueType::Value,
                    &item.loc,
                    format!(
                        "{} is {}; the profile needs it to match the pattern {p}",
                        item.loc, item.value
                    ),
                );
            }
        }
        self.bounds(el, item);
        if item.ty == "Reference" {
            self.reference_target(el, item);
        }
        if let Some((strength, vs)) = &el.binding {
            if strength == "required" || strength == "extensible" {
                self.binding(strength, vs, item);
            }
        }
        for c in &el.constraints {
            let at = invariants::Within::resource(self.resource);
            let broken = invariants::broken_expr(&c.expr, at, item.value, &item.ty);
            if broken {
                self.out.issues.push(invariants::broken_issue(
                    &c.key, c.error, &c.human, &c.source, &item.loc,
                ));
            }
        }
    }

    /// `minValue[x]`, `maxValue[x]` and `maxLength` (`profile/bounds.rs`).
    fn bounds(&mut self, el: &Elem, item: &Item<'v>) {
        for (side, bound) in [(Side::Min, &el.min_value), (Side::Max, &el.max_value)] {
            let Some(bound) = bound else { continue };
            match bounds::check(side, &item.ty, item.value, bound) {
                Verdict::Ok => {}
                Verdict::Broken(shown) => {
                    let relation = match side {
                        Side::Min => "below",
                        Side::Max => "above",
                    };
                    self.error(
                        IssueType::Value,
                        &item.loc,
                        format!(
                            "{} is {shown}, {relation} the profile's {} {}",
                            item.loc,
                            side.name(),
                            bounds::shown(bound)
                        ),
                    );
                }
                Verdict::Unchecked(why) => self.out.issues.push(
                    Issue::new(
                        Severity::Warning,
                        IssueType::NotSupported,
                        format!(
                            "{}: the profile's {} was not checked: {why}",
                            item.loc,
                            side.name()
                        ),
                    )
                    .at(item.loc.clone()),
                ),
            }
        }
        if let Some(max) = el.max_length {
            if let Some(n) = bounds::too_long(item.value, max) {
                self.error(
                    IssueType::TooLong,
                    &item.loc,
                    format!(
                        "{} is {n} characters long; the profile's maxLength is {max}",
                        item.loc
                    ),
                );
            }
        }
    }

    fn binding(&mut self, strength: &str, vs: &str, item: &Item<'v>) {
        let codings: Vec<(Option<String>, String)> = match item.ty.as_str() {
            "code" | "string" | "uri" => item
                .value
                .as_str()
                .map(|c| vec![(None, c.to_string())])
                .unwrap_or_default(),
            "Coding" => coding(item.value).into_iter().collect(),
            "CodeableConcept" => item
                .value
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(coding)
                .collect(),
            "Quantity" | "SimpleQuantity" | "Age" | "Duration" | "Count" | "Distance" => {
                coding(item.value).into_iter().collect()
            }
            _ => return,
        };
        if codings.is_empty() {
            // A CodeableConcept with text only: nothing to check.
            return;
        }
        let url = vs.split('|').next().unwrap_or(vs);
        // Value sets of the base required bindings are in the schema.
        let known: Option<bool> = codings
            .iter()
            .map(|(_, code)| schema().value_set_contains(url, code))
            .try_fold(false, |any, hit| hit.map(|h| any || h));
        match known {
            Some(true) => {}
            Some(false) => {
                let codes: Vec<&str> = codings.iter().map(|(_, c)| c.as_str()).collect();
                let severity = if strength == "required" {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                self.out.issues.push(
                    Issue::new(
                        severity,
                        IssueType::CodeInvalid,
                        format!(
                            "{}: `{}` is not in the value set {vs} ({strength} binding)",
                            item.loc,
                            codes.join("`, `")
                        ),
                    )
                    .at(item.loc.clone()),
                );
            }
            None => self.out.bindings.push(BindingCheck {
                location: item.loc.clone(),
                strength: strength.to_string(),
                value_set: vs.to_string(),
                codings,
            }),
        }
    }
}

/// The profiles shipped in `profiles/` (R4 core constraint profiles), by
/// canonical URL; `version` must match when given.
pub fn shipped(url: &str, version: Option<&str>) -> Option<&'static Profile> {
    static SHIPPED: LazyLock<HashMap<String, Profile>> = LazyLock::new(|| {
        super::shipped_profiles::SHIPPED
            .iter()
            .map(|(id, text)| {
                let sd: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("profiles/{id}.json is not JSON: {e}"));
                let p = Profile::from_resource(&sd)
                    .unwrap_or_else(|e| panic!("profiles/{id}.json: {e}"));
                (p.url.clone(), p)
            })
            .collect()
    });
    SHIPPED
        .get(url)
        .filter(|p| version.is_none() || version == p.version.as_deref())
}

/// How many profiles are shipped.
pub fn shipped_count() -> usize {
    super::shipped_profiles::SHIPPED.len()
}

/// The resource type a target profile stands for: a core type
/// (`.../StructureDefinition/Patient`) or a shipped profile's type.
fn target_type(url: &str) -> Option<&'static str> {
    const CORE: &str = "http://hl7.org/fhir/StructureDefinition/";
    let tail = url.strip_prefix(CORE)?;
    if tail == "Resource" {
        return Some("Resource");
    }
    if let Some(t) = schema()
        .resource_types()
        .iter()
        .find(|t| t.as_str() == tail)
    {
        return Some(t.as_str());
    }
    shipped(url, None).map(|p| p.resource_type.as_str())
}

/// A canonical URL without its `|version`.
fn plain_url(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

/// The core type a base definition's URL names
/// (`http://hl7.org/fhir/StructureDefinition/Patient`, `.../HumanName`).
fn core_type(url: &str) -> Option<&str> {
    let tail = url.strip_prefix("http://hl7.org/fhir/StructureDefinition/")?;
    // Profiles of Quantity in the core specification, whose rules are the
    // base invariants (`sqty-1`).
    if tail == "SimpleQuantity" || tail == "MoneyQuantity" {
        return Some("Quantity");
    }
    (tail == "Resource"
        || schema().type_def(tail).is_some()
        || schema().is_primitive(tail)
        || schema().resource_types().iter().any(|t| t == tail))
    .then_some(tail)
}

fn coding(v: &Value) -> Option<(Option<String>, String)> {
    Some((text(v, "system"), text(v, "code")?))
}

/// The last name of an element path, without `[x]`.
fn last_name(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.strip_suffix("[x]").unwrap_or(last)
}

/// Whether an element type code names the type of a JSON key suffix
/// (`Quantity`, `DateTime` for `dateTime`).
fn same_type(code: &str, ty: &str) -> bool {
    let mut a = code.chars();
    let mut b = ty.chars();
    match (a.next(), b.next()) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y) && a.as_str() == b.as_str(),
        _ => false,
    }
}

/// The items of element `el` within a parent item: one per list entry; a
/// choice element's under whichever type name is present.
fn child_items<'v>(parent: &Item<'v>, el: &Elem) -> Vec<Item<'v>> {
    let Some(obj) = parent.value.as_object() else {
        return Vec::new();
    };
    let name = last_name(&el.path);
    let mut out = Vec::new();
    let mut push = |ty: String, v: &'v Value| match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                out.push(Item {
                    value: x,
                    loc: format!("{}.{name}[{i}]", parent.loc),
                    ty: ty.clone(),
                });
            }
        }
        x => out.push(Item {
            value: x,
            loc: format!("{}.{name}", parent.loc),
            ty,
        }),
    };
    if el.path.ends_with("[x]") {
        for (key, v) in obj {
            if let Some(suffix) = key.strip_prefix(name) {
                if suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                    push(suffix.to_string(), v);
                }
            }
        }
    } else if let Some(v) = obj.get(name) {
        let ty = element_type(&parent.ty, name, el);
        push(ty, v);
    }
    out
}

/// The type of element `name` of a value of type `parent_ty`: the schema's,
/// or the profile's single type.
fn element_type(parent_ty: &str, name: &str, el: &Elem) -> String {
    if let Some((_, t)) = schema()
        .type_def(parent_ty)
        .and_then(|td| td.property(name))
    {
        return if schema().type_def(t).is_some() || schema().is_primitive(t) {
            t.to_string()
        } else {
            format!("{parent_ty}.{name}")
        };
    }
    match el.types.as_slice() {
        [t] if t.code != "BackboneElement" && t.code != "Element" => t.code.clone(),
        _ => format!("{parent_ty}.{name}"),
    }
}

/// The values at a path of element names below `v` (lists flattened).
fn navigate<'a>(v: &'a Value, segs: &[&str]) -> Vec<&'a Value> {
    let mut current = vec![v];
    for seg in segs {
        let mut next = Vec::new();
        for c in current {
            match c.get(*seg) {
                Some(Value::Array(a)) => next.extend(a.iter()),
                Some(x) => next.push(x),
                None => {}
            }
        }
        current = next;
    }
    current
}

/// The values at element `seg` of each value (lists flattened).
fn navigate_all<'a>(values: Vec<&'a Value>, seg: &str) -> Vec<&'a Value> {
    values
        .into_iter()
        .flat_map(|v| navigate(v, &[seg]))
        .collect()
}

/// `actual` equals `expected` (exact) or contains it (pattern: every member
/// of an expected object present and matching; every item of an expected
/// list matched by some item).
pub fn matches_value(actual: &Value, expected: &Value, exact: bool) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            if exact && a.keys().any(|k| !e.contains_key(k)) {
                return false;
            }
            e.iter()
                .all(|(k, ev)| a.get(k).is_some_and(|av| matches_value(av, ev, exact)))
        }
        (Value::Array(a), Value::Array(e)) => {
            if exact {
                a.len() == e.len() && a.iter().zip(e).all(|(x, y)| matches_value(x, y, true))
            } else {
                e.iter()
                    .all(|ev| a.iter().any(|av| matches_value(av, ev, false)))
            }
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        (a, e) => a == e,
    }
}

mod bounds;
mod conformance;
#[cfg(test)]
mod tests;
