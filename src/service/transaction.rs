//! transaction and batch Bundles (http://hl7.org/fhir/R4/http.html#transaction).
//!
//! A transaction runs every entry in one database transaction: all or
//! nothing. Entries are processed in the spec's order (DELETE, POST,
//! PUT/PATCH, GET/HEAD); the ids of created resources are fixed first, so
//! that `urn:uuid:`/`urn:oid:` full URLs and conditional references can be
//! rewritten before anything is written. A batch runs each entry on its own;
//! one failure does not affect the others.
//!
//! `GET`/`HEAD` entries on a type or system search URL (`Observation?code=x`,
//! `?_type=Patient`) answer a `searchset` Bundle as the entry's resource.
//! In a transaction they run last, inside its database transaction, so they
//! see its writes; a failing search fails the whole transaction. Batch
//! searches read outside any write transaction.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::bundle::{self, EntryOut, EntryResponse};
use super::conditional::Criteria;
use super::create::only_match;
use super::prepared::Prepared;
use super::references::{rewrite_references, visit_references};
use super::search::SearchScope;
use super::{check_type, input, parse_etag, Fhir, VersionOut, WriteOutcome, WriteStatus};
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::range_micros;
use crate::fhir::outcome::{operation_outcome, IssueType};
use crate::store::query::Lookup;
use crate::store::{Reader, WriteTx};

/// What a Bundle's conditional criteria matched (at most 2 ids each), by
/// the criteria as written (`Type?query`), so that they are not parsed
/// again; criteria written differently but equal (`Criteria::lock_key`)
/// are looked up once.
type Matches = HashMap<String, Vec<String>>;

/// How the response entries carry resources (`Prefer: return=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryReturn {
    Minimal,
    Representation,
    OperationOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    // The order is the transaction processing order.
    Delete,
    Post,
    Put,
    Patch,
    Get,
    Head,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "DELETE" => Method::Delete,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => return None,
        })
    }

    fn phase(self) -> u8 {
        match self {
            Method::Delete => 0,
            Method::Post => 1,
            Method::Put | Method::Patch => 2,
            Method::Get | Method::Head => 3,
        }
    }
}

/// What `request.url` names.
#[derive(Debug, Clone)]
enum Target {
    Type(String),
    Instance(String, String),
    Version(String, String, String),
    Conditional(String, String),
    /// The base with a query (`?_type=...`): a system search.
    System(String),
    /// A compartment search (`Patient/1/Observation?code=...`): the
    /// compartment, its id, the type searched and the query.
    Compartment(String, String, String, String),
}

impl Target {
    /// The type the url names; empty for the base.
    fn rtype(&self) -> &str {
        match self {
            Target::Type(t)
            | Target::Instance(t, _)
            | Target::Version(t, _, _)
            | Target::Conditional(t, _)
            | Target::Compartment(_, _, t, _) => t,
            Target::System(_) => "",
        }
    }
}

/// Who sent the Bundle, and how searches in it treat unknown parameters
/// (`Prefer: handling=strict`).
#[derive(Clone, Copy)]
struct Sender<'a> {
    access: &'a crate::auth::Access,
    strict: bool,
}

struct Entry {
    index: usize,
    method: Method,
    target: Target,
    full_url: Option<String>,
    resource: Option<Map<String, Value>>,
    if_none_exist: Option<String>,
    if_match: Option<i64>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    /// The id fixed for a create or conditional update before processing.
    assigned_id: Option<String>,
    /// A conditional create that matched an existing resource.
    matched: bool,
}

/// Prefixes an entry's errors with its position.
fn at_entry(index: usize, mut err: FhirError) -> FhirError {
    for issue in &mut err.issues {
        issue.diagnostics = format!("Bundle.entry[{index}]: {}", issue.diagnostics);
        if issue.expression.is_none() {
            issue.expression = Some(format!("Bundle.entry[{index}]"));
        }
    }
    err
}

fn status_line(status: u16) -> String {
    let reason = http_reason(status);
    format!("{status} {reason}")
}

fn http_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl Fhir {
    /// Processes a `transaction` or `batch` Bundle; returns the response
    /// Bundle as JSON bytes.
    pub async fn transaction_or_batch(
        &self,
        body: Value,
        prefer: EntryReturn,
        access: &crate::auth::Access,
        strict: bool,
    ) -> FhirResult<Vec<u8>> {
        let sender = Sender { access, strict };
        let Value::Object(mut bundle) = body else {
            return Err(FhirError::invalid("the body must be a Bundle"));
        };
        let kind = bundle
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(slot) = crate::audit::current() {
            slot.set_subtype(if kind == "batch" {
                "batch"
            } else {
                "transaction"
            });
        }
        // A batch validates each entry on its own: one bad entry must not
        // fail the others. A transaction is validated whole.
        let entries_value = if kind == "batch" {
            bundle.remove("entry")
        } else {
            None
        };
        let bundle = input::prepare("Bundle", Value::Object(bundle))?;
        let entries = match entries_value.or_else(|| bundle.get("entry").cloned()) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        if entries.len() > self.max_bundle_entries {
            return Err(FhirError::new(
                413,
                IssueType::TooCostly,
                format!(
                    "the Bundle has {} entries; at most {} are accepted",
                    entries.len(),
                    self.max_bundle_entries
                ),
            ));
        }
        match kind.as_str() {
            "transaction" => {
                let parsed = entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| {
                        self.parse_entry(i, e, false)
                            .map_err(|err| at_entry(i, err))
                    })
                    .collect::<FhirResult<Vec<Entry>>>()?;
                for e in &parsed {
                    self.authorize_entry(access, e)
                        .await
                        .map_err(|err| at_entry(e.index, err))?;
                }
                self.transaction(parsed, prefer, sender).await
            }
            "batch" => Ok(self.batch(entries, prefer, sender).await),
            other => Err(FhirError::invalid(format!(
                "POST to the base takes a transaction or batch Bundle, not `{other}`; \
                 store other Bundles with POST [base]/Bundle"
            ))),
        }
    }

    /// Reads one entry; `validate` checks its resource (batch entries, which
    /// were not validated with their Bundle).
    fn parse_entry(&self, index: usize, entry: Value, validate: bool) -> FhirResult<Entry> {
        let Value::Object(mut entry) = entry else {
            return Err(FhirError::invalid("an entry must be an object"));
        };
        let Some(Value::Object(request)) = entry.remove("request") else {
            return Err(FhirError::bad_request(
                IssueType::Required,
                "the entry has no request",
            ));
        };
        let method_text = request
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let method = Method::parse(method_text)
            .ok_or_else(|| FhirError::invalid(format!("unknown request method `{method_text}`")))?;
        let url = request
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let target = self.parse_url(url)?;
        if !matches!(target, Target::System(_)) {
            check_type(target.rtype())?;
        }
        if method != Method::Get && method != Method::Head {
            super::check_writable(target.rtype())?;
        }
        let resource = match entry.remove("resource") {
            Some(Value::Object(r)) if validate => Some(validate_entry_resource(index, r)?),
            Some(Value::Object(r)) => Some(r),
            Some(_) => {
                return Err(FhirError::invalid(
                    "the entry's resource must be a JSON object",
                ))
            }
            None => None,
        };
        let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_string);
        let if_match = match text("ifMatch") {
            Some(tag) => Some(parse_etag(&tag).ok_or_else(|| {
                FhirError::invalid(format!(
                    "ifMatch `{tag}` is not a version ETag such as W/\"3\""
                ))
            })?),
            None => None,
        };
        let parsed = Entry {
            index,
            method,
            target,
            full_url: entry
                .get("fullUrl")
                .and_then(Value::as_str)
                .map(str::to_string),
            resource,
            if_none_exist: text("ifNoneExist"),
            if_match,
            if_none_match: text("ifNoneMatch"),
            if_modified_since: text("ifModifiedSince"),
            assigned_id: None,
            matched: false,
        };
        self.check_entry_shape(&parsed)?;
        Ok(parsed)
    }

    /// Checks that the method, URL and resource fit together.
    fn check_entry_shape(&self, e: &Entry) -> FhirResult<()> {
        let needs_resource = matches!(e.method, Method::Post | Method::Put | Method::Patch);
        if needs_resource && e.resource.is_none() {
            return Err(FhirError::bad_request(
                IssueType::Required,
                "the entry needs a resource",
            ));
        }
        // GET and HEAD take every url: a read, a vread or a search.
        let ok = matches!(
            (e.method, &e.target),
            (Method::Post, Target::Type(_))
                | (
                    Method::Put | Method::Patch | Method::Delete,
                    Target::Instance(..) | Target::Conditional(..),
                )
                | (Method::Get | Method::Head, _)
        );
        if !ok {
            return Err(FhirError::invalid(
                "the request url does not fit the method",
            ));
        }
        if let (Some(r), Method::Post | Method::Put) = (&e.resource, e.method) {
            let rtype = r
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if rtype != e.target.rtype() {
                return Err(FhirError::invalid(format!(
                    "the resource is a {rtype}, but the url names {}",
                    e.target.rtype()
                )));
            }
            if let (Target::Instance(_, id), Some(body_id)) =
                (&e.target, r.get("id").and_then(Value::as_str))
            {
                if body_id != id {
                    return Err(FhirError::invalid(format!(
                        "the resource id `{body_id}` does not match the url id `{id}`"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Parses `request.url`: relative, or absolute under this server's base.
    fn parse_url(&self, url: &str) -> FhirResult<Target> {
        let relative = url
            .strip_prefix(&self.base_url)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(url);
        let (path, query) = match relative.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (relative, None),
        };
        // The query may hold URLs (`code=http://loinc.org|...`); the path not.
        if path.contains("://") {
            return Err(FhirError::invalid(format!(
                "`{url}` is not a URL of this server"
            )));
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        Ok(match (parts.as_slice(), query) {
            ([], Some(q)) => Target::System(q.to_string()),
            ([t], Some(q)) if !q.is_empty() => Target::Conditional(t.to_string(), q.to_string()),
            ([t], _) => Target::Type(t.to_string()),
            ([t, id], None) => Target::Instance(t.to_string(), id.to_string()),
            ([c, id, t], q) if crate::fhir::schema::schema().is_resource_type(t) => {
                Target::Compartment(
                    c.to_string(),
                    id.to_string(),
                    t.to_string(),
                    q.unwrap_or_default().to_string(),
                )
            }
            ([t, id, "_history", v], None) => {
                Target::Version(t.to_string(), id.to_string(), v.to_string())
            }
            _ => {
                return Err(FhirError::invalid(format!(
                    "`{url}` is not a supported request url"
                )))
            }
        })
    }

    /// Readies a transaction Bundle to run inside a write transaction the
    /// caller owns (`transaction_within`): validated, its entries read and
    /// planned (`plan`) before that transaction opens.
    pub async fn prepare_transaction(&self, bundle: Value) -> FhirResult<PreparedBundle> {
        let bundle = input::prepare("Bundle", bundle)?;
        if bundle.get("type").and_then(Value::as_str) != Some("transaction") {
            return Err(FhirError::invalid("expected a transaction Bundle"));
        }
        let entries = match bundle.get("entry") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                self.parse_entry(i, e, false)
                    .map_err(|err| at_entry(i, err))
            })
            .collect::<FhirResult<Vec<Entry>>>()?;
        let planned = self.plan(&entries).await;
        Ok(PreparedBundle { entries, planned })
    }

    /// Runs a prepared transaction Bundle inside a write transaction the
    /// caller owns and will commit (the HL7 v2 bridge records each message
    /// in the same commit as the resources it writes). `clean`: `tx` has
    /// written no resource yet. Returns the response Bundle, and whether
    /// what was written is the plan's content (`planned_writes` holds).
    pub async fn transaction_within(
        &self,
        tx: &mut WriteTx,
        bundle: &PreparedBundle,
        clean: bool,
    ) -> FhirResult<(Vec<u8>, bool)> {
        let access = crate::auth::Access::unrestricted("server");
        let sender = Sender {
            access: &access,
            strict: false,
        };
        self.transaction_in(
            tx,
            &bundle.entries,
            bundle.planned.as_ref(),
            clean,
            EntryReturn::Minimal,
            sender,
        )
        .await
    }

    async fn transaction(
        &self,
        entries: Vec<Entry>,
        prefer: EntryReturn,
        sender: Sender<'_>,
    ) -> FhirResult<Vec<u8>> {
        let planned = self.plan(&entries).await;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self
                .transaction_in(&mut tx, &entries, planned.as_ref(), true, prefer, sender)
                .await
                .map(|(response, _)| response);
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    /// The costly, pure part of a transaction done before its write
    /// transaction opens: identities and references resolved through a
    /// lookups-only transaction, references rewritten, resources checked and
    /// their index rows extracted. Only the lookups run again under the
    /// writer (`transaction_in`); when they find the same, this work is
    /// used as it is. None when planning fails: the write transaction then
    /// does everything itself and reports any error.
    ///
    /// SQLite only: its one writer makes every millisecond inside a write
    /// transaction a millisecond every other writer waits. PostgreSQL runs
    /// write transactions side by side, so there planning would only add
    /// the lookups' round trips (HL7 v2 ORU^R01 over MLLP: 62 -> 43/s).
    async fn plan(&self, entries: &[Entry]) -> Option<Planned> {
        if self.store.dialect() != crate::store::Dialect::Sqlite
            || !entries
                .iter()
                .any(|e| matches!(e.method, Method::Post | Method::Put))
        {
            return None;
        }
        let reading = self.store.commits_reading();
        let mut lookups = self.store.begin_lookups().await.ok()?;
        let resolution = self.resolve(&mut lookups, entries, None).await;
        let _ = lookups.rollback().await;
        let resolution = resolution.ok()?;
        let mut work: Vec<Entry> = entries.iter().map(Entry::clone_for_attempt).collect();
        apply_resolution(&mut work, &resolution).ok()?;
        let prepared = self.prepare_entries(&work).ok()?;
        Some(Planned {
            reading,
            resolution,
            entries: work,
            prepared,
        })
    }

    /// Checks and index rows of the resources that POST and PUT entries
    /// write (by position; None for other entries).
    fn prepare_entries(&self, entries: &[Entry]) -> FhirResult<Vec<Option<Prepared>>> {
        entries
            .iter()
            .map(|e| {
                let prepare = |rtype: &str, resource| {
                    self.prepare_write(rtype, resource)
                        .map_err(|err| at_entry(e.index, err))
                };
                let prepared = match (e.method, &e.resource, &e.assigned_id) {
                    (Method::Post, Some(resource), Some(_)) if !e.matched => {
                        Some(prepare(e.target.rtype(), resource.clone())?)
                    }
                    (Method::Put, Some(resource), Some(id)) => {
                        let mut resource = resource.clone();
                        resource.insert("id".into(), Value::String(id.clone()));
                        super::update::check_id(id).map_err(|err| at_entry(e.index, err))?;
                        Some(prepare(e.target.rtype(), resource)?)
                    }
                    _ => None,
                };
                Ok(prepared)
            })
            .collect::<FhirResult<Vec<_>>>()
    }

    async fn transaction_in(
        &self,
        tx: &mut WriteTx,
        entries: &[Entry],
        planned: Option<&Planned>,
        clean: bool,
        prefer: EntryReturn,
        sender: Sender<'_>,
    ) -> FhirResult<(Vec<u8>, bool)> {
        // Nothing committed since the lookups and nothing written yet in
        // this transaction: they would find the same again (HL7 v2 ADT^A01:
        // 11 of the 23 statements a message ran under SQLite's one writer).
        if let Some(p) = planned.filter(|p| clean && tx.unchanged_since(p.reading)) {
            let response = self
                .process_all(tx, &p.entries, &p.prepared, prefer, sender)
                .await?;
            return Ok((response, true));
        }
        let resolution = self
            .resolve(tx, entries, planned.map(|p| &p.resolution))
            .await?;
        match planned {
            Some(p) if p.resolution == resolution => {
                let response = self
                    .process_all(tx, &p.entries, &p.prepared, prefer, sender)
                    .await?;
                Ok((response, true))
            }
            _ => {
                let mut work: Vec<Entry> = entries.iter().map(Entry::clone_for_attempt).collect();
                apply_resolution(&mut work, &resolution)?;
                let prepared = self.prepare_entries(&work)?;
                let response = self
                    .process_all(tx, &work, &prepared, prefer, sender)
                    .await?;
                Ok((response, false))
            }
        }
    }

    /// Processes resolved entries in the spec's order and answers in the
    /// Bundle's order. `prepared` holds entries' planned writes (may be
    /// empty).
    async fn process_all(
        &self,
        tx: &mut WriteTx,
        entries: &[Entry],
        prepared: &[Option<Prepared>],
        prefer: EntryReturn,
        sender: Sender<'_>,
    ) -> FhirResult<Vec<u8>> {
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| (entries[i].method.phase(), i));
        let mut results: Vec<Option<EntryOut>> = vec![None; entries.len()];
        // New resources whose content is prepared (POSTs, and PUTs of ids
        // not stored yet) are written together, in a few statements, once
        // the deletes are done.
        let mut creates_done = false;
        for i in order {
            let e = &entries[i];
            if e.method.phase() >= 1 && !creates_done {
                let creates = self.new_resources(tx, entries, prepared).await?;
                self.create_entries(tx, entries, prepared, &creates, prefer, &mut results)
                    .await?;
                creates_done = true;
            }
            if results[i].is_some() {
                continue;
            }
            let ready = prepared.get(i).and_then(Option::as_ref);
            let out = if e.is_search() {
                self.search_entry(&mut Reader::Tx(&mut *tx), e, prefer, sender)
                    .await
            } else {
                self.process_entry(tx, e, ready, prefer).await
            }
            .map_err(|err| at_entry(e.index, err))?;
            results[i] = Some(out);
        }
        let results: Vec<EntryOut> = results
            .into_iter()
            .map(|r| r.expect("every entry processed"))
            .collect();
        Ok(bundle::render("transaction-response", &[], &results))
    }

    /// Positions of the entries that create a resource from prepared
    /// content: POSTs that matched nothing, and unconditional PUTs (without
    /// `ifMatch`) of ids that are not stored, live or deleted.
    async fn new_resources(
        &self,
        tx: &mut WriteTx,
        entries: &[Entry],
        prepared: &[Option<Prepared>],
    ) -> FhirResult<Vec<usize>> {
        let ready = |i: usize| prepared.get(i).is_some_and(Option::is_some);
        let mut creates: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].method == Method::Post && !entries[i].matched && ready(i))
            .collect();
        let puts: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let e = &entries[i];
                e.method == Method::Put
                    && e.if_match.is_none()
                    && e.assigned_id.is_some()
                    && ready(i)
            })
            .collect();
        let pair = |i: usize| {
            let e = &entries[i];
            let id = e.assigned_id.clone().expect("filtered on");
            (e.target.rtype().to_string(), id)
        };
        let pairs: Vec<(String, String)> = puts.iter().map(|&i| pair(i)).collect();
        let stored = tx.existing(self.tenant, &pairs).await?;
        creates.extend(puts.into_iter().filter(|&i| !stored.contains(&pair(i))));
        creates.sort_unstable();
        Ok(creates)
    }

    /// Writes the prepared creates at positions `creates` together.
    async fn create_entries(
        &self,
        tx: &mut WriteTx,
        entries: &[Entry],
        prepared: &[Option<Prepared>],
        creates: &[usize],
        prefer: EntryReturn,
        results: &mut [Option<EntryOut>],
    ) -> FhirResult<()> {
        let items: Vec<(&str, &str, &Prepared, &'static str)> = creates
            .iter()
            .map(|&i| {
                let e = &entries[i];
                let id = e.assigned_id.as_deref().expect("identity resolved");
                let p = prepared[i].as_ref().expect("prepared");
                let method = if e.method == Method::Put {
                    "PUT"
                } else {
                    "POST"
                };
                (e.target.rtype(), id, p, method)
            })
            .collect();
        let versions = self.create_many(tx, &items).await?;
        for (&i, v) in creates.iter().zip(versions) {
            let outcome = WriteOutcome {
                status: WriteStatus::Created,
                version: Some(v),
                warnings: prepared[i].as_ref().expect("prepared").warnings.clone(),
            };
            results[i] = Some(self.write_entry_out(&entries[i], outcome, prefer));
        }
        Ok(())
    }

    /// The lookups of a transaction: each entry's identity (new ids,
    /// matches of conditional writes), no two entries touching the same
    /// resource, and what `urn:uuid:` and conditional references resolve
    /// to. Nothing is rewritten here (`apply_resolution` does that). Ids
    /// made up at random are taken from `seed` when given, so that the same
    /// lookups give an equal resolution.
    async fn resolve(
        &self,
        tx: &mut WriteTx,
        entries: &[Entry],
        seed: Option<&Resolution>,
    ) -> FhirResult<Resolution> {
        let matches = self.prefetch_matches(tx, entries).await?;
        // 1. Fix identities: ids of creates, matches of conditional writes.
        let wanted: Vec<(String, String)> = entries
            .iter()
            .filter(|e| e.method == Method::Post)
            .filter_map(|e| urn_id(e).map(|id| (e.target.rtype().to_string(), id)))
            .collect();
        let taken = tx.existing(self.tenant, &wanted).await?;
        let mut resolution = Resolution::default();
        for (pos, e) in entries.iter().enumerate() {
            let fresh = seed
                .and_then(|s| s.ids.get(pos))
                .and_then(|(id, matched)| id.clone().filter(|_| !matched))
                .filter(|id| Some(id) != urn_id(e).as_ref());
            let identity = self
                .resolve_identity(tx, e, &matches, Some(&taken), fresh)
                .await
                .map_err(|err| at_entry(e.index, err))?;
            if let (Some(full_url), Some(id)) = (&e.full_url, &identity.0) {
                if matches!(e.method, Method::Post | Method::Put) {
                    resolution
                        .identities
                        .insert(full_url.clone(), format!("{}/{id}", e.target.rtype()));
                }
            }
            resolution.ids.push(identity);
        }
        // 2. No two entries may touch the same resource.
        let mut touched: HashMap<String, usize> = HashMap::new();
        for (e, (assigned, _)) in entries.iter().zip(&resolution.ids) {
            let key = match (&e.target, assigned) {
                (Target::Instance(t, id), _) | (Target::Version(t, id, _), _) => {
                    format!("{t}/{id}")
                }
                (t, Some(id)) => format!("{}/{id}", t.rtype()),
                _ => continue,
            };
            if let Some(first) = touched.insert(key.clone(), e.index) {
                return Err(FhirError::invalid(format!(
                    "Bundle.entry[{first}] and Bundle.entry[{}] both touch {key}; a transaction may touch a resource once",
                    e.index
                )));
            }
        }
        // 3. References to resources loaded before, then conditional
        // references.
        self.resolve_stored_uuids(tx, entries, &mut resolution.identities)
            .await?;
        for e in entries {
            if let Some(resource) = &e.resource {
                self.resolve_conditional_references(
                    tx,
                    resource,
                    &matches,
                    &resolution.identities,
                    &mut resolution.conditionals,
                )
                .await
                .map_err(|err| at_entry(e.index, err))?;
            }
        }
        Ok(resolution)
    }

    /// Looks up every conditional criteria of `entries` (`ifNoneExist`,
    /// conditional updates and patches, conditional references) in one
    /// statement; a write's criteria that match nothing are then locked
    /// (PostgreSQL) and looked up again, all together
    /// (`WriteTx::find_each_locked`, as `match_one` for one).
    /// Criteria that do not parse are left out; their entry reports them.
    async fn prefetch_matches(&self, tx: &mut WriteTx, entries: &[Entry]) -> FhirResult<Matches> {
        // (lock key, type, criteria, whether a write depends on "no match")
        let mut wanted: Vec<(String, String, Criteria, bool)> = Vec::new();
        // The criteria as written, and their position in `wanted`.
        let mut written: HashMap<String, usize> = HashMap::new();
        let mut add = |rtype: &str, query: &str, write: bool| {
            let raw = format!("{rtype}?{query}");
            if let Some(&i) = written.get(&raw) {
                wanted[i].3 |= write;
                return;
            }
            let Ok(criteria) = check_type(rtype).and_then(|()| self.criteria(rtype, query)) else {
                return;
            };
            let key = criteria.lock_key(self.tenant, rtype);
            let i = match wanted.iter().position(|w| w.0 == key) {
                Some(i) => i,
                None => {
                    wanted.push((key, rtype.to_string(), criteria, false));
                    wanted.len() - 1
                }
            };
            wanted[i].3 |= write;
            written.insert(raw, i);
        };
        for e in entries {
            match (e.method, &e.target, &e.if_none_exist) {
                (Method::Post, Target::Type(rtype), Some(query)) => add(rtype, query, true),
                (Method::Put | Method::Patch, Target::Conditional(rtype, query), _) => {
                    add(rtype, query, true)
                }
                _ => {}
            }
            if let Some(resource) = &e.resource {
                visit_references(resource, &mut |r| {
                    if let Some((rtype, query)) = r.split_once('?').filter(|_| !r.contains("://")) {
                        add(rtype, query, false);
                    }
                });
            }
        }
        let lookups: Vec<Lookup<'_>> = wanted
            .iter()
            .map(|(_, rtype, criteria, _)| Lookup {
                rtype,
                filters: &criteria.filters,
                limit: 2,
            })
            .collect();
        let keys: Vec<Option<String>> = wanted
            .iter()
            .map(|(key, _, _, write)| write.then(|| key.clone()))
            .collect();
        let found = tx.find_each_locked(self.tenant, &lookups, &keys).await?;
        Ok(written
            .into_iter()
            .map(|(raw, i)| (raw, found[i].clone()))
            .collect())
    }

    /// The one match of the criteria `query` on `rtype` (None: none), from
    /// `matches` when they were looked up there.
    async fn matched(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        query: &str,
        matches: &Matches,
    ) -> FhirResult<Option<String>> {
        match matches.get(&format!("{rtype}?{query}")) {
            Some(ids) => only_match(ids.clone(), rtype),
            None => {
                let criteria = self.criteria(rtype, query)?;
                self.match_one(tx, rtype, &criteria).await
            }
        }
    }

    /// For creates: the new id, or the match of `ifNoneExist`. For
    /// conditional updates and deletes: the match. Returns the id and
    /// whether a conditional create matched.
    ///
    /// `taken` lists the `(type, id)` pairs, among those that `urn:uuid:` full
    /// URLs ask for, that already exist (looked up for the whole Bundle at
    /// once); None looks each up on its own. `fresh` is the id to give
    /// where a new one is made up (None: a random UUID).
    async fn resolve_identity(
        &self,
        tx: &mut WriteTx,
        e: &Entry,
        matches: &Matches,
        taken: Option<&HashSet<(String, String)>>,
        fresh: Option<String>,
    ) -> FhirResult<(Option<String>, bool)> {
        let new_id = || fresh.unwrap_or_else(crate::fhir::meta::new_id);
        Ok(match (e.method, &e.target) {
            (Method::Post, Target::Type(rtype)) => {
                if let Some(query) = &e.if_none_exist {
                    if let Some(found) = self.matched(tx, rtype, query, matches).await? {
                        return Ok((Some(found), true));
                    }
                }
                // A `urn:uuid:` full URL gives the new resource that uuid as
                // its id (unless taken), so that later Bundles can refer to
                // it by the same urn (see `resolve_stored_uuids`).
                let is_taken = match (urn_id(e), taken) {
                    (Some(id), Some(taken)) => {
                        let t = taken.contains(&(rtype.clone(), id.clone()));
                        Some((id, t))
                    }
                    (Some(id), None) => {
                        let t = tx.current(self.tenant, rtype, &id).await?.is_some();
                        Some((id, t))
                    }
                    (None, _) => None,
                };
                match is_taken {
                    Some((id, false)) => (Some(id), false),
                    _ => (Some(new_id()), false),
                }
            }
            (Method::Put | Method::Patch, Target::Conditional(rtype, query)) => {
                let found = self.matched(tx, rtype, query, matches).await?;
                let body_id = e
                    .resource
                    .as_ref()
                    .and_then(|r| r.get("id"))
                    .and_then(Value::as_str);
                let id = match (found, body_id, e.method) {
                    (Some(found), Some(b), _) if b != found => {
                        return Err(FhirError::invalid(format!(
                            "the criteria match {rtype}/{found}, but the resource id is `{b}`"
                        )))
                    }
                    (Some(found), _, _) => found,
                    (None, _, Method::Patch) => {
                        return Err(FhirError::not_found(format!(
                            "no {rtype} matches the criteria"
                        )))
                    }
                    (None, Some(b), _) => b.to_string(),
                    (None, None, _) => new_id(),
                };
                (Some(id), false)
            }
            (Method::Put, Target::Instance(_, id)) => (Some(id.clone()), false),
            _ => (None, false),
        })
    }

    /// `urn:uuid:U` references that name no entry of this Bundle resolve to
    /// the stored resource with id `U`, when exactly one exists: how a
    /// Synthea patient Bundle reaches the Organizations and Practitioners of
    /// the Bundles loaded before it.
    async fn resolve_stored_uuids(
        &self,
        tx: &mut WriteTx,
        entries: &[Entry],
        identities: &mut HashMap<String, String>,
    ) -> FhirResult<()> {
        let mut unresolved: Vec<(usize, String)> = Vec::new();
        for e in entries {
            if let Some(resource) = &e.resource {
                visit_references(resource, &mut |r| {
                    if r.starts_with("urn:uuid:") && !identities.contains_key(r) {
                        unresolved.push((e.index, r.to_string()));
                    }
                });
            }
        }
        for (index, reference) in unresolved {
            if identities.contains_key(&reference) {
                continue;
            }
            let id = reference["urn:uuid:".len()..].to_ascii_lowercase();
            let mut types = tx.types_with_id(self.tenant, &id).await?;
            if types.len() == 1 {
                identities.insert(reference, format!("{}/{id}", types.pop().expect("one")));
            } else {
                return Err(at_entry(
                    index,
                    FhirError::invalid(format!(
                        "reference `{reference}` names no entry of this transaction and no stored resource"
                    )),
                ));
            }
        }
        Ok(())
    }

    /// Resolves the `Type?criteria` references of `resource` (those that
    /// are not full URLs of entries) to the one matching resource each,
    /// adding them to `resolved`.
    async fn resolve_conditional_references(
        &self,
        tx: &mut WriteTx,
        resource: &Map<String, Value>,
        matches: &Matches,
        identities: &HashMap<String, String>,
        resolved: &mut HashMap<String, String>,
    ) -> FhirResult<()> {
        let mut conditional_refs: Vec<String> = Vec::new();
        visit_references(resource, &mut |r| {
            if r.contains('?')
                && !r.contains("://")
                && !identities.contains_key(r)
                && !resolved.contains_key(r)
            {
                conditional_refs.push(r.to_string());
            }
        });
        for r in conditional_refs {
            if resolved.contains_key(&r) {
                continue;
            }
            let (rtype, query) = r.split_once('?').expect("contains ?");
            check_type(rtype)?;
            let mut found = match matches.get(&r) {
                Some(ids) => ids.clone(),
                None => {
                    let criteria = self.criteria(rtype, query)?;
                    tx.find(self.tenant, rtype, &criteria.filters, 2).await?
                }
            };
            match found.len() {
                0 => {
                    return Err(FhirError::invalid(format!(
                        "conditional reference `{r}` matches no resource"
                    )))
                }
                1 => {
                    resolved.insert(r.clone(), format!("{rtype}/{}", found.pop().expect("one")));
                }
                _ => {
                    return Err(FhirError::multiple_matches(format!(
                        "conditional reference `{r}` matches more than one resource"
                    )))
                }
            }
        }
        Ok(())
    }

    async fn process_entry(
        &self,
        tx: &mut WriteTx,
        e: &Entry,
        ready: Option<&Prepared>,
        prefer: EntryReturn,
    ) -> FhirResult<EntryOut> {
        let rtype = e.target.rtype();
        let outcome: WriteOutcome = match (e.method, &e.target) {
            (Method::Post, _) => {
                let id = e.assigned_id.as_deref().expect("identity resolved");
                if e.matched {
                    let found = tx.read(self.tenant, rtype, id).await?;
                    WriteOutcome {
                        status: WriteStatus::Unchanged,
                        version: found.map(|v| VersionOut::stored(rtype, id, v)),
                        warnings: Vec::new(),
                    }
                } else {
                    let made;
                    let prepared = match ready {
                        Some(p) => p,
                        None => {
                            let resource = e.resource.clone().expect("checked");
                            made = self.prepare_write(rtype, resource)?;
                            &made
                        }
                    };
                    let v = self
                        .write_resource(tx, rtype, id, None, prepared, "POST")
                        .await?;
                    WriteOutcome {
                        status: WriteStatus::Created,
                        version: Some(v),
                        warnings: prepared.warnings.clone(),
                    }
                }
            }
            (Method::Put, _) => {
                let id = e.assigned_id.as_deref().expect("identity resolved");
                let made;
                let prepared = match ready {
                    Some(p) => p,
                    None => {
                        let mut resource = e.resource.clone().expect("checked");
                        resource.insert("id".into(), Value::String(id.to_string()));
                        super::update::check_id(id)?;
                        made = self.prepare_write(rtype, resource)?;
                        &made
                    }
                };
                self.update_in(tx, rtype, id, prepared, e.if_match).await?
            }
            (Method::Patch, target) => {
                let id = match target {
                    Target::Instance(_, id) => id.clone(),
                    _ => e.assigned_id.clone().expect("identity resolved"),
                };
                let patch = entry_patch(e.resource.as_ref().expect("checked"))?;
                self.patch_in(tx, rtype, &id, &patch, e.if_match).await?
            }
            (Method::Delete, Target::Instance(_, id)) => {
                self.delete_in(tx, rtype, id, e.if_match).await?
            }
            (Method::Delete, Target::Conditional(_, query)) => {
                let criteria = self.criteria(rtype, query)?;
                tx.lock_key(&criteria.lock_key(self.tenant, rtype)).await?;
                let max = i64::from(self.max_conditional_delete);
                let ids = tx
                    .find(self.tenant, rtype, &criteria.filters, max + 1)
                    .await?;
                if ids.len() as i64 > max {
                    return Err(FhirError::multiple_matches(format!(
                        "the criteria match more than {max} {rtype} resources"
                    )));
                }
                for id in &ids {
                    self.delete_in(tx, rtype, id, None).await?;
                }
                WriteOutcome {
                    status: WriteStatus::Updated,
                    version: None,
                    warnings: Vec::new(),
                }
            }
            (Method::Get | Method::Head, target) => {
                return self.read_entry(tx, e, target, prefer).await
            }
            _ => {
                return Err(FhirError::invalid(
                    "the request url does not fit the method",
                ))
            }
        };
        Ok(self.write_entry_out(e, outcome, prefer))
    }

    /// A search entry: the `searchset` Bundle of the same search on its
    /// own (through `reader`), as the entry's resource (not for HEAD, nor
    /// under `Prefer: return=minimal`, as for reads).
    async fn search_entry(
        &self,
        reader: &mut Reader<'_>,
        e: &Entry,
        prefer: EntryReturn,
        sender: Sender<'_>,
    ) -> FhirResult<EntryOut> {
        let (scope, query) = match &e.target {
            Target::Type(t) => (SearchScope::Type(t.clone()), ""),
            Target::Conditional(t, q) => (SearchScope::Type(t.clone()), q.as_str()),
            Target::System(q) => (SearchScope::System, q.as_str()),
            Target::Compartment(c, id, t, q) => (
                SearchScope::Compartment {
                    compartment: c.clone(),
                    id: id.clone(),
                    rtype: t.clone(),
                },
                q.as_str(),
            ),
            _ => return Err(FhirError::invalid("the entry is not a search")),
        };
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let bundle = self
            .search_in(reader, &scope, &params, sender.strict, sender.access)
            .await?;
        let include = e.method == Method::Get && prefer != EntryReturn::Minimal;
        Ok(EntryOut {
            resource: include.then(|| bundle.into()),
            response: Some(EntryResponse {
                status: status_line(200),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn read_entry(
        &self,
        tx: &mut WriteTx,
        e: &Entry,
        target: &Target,
        prefer: EntryReturn,
    ) -> FhirResult<EntryOut> {
        let rtype = target.rtype();
        let found = match target {
            Target::Instance(_, id) => tx
                .read(self.tenant, rtype, id)
                .await?
                .map(|v| VersionOut::stored(rtype, id, v)),
            Target::Version(_, id, vid) => {
                let number = super::parse_version(vid)
                    .ok_or_else(|| FhirError::not_found(format!("`{vid}` is not a version id")))?;
                tx.vread(self.tenant, rtype, id, number)
                    .await?
                    .map(|v| VersionOut::stored(rtype, id, v))
            }
            _ => None,
        };
        let v = match found {
            None => {
                return Err(FhirError::not_found(format!(
                    "{} is not known",
                    describe(target)
                )))
            }
            Some(v) if v.body.is_none() => {
                return Err(FhirError::gone(
                    format!("{} was deleted", describe(target)),
                    v.version,
                ))
            }
            Some(v) => v,
        };
        let not_modified = e
            .if_none_match
            .as_deref()
            .map(|t| t.trim() == "*" || parse_etag(t) == Some(v.version))
            .or_else(|| {
                e.if_modified_since
                    .as_deref()
                    .and_then(range_micros)
                    .map(|(since, _)| v.last_updated / 1_000_000 <= since / 1_000_000)
            })
            .unwrap_or(false);
        let status = if not_modified { 304 } else { 200 };
        let include = status == 200 && e.method == Method::Get && prefer != EntryReturn::Minimal;
        Ok(EntryOut {
            full_url: Some(format!("{}/{rtype}/{}", self.base_url, v.id)),
            resource: if include { v.body.clone() } else { None },
            request: None,
            response: Some(EntryResponse {
                status: status_line(status),
                location: None,
                version: Some(v.version),
                last_modified: Some(v.last_updated),
                outcome: None,
            }),
            search_mode: None,
            search_extension: Vec::new(),
        })
    }

    fn write_entry_out(&self, e: &Entry, outcome: WriteOutcome, prefer: EntryReturn) -> EntryOut {
        let status = match (e.method, outcome.status) {
            (_, WriteStatus::Created) => 201,
            (Method::Delete, _) if prefer == EntryReturn::Minimal => 204,
            _ => 200,
        };
        let Some(v) = outcome.version else {
            return EntryOut {
                response: Some(EntryResponse {
                    status: status_line(status),
                    ..Default::default()
                }),
                ..Default::default()
            };
        };
        // Warnings ride in `response.outcome` whatever the preference.
        let mut issues = outcome.warnings.clone();
        let resource = match prefer {
            EntryReturn::Representation => v.body.clone(),
            EntryReturn::Minimal => None,
            EntryReturn::OperationOutcome => {
                issues.insert(
                    0,
                    crate::fhir::outcome::Issue::new(
                        crate::fhir::outcome::Severity::Information,
                        IssueType::Informational,
                        format!("{}/{} version {}", v.rtype, v.id, v.version),
                    ),
                );
                None
            }
        };
        let outcome_json = (!issues.is_empty()).then(|| operation_outcome(&issues));
        EntryOut {
            full_url: v
                .body
                .as_ref()
                .map(|_| format!("{}/{}/{}", self.base_url, v.rtype, v.id)),
            resource,
            request: None,
            response: Some(EntryResponse {
                status: status_line(status),
                location: Some(format!("{}/{}/_history/{}", v.rtype, v.id, v.version)),
                version: Some(v.version),
                last_modified: Some(v.last_updated),
                outcome: outcome_json,
            }),
            search_mode: None,
            search_extension: Vec::new(),
        }
    }

    /// Each entry on its own, in its own database transaction.
    async fn batch(&self, entries: Vec<Value>, prefer: EntryReturn, sender: Sender<'_>) -> Vec<u8> {
        let mut results = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            let result = match self.parse_entry(i, entry, true) {
                Ok(e) => match self.authorize_entry(sender.access, &e).await {
                    Ok(()) if e.is_search() => {
                        let mut reader = Reader::Pool(&self.store);
                        self.search_entry(&mut reader, &e, prefer, sender).await
                    }
                    Ok(()) => self.batch_entry(e, prefer).await,
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            };
            results.push(match result {
                Ok(out) => out,
                Err(err) => EntryOut {
                    response: Some(EntryResponse {
                        status: status_line(err.status),
                        version: err.version,
                        outcome: Some(operation_outcome(&at_entry(i, err).issues)),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            });
        }
        bundle::render("batch-response", &[], &results)
    }

    async fn batch_entry(&self, entry: Entry, prefer: EntryReturn) -> FhirResult<EntryOut> {
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let mut e = entry.clone_for_attempt();
            let result = async {
                let matches = self
                    .prefetch_matches(&mut tx, std::slice::from_ref(&e))
                    .await?;
                let (id, matched) = self
                    .resolve_identity(&mut tx, &e, &matches, None, None)
                    .await?;
                let mut conditionals = HashMap::new();
                if let Some(resource) = &e.resource {
                    self.resolve_conditional_references(
                        &mut tx,
                        resource,
                        &matches,
                        &HashMap::new(),
                        &mut conditionals,
                    )
                    .await?;
                }
                e.assigned_id = id;
                e.matched = matched;
                if let Some(resource) = e.resource.as_mut() {
                    rewrite_references::<FhirError>(resource, &mut |r| {
                        Ok(conditionals.get(r).cloned())
                    })?;
                }
                self.process_entry(&mut tx, &e, None, prefer).await
            }
            .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }
}

impl Fhir {
    /// Checks one entry against the caller's scopes, as the same request on
    /// its own would be checked.
    async fn authorize_entry(&self, access: &crate::auth::Access, e: &Entry) -> FhirResult<()> {
        use crate::auth::scopes::Perm;
        if access.unrestricted {
            return Ok(());
        }
        let rtype = e.target.rtype();
        let resource = e.resource.as_ref().map(|r| Value::Object(r.clone()));
        match (&e.method, &e.target) {
            // Searches: the search checks the reach of every type it reads.
            (
                Method::Get | Method::Head,
                Target::Type(_) | Target::Conditional(..) | Target::Compartment(..),
            ) => self.permit(access, Perm::Search, rtype).map(|_| ()),
            (Method::Get | Method::Head, Target::System(_)) => Ok(()),
            (_, Target::Conditional(..)) => {
                let perm = match e.method {
                    Method::Delete => Perm::Delete,
                    Method::Get | Method::Head => Perm::Search,
                    _ => Perm::Update,
                };
                self.permit_all(access, perm, rtype, "a conditional entry")
            }
            (Method::Post, _) => {
                if e.if_none_exist.is_some() {
                    self.permit_all(access, Perm::Create, rtype, "a conditional create")?;
                }
                self.permit_write(access, Perm::Create, rtype, None, resource.as_ref())
                    .await
            }
            (Method::Put, Target::Instance(_, id)) => {
                self.permit_write(access, Perm::Update, rtype, Some(id), resource.as_ref())
                    .await
            }
            (Method::Patch, Target::Instance(_, id)) => {
                let patch = match &e.resource {
                    Some(resource) => entry_patch(resource)?,
                    None => {
                        return Err(FhirError::invalid(
                            "a PATCH entry needs a Parameters (FHIRPath Patch) or a Binary (JSON Patch)",
                        ))
                    }
                };
                self.permit_patch(access, rtype, id, &patch).await
            }
            (Method::Delete, Target::Instance(_, id)) => {
                self.permit_write(access, Perm::Delete, rtype, Some(id), None)
                    .await
            }
            (Method::Get | Method::Head, _) => self.permit(access, Perm::Read, rtype).map(|_| ()),
            _ => self.permit_all(access, Perm::Update, rtype, "this entry"),
        }
    }
}

impl Entry {
    /// A GET or HEAD of a search URL.
    fn is_search(&self) -> bool {
        matches!(self.method, Method::Get | Method::Head)
            && matches!(
                self.target,
                Target::Type(_)
                    | Target::Conditional(..)
                    | Target::System(_)
                    | Target::Compartment(..)
            )
    }

    fn clone_for_attempt(&self) -> Entry {
        Entry {
            index: self.index,
            method: self.method,
            target: self.target.clone(),
            full_url: self.full_url.clone(),
            resource: self.resource.clone(),
            if_none_exist: self.if_none_exist.clone(),
            if_match: self.if_match,
            if_none_match: self.if_none_match.clone(),
            if_modified_since: self.if_modified_since.clone(),
            assigned_id: None,
            matched: false,
        }
    }
}

/// What the lookups of a transaction found (`Fhir::resolve`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Resolution {
    /// Per entry, by position: its id (None for entries that name none)
    /// and whether a conditional create matched a stored resource.
    ids: Vec<(Option<String>, bool)>,
    /// Full URLs of entries and `urn:uuid:` references to resources loaded
    /// before → `Type/id`.
    identities: HashMap<String, String>,
    /// Conditional references (`Type?criteria`) → `Type/id`.
    conditionals: HashMap<String, String>,
}

/// A transaction Bundle read and planned, to run in a write transaction
/// its caller owns (`Fhir::prepare_transaction`).
pub struct PreparedBundle {
    entries: Vec<Entry>,
    planned: Option<Planned>,
}

impl PreparedBundle {
    /// The versions the planned transaction is expected to write, with
    /// their checked content: POSTs that matched nothing (version 1) and
    /// PUTs without `ifMatch` (the version after the one `current` knows,
    /// else 1). A guess, to be checked against what the transaction wrote;
    /// None when there is no plan or an entry writes otherwise (PATCH,
    /// DELETE, a PUT with `ifMatch`).
    pub fn planned_writes(
        &self,
        current: impl Fn(&str, &str) -> Option<i64>,
    ) -> Option<Vec<(&str, &str, i64, &Prepared)>> {
        let planned = self.planned.as_ref()?;
        let mut writes = Vec::new();
        for (e, prepared) in planned.entries.iter().zip(&planned.prepared) {
            if e.is_search() {
                continue;
            }
            let rtype = e.target.rtype();
            match e.method {
                Method::Get | Method::Head => {}
                Method::Post if e.matched => {}
                Method::Post => {
                    writes.push((rtype, e.assigned_id.as_deref()?, 1, prepared.as_ref()?));
                }
                Method::Put if e.if_match.is_none() => {
                    let id = e.assigned_id.as_deref()?;
                    let version = current(rtype, id).map_or(1, |v| v + 1);
                    writes.push((rtype, id, version, prepared.as_ref()?));
                }
                _ => return None,
            }
        }
        Some(writes)
    }
}

/// A transaction's entries resolved and prepared before its write
/// transaction (`Fhir::plan`).
struct Planned {
    /// This process's commits before the lookups (`Store::commits_reading`).
    reading: Option<u64>,
    resolution: Resolution,
    /// The entries with ids fixed and references rewritten.
    entries: Vec<Entry>,
    /// Per entry, by position: the checked resource and index rows of a
    /// POST or PUT.
    prepared: Vec<Option<Prepared>>,
}

/// Fixes each entry's identity and rewrites its references as `r` says.
fn apply_resolution(entries: &mut [Entry], r: &Resolution) -> FhirResult<()> {
    for (e, (id, matched)) in entries.iter_mut().zip(&r.ids) {
        e.assigned_id = id.clone();
        e.matched = *matched;
        let index = e.index;
        if let Some(resource) = e.resource.as_mut() {
            let mut rewrite = |reference: &str| -> FhirResult<Option<String>> {
                if let Some(local) = r.identities.get(reference) {
                    return Ok(Some(local.clone()));
                }
                if let Some(found) = r.conditionals.get(reference) {
                    return Ok(Some(found.clone()));
                }
                if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
                    return Err(FhirError::invalid(format!(
                        "reference `{reference}` names no entry of this transaction and no stored resource"
                    )));
                }
                Ok(None)
            };
            rewrite_references(resource, &mut rewrite).map_err(|err| at_entry(index, err))?;
        }
    }
    Ok(())
}

/// The id a `urn:uuid:` full URL asks for (lower case), if it is a valid id.
fn urn_id(e: &Entry) -> Option<String> {
    e.full_url
        .as_deref()
        .and_then(|u| u.strip_prefix("urn:uuid:"))
        .filter(|u| crate::fhir::primitive::is_id(u))
        .map(str::to_ascii_lowercase)
}

/// Validates a batch entry's resource, naming paths from the Bundle.
fn validate_entry_resource(
    index: usize,
    resource: Map<String, Value>,
) -> FhirResult<Map<String, Value>> {
    let rtype = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    input::prepare(&rtype, Value::Object(resource)).map_err(|mut err| {
        for issue in &mut err.issues {
            if let Some(expr) = &issue.expression {
                let rest = expr.strip_prefix(rtype.as_str()).unwrap_or(expr);
                issue.expression = Some(format!("Bundle.entry[{index}].resource{rest}"));
            }
        }
        err
    })
}

fn describe(target: &Target) -> String {
    match target {
        Target::Instance(t, id) => format!("{t}/{id}"),
        Target::Version(t, id, v) => format!("{t}/{id}/_history/{v}"),
        Target::Type(t) => t.clone(),
        Target::Conditional(t, q) => format!("{t}?{q}"),
        Target::System(q) => format!("?{q}"),
        Target::Compartment(c, id, t, q) if q.is_empty() => format!("{c}/{id}/{t}"),
        Target::Compartment(c, id, t, q) => format!("{c}/{id}/{t}?{q}"),
    }
}

/// A PATCH entry's resource: a Parameters holding a FHIRPath Patch, or a
/// Binary holding a JSON Patch document.
fn entry_patch(resource: &Map<String, Value>) -> FhirResult<super::patch::Patch> {
    use base64::Engine;
    let rtype = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if rtype == "Parameters" {
        return super::patch::parse_fhirpath_patch(&Value::Object(resource.clone()));
    }
    let content_type = resource
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if rtype != "Binary" || content_type != "application/json-patch+json" {
        return Err(FhirError::invalid(
            "a PATCH entry takes a Parameters (FHIRPath Patch) or a Binary with contentType application/json-patch+json",
        ));
    }
    let data = resource
        .get("data")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| FhirError::invalid(format!("Binary.data is not base64: {e}")))?;
    super::patch::parse_json_patch(&bytes)
}
