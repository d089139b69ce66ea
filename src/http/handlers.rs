//! One thin handler per REST interaction: read the request, call the service,
//! render the answer. No FHIR rules and no SQL here.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{ETAG, LAST_MODIFIED};
use http::StatusCode;

use super::request::{parse_etag, FhirRequest, Return};
use super::response::{self, error, fhir_body, version_headers};
use super::App;
use crate::auth::scopes::Perm;
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::{format_http_date, parse_http_date};
use crate::fhir::outcome::{information, operation_outcome, Issue, IssueType, Severity};
use crate::fhir::summary::Summary;
use crate::service::patch::{parse_fhirpath_patch, parse_json_patch, Patch};
use crate::service::search::{is_strict, SearchScope};
use crate::service::transaction::EntryReturn;
use crate::service::{VersionOut, WriteOutcome, WriteStatus};
use crate::store::HistoryScope;

type AppState = State<Arc<App>>;

/// Renders a service result, or its error as an OperationOutcome.
fn reply(req: &FhirRequest, result: FhirResult<Response>) -> Response {
    result.unwrap_or_else(|err| error(err, req.shape.format))
}

/// 304 when `If-None-Match` or `If-Modified-Since` says the client is current.
fn not_modified(req: &FhirRequest, v: &VersionOut) -> bool {
    if let Some(tags) = req.header("if-none-match") {
        return tags
            .split(',')
            .any(|t| t.trim() == "*" || parse_etag(t) == Some(v.version));
    }
    if let Some(since) = req.header("if-modified-since").and_then(parse_http_date) {
        // HTTP dates have whole seconds.
        return v.last_updated / 1_000_000 <= since / 1_000_000;
    }
    false
}

fn read_response(req: &FhirRequest, v: &VersionOut) -> Response {
    if not_modified(req, v) {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
            .headers_mut()
            .insert(ETAG, response::etag(v.version));
        response.headers_mut().insert(
            LAST_MODIFIED,
            format_http_date(v.last_updated)
                .parse()
                .expect("valid header"),
        );
        return response;
    }
    response::resource(StatusCode::OK, v, &req.shape)
}

fn check_read_shape(req: &FhirRequest) -> FhirResult<()> {
    if req.shape.summary == Some(Summary::Count) {
        return Err(FhirError::invalid(
            "_summary=count applies to searches, not reads",
        ));
    }
    Ok(())
}

pub async fn read(
    State(app): AppState,
    Path((rtype, id)): Path<(String, String)>,
    req: FhirRequest,
) -> Response {
    if id == "$everything" {
        return everything(&app, &req, &rtype, None, None).await;
    }
    if id.starts_with('$') {
        return terminology_operation(&app, &req, &rtype, None, &id, None).await;
    }
    let result = async {
        check_read_shape(&req)?;
        let access = req.access()?;
        app.fhir.permit(access, Perm::Read, &rtype)?;
        let v = app.fhir.read(&rtype, &id).await?;
        app.fhir.ensure_visible(access, &v).await?;
        app.fhir.note_read(&v);
        Ok(read_response(&req, &v))
    }
    .await;
    reply(&req, result)
}

pub async fn vread(
    State(app): AppState,
    Path((rtype, id, vid)): Path<(String, String, String)>,
    req: FhirRequest,
) -> Response {
    let result = async {
        check_read_shape(&req)?;
        let access = req.access()?;
        app.fhir.permit(access, Perm::Read, &rtype)?;
        let v = app.fhir.vread(&rtype, &id, &vid).await?;
        app.fhir.ensure_visible(access, &v).await?;
        app.fhir.note_read(&v);
        Ok(read_response(&req, &v))
    }
    .await;
    reply(&req, result)
}

/// The answer to a write, shaped by `Prefer: return=`.
fn write_response(app: &App, req: &FhirRequest, outcome: WriteOutcome) -> Response {
    let status = match outcome.status {
        WriteStatus::Created => StatusCode::CREATED,
        WriteStatus::Updated | WriteStatus::Unchanged => StatusCode::OK,
    };
    let Some(v) = outcome.version else {
        return fhir_body(status, req.shape.format, Bytes::new());
    };
    let location = matches!(
        outcome.status,
        WriteStatus::Created | WriteStatus::Unchanged
    )
    .then_some(app.fhir.base_url.as_str());
    let mut response = match req.prefer_return() {
        Return::Minimal => {
            let mut r = Response::new(axum::body::Body::empty());
            *r.status_mut() = status;
            r
        }
        Return::OperationOutcome => {
            let verb = match outcome.status {
                WriteStatus::Created => "created",
                WriteStatus::Updated => "updated",
                WriteStatus::Unchanged => "matched (nothing written)",
            };
            let mut issues = vec![Issue::new(
                Severity::Information,
                IssueType::Informational,
                format!("{}/{} {verb}; version {}", v.rtype, v.id, v.version),
            )];
            issues.extend(outcome.warnings.iter().cloned());
            let oo = operation_outcome(&issues);
            match req.shape.render_value(&oo) {
                Ok(body) => fhir_body(status, req.shape.format, body),
                Err(err) => return error(err, req.shape.format),
            }
        }
        Return::Representation => response::resource(status, &v, &req.shape),
    };
    version_headers(&mut response, &v, location);
    response
}

pub async fn create(
    State(app): AppState,
    Path(rtype): Path<String>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    if rtype == "_search" {
        return search(&app, &req, SearchScope::System, Some(&body)).await;
    }
    if rtype.starts_with('$') {
        return system_operation(&app, &req, &rtype, true).await;
    }
    let result = async {
        let resource = req.resource_body(&body)?;
        let access = req.access()?;
        if req.header("if-none-exist").is_some() {
            app.fhir
                .permit_all(access, Perm::Create, &rtype, "a conditional create")?;
        }
        app.fhir
            .permit_write(access, Perm::Create, &rtype, None, Some(&resource))
            .await?;
        let outcome = app
            .fhir
            .create(&rtype, resource, req.header("if-none-exist"))
            .await?;
        Ok(write_response(&app, &req, outcome))
    }
    .await;
    reply(&req, result)
}

pub async fn update(
    State(app): AppState,
    Path((rtype, id)): Path<(String, String)>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    let result = async {
        let resource = req.resource_body(&body)?;
        app.fhir
            .permit_write(
                req.access()?,
                Perm::Update,
                &rtype,
                Some(&id),
                Some(&resource),
            )
            .await?;
        let outcome = app
            .fhir
            .update(&rtype, &id, resource, req.if_match()?)
            .await?;
        Ok(write_response(&app, &req, outcome))
    }
    .await;
    reply(&req, result)
}

pub async fn conditional_update(
    State(app): AppState,
    Path(rtype): Path<String>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    let result = async {
        let resource = req.resource_body(&body)?;
        app.fhir
            .permit_all(req.access()?, Perm::Update, &rtype, "a conditional update")?;
        let outcome = app
            .fhir
            .conditional_update(&rtype, &req.raw_query, resource, req.if_match()?)
            .await?;
        Ok(write_response(&app, &req, outcome))
    }
    .await;
    reply(&req, result)
}

/// A PATCH body by its Content-Type: JSON Patch
/// (`application/json-patch+json`), or FHIRPath Patch (a Parameters resource
/// in `application/fhir+json` or `application/fhir+xml`).
fn patch_body(req: &FhirRequest, body: &[u8]) -> FhirResult<Patch> {
    match super::negotiate::body_kind(&req.headers, body)? {
        super::negotiate::BodyKind::JsonPatch => parse_json_patch(body),
        super::negotiate::BodyKind::Fhir(format) => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if format == super::negotiate::Format::Json && first == Some(&b'[') {
                return Err(FhirError::unsupported_media_type(
                    "the body is a JSON array: send a JSON Patch as Content-Type application/json-patch+json (a FHIR content type means FHIRPath Patch, a Parameters resource)",
                ));
            }
            let parameters = req.resource_body(body)?;
            if parameters.get("resourceType").and_then(|t| t.as_str()) != Some("Parameters") {
                return Err(FhirError::invalid(
                    "a FHIRPath Patch body is a Parameters resource (JSON Patch takes Content-Type application/json-patch+json)",
                ));
            }
            parse_fhirpath_patch(&parameters)
        }
    }
}

pub async fn patch(
    State(app): AppState,
    Path((rtype, id)): Path<(String, String)>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    let result = async {
        let patch = patch_body(&req, &body)?;
        app.fhir
            .permit_patch(req.access()?, &rtype, &id, &patch)
            .await?;
        let outcome = app.fhir.patch(&rtype, &id, &patch, req.if_match()?).await?;
        Ok(write_response(&app, &req, outcome))
    }
    .await;
    reply(&req, result)
}

pub async fn conditional_patch(
    State(app): AppState,
    Path(rtype): Path<String>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    let result = async {
        let patch = patch_body(&req, &body)?;
        app.fhir
            .permit_all(req.access()?, Perm::Update, &rtype, "a conditional patch")?;
        let outcome = app
            .fhir
            .conditional_patch(&rtype, &req.raw_query, &patch, req.if_match()?)
            .await?;
        Ok(write_response(&app, &req, outcome))
    }
    .await;
    reply(&req, result)
}

/// Deletes answer 200 with an OperationOutcome, or 204 under `return=minimal`.
fn delete_response(
    req: &FhirRequest,
    message: String,
    version: Option<&VersionOut>,
) -> FhirResult<Response> {
    let mut response = if req.prefer_return() == Return::Minimal {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        r
    } else {
        fhir_body(
            StatusCode::OK,
            req.shape.format,
            req.shape.render_value(&information(message))?,
        )
    };
    if let Some(v) = version {
        response
            .headers_mut()
            .insert(ETAG, response::etag(v.version));
    }
    Ok(response)
}

pub async fn delete(
    State(app): AppState,
    Path((rtype, id)): Path<(String, String)>,
    req: FhirRequest,
) -> Response {
    let result = async {
        app.fhir
            .permit_write(req.access()?, Perm::Delete, &rtype, Some(&id), None)
            .await?;
        let outcome = app.fhir.delete(&rtype, &id, req.if_match()?).await?;
        let message = match outcome.status {
            WriteStatus::Unchanged => {
                format!("{rtype}/{id} does not exist or is already deleted; nothing to do")
            }
            _ => format!("{rtype}/{id} deleted"),
        };
        delete_response(&req, message, outcome.version.as_ref())
    }
    .await;
    reply(&req, result)
}

pub async fn conditional_delete(
    State(app): AppState,
    Path(rtype): Path<String>,
    req: FhirRequest,
) -> Response {
    let result = async {
        app.fhir
            .permit_all(req.access()?, Perm::Delete, &rtype, "a conditional delete")?;
        let count = app.fhir.conditional_delete(&rtype, &req.raw_query).await?;
        delete_response(&req, format!("{count} {rtype} resource(s) deleted"), None)
    }
    .await;
    reply(&req, result)
}

/// Search parameters of `POST .../_search`: the URL's and the
/// form-encoded body's.
fn search_params(req: &FhirRequest, body: Option<&Bytes>) -> FhirResult<Vec<(String, String)>> {
    let mut params = req.params.clone();
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        let form = req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(FhirError::new(
                415,
                crate::fhir::outcome::IssueType::NotSupported,
                "POST _search takes an application/x-www-form-urlencoded body",
            ));
        }
        params.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    Ok(params)
}

async fn search(
    app: &App,
    req: &FhirRequest,
    scope: SearchScope,
    body: Option<&Bytes>,
) -> Response {
    let result = async {
        let params = search_params(req, body)?;
        let strict = is_strict(req.header("prefer"));
        let bundle = app
            .fhir
            .search(&scope, &params, strict, req.access()?)
            .await?;
        let body = req.shape.render(&Bytes::from(bundle), false)?;
        Ok(fhir_body(StatusCode::OK, req.shape.format, body))
    }
    .await;
    reply(req, result)
}

/// `GET [base]/[type]?...`
pub async fn search_type(
    State(app): AppState,
    Path(rtype): Path<String>,
    req: FhirRequest,
) -> Response {
    if rtype.starts_with('$') {
        return system_operation(&app, &req, &rtype, false).await;
    }
    search(&app, &req, SearchScope::Type(rtype), None).await
}

/// Operations on the whole server: `$reindex` (POST starts a rebuild of
/// the search index, GET shows its progress).
async fn system_operation(app: &Arc<App>, req: &FhirRequest, op: &str, post: bool) -> Response {
    let result = async {
        app.fhir.permit_admin(req.access()?, op)?;
        match (op, post) {
            ("$reindex", false) => Ok(fhir_body(
                StatusCode::OK,
                req.shape.format,
                req.shape
                    .render_value(&app.fhir.reindex_job.to_parameters())?,
            )),
            ("$reindex", true) => {
                app.fhir.begin_reindex().await?;
                let background = app.clone();
                tokio::spawn(async move {
                    let _ = background.fhir.run_reindex().await;
                });
                let progress = app.fhir.reindex_job.progress();
                Ok(fhir_body(
                    StatusCode::ACCEPTED,
                    req.shape.format,
                    req.shape.render_value(&progress.to_parameters())?,
                ))
            }
            _ => Err(unknown_operation(op)),
        }
    }
    .await;
    reply(req, result)
}

/// `GET [base]?...`
pub async fn search_system(State(app): AppState, req: FhirRequest) -> Response {
    search(&app, &req, SearchScope::System, None).await
}

async fn history(app: &App, req: &FhirRequest, scope: HistoryScope) -> Response {
    let result = async {
        let access = req.access()?;
        match &scope {
            HistoryScope::Instance { rtype, id } => {
                app.fhir.permit(access, Perm::Read, rtype)?;
                if !access.unrestricted {
                    // The history of a resource the caller may see now.
                    if let Ok(current) = app.fhir.read(rtype, id).await {
                        app.fhir.ensure_visible(access, &current).await?;
                    }
                }
            }
            HistoryScope::Type { rtype } => {
                app.fhir
                    .permit_all(access, Perm::Read, rtype, "the history of a type")?;
            }
            HistoryScope::System => app.fhir.permit_system_history(access)?,
        }
        let bundle = app.fhir.history(scope, &req.params).await?;
        let body = req.shape.render(&Bytes::from(bundle), false)?;
        Ok(fhir_body(StatusCode::OK, req.shape.format, body))
    }
    .await;
    reply(req, result)
}

pub async fn history_instance(
    State(app): AppState,
    Path((rtype, id)): Path<(String, String)>,
    req: FhirRequest,
) -> Response {
    history(&app, &req, HistoryScope::Instance { rtype, id }).await
}

pub async fn history_type(
    State(app): AppState,
    Path(rtype): Path<String>,
    req: FhirRequest,
) -> Response {
    history(&app, &req, HistoryScope::Type { rtype }).await
}

pub async fn history_system(State(app): AppState, req: FhirRequest) -> Response {
    history(&app, &req, HistoryScope::System).await
}

pub async fn metadata(State(app): AppState, req: FhirRequest) -> Response {
    let result = async {
        match req
            .params
            .iter()
            .find(|(k, _)| k == "mode")
            .map(|(_, v)| v.as_str())
        {
            None | Some("full") | Some("normal") => {}
            Some("terminology") => {
                let body = req
                    .shape
                    .render_value(&app.fhir.terminology_capabilities())?;
                return Ok(fhir_body(StatusCode::OK, req.shape.format, body));
            }
            Some(mode) => {
                return Err(FhirError::not_supported(format!(
                    "metadata mode `{mode}` is not supported yet"
                )))
            }
        }
        let statement = crate::service::capabilities::with_custom(
            &app.capabilities,
            &app.fhir.search_registry(),
        );
        let body = req.shape.render_value(&statement)?;
        Ok(fhir_body(StatusCode::OK, req.shape.format, body))
    }
    .await;
    reply(&req, result)
}

/// `POST [base]` with a transaction or batch Bundle.
pub async fn transaction(State(app): AppState, req: FhirRequest, body: Bytes) -> Response {
    let result = async {
        let bundle = req.resource_body(&body)?;
        let prefer = match req.prefer_return() {
            Return::Minimal => EntryReturn::Minimal,
            Return::OperationOutcome => EntryReturn::OperationOutcome,
            Return::Representation => EntryReturn::Representation,
        };
        let response = app
            .fhir
            .transaction_or_batch(
                bundle,
                prefer,
                req.access()?,
                is_strict(req.header("prefer")),
            )
            .await?;
        let body = req.shape.render(&Bytes::from(response), false)?;
        Ok(fhir_body(StatusCode::OK, req.shape.format, body))
    }
    .await;
    reply(&req, result)
}

/// `POST [type]/$operation` (type-level operations).
pub async fn type_operation(
    State(app): AppState,
    Path((rtype, op)): Path<(String, String)>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    if op == "_search" {
        return search(&app, &req, SearchScope::Type(rtype), Some(&body)).await;
    }
    if op == "$everything" {
        return everything(&app, &req, &rtype, None, Some(&body)).await;
    }
    if is_terminology_operation(&rtype, &op) {
        return terminology_operation(&app, &req, &rtype, None, &op, Some(&body)).await;
    }
    let result = async {
        let access = req.access()?;
        let outcome = match op.as_str() {
            "$validate" => {
                app.fhir
                    .permit(access, Perm::Create, &rtype)
                    .or_else(|_| app.fhir.permit(access, Perm::Update, &rtype))?;
                app.fhir
                    .validate_operation(
                        &rtype,
                        None,
                        req.resource_body(&body)?,
                        &req.params,
                        access,
                    )
                    .await?
            }
            o if o.starts_with('$') => return Err(unknown_operation(o)),
            _ => {
                return Err(FhirError::new(
                    405,
                    crate::fhir::outcome::IssueType::NotSupported,
                    format!("POST is not supported on `{rtype}/{op}`; use PUT to update"),
                ))
            }
        };
        Ok(fhir_body(
            StatusCode::OK,
            req.shape.format,
            req.shape.render_value(&outcome)?,
        ))
    }
    .await;
    reply(&req, result)
}

/// `GET|POST [type]/[id]/$operation` (instance-level operations).
pub async fn instance_operation(
    State(app): AppState,
    method: http::Method,
    Path((rtype, id, op)): Path<(String, String, String)>,
    req: FhirRequest,
    body: Bytes,
) -> Response {
    if op == "$everything" {
        let body = (method == http::Method::POST).then_some(&body);
        return everything(&app, &req, &rtype, Some(&id), body).await;
    }
    if crate::fhir::schema::schema().is_resource_type(&op) && method == http::Method::GET {
        let scope = SearchScope::Compartment {
            compartment: rtype,
            id,
            rtype: op,
        };
        return search(&app, &req, scope, None).await;
    }
    if is_terminology_operation(&rtype, &op) {
        let body = (method == http::Method::POST).then_some(&body);
        return terminology_operation(&app, &req, &rtype, Some(&id), &op, body).await;
    }
    let result = async {
        let post = method == http::Method::POST;
        let access = req.access()?;
        match op.as_str() {
            "$erase" => {
                if !access.is_administrator() {
                    return Err(FhirError::new(
                        403,
                        crate::fhir::outcome::IssueType::Forbidden,
                        "$erase needs an administrator",
                    ));
                }
                if rtype != "Patient" {
                    return Err(unknown_operation(&op));
                }
            }
            "$meta-add" | "$meta-delete" => {
                app.fhir
                    .permit_write(access, Perm::Update, &rtype, Some(&id), None)
                    .await?
            }
            _ => {
                app.fhir.permit(access, Perm::Read, &rtype)?;
                if let Ok(current) = app.fhir.read(&rtype, &id).await {
                    app.fhir.ensure_visible(access, &current).await?;
                }
            }
        }
        let value = match (op.as_str(), post) {
            ("$validate", true) => {
                app.fhir
                    .validate_operation(
                        &rtype,
                        Some(&id),
                        req.resource_body(&body)?,
                        &req.params,
                        access,
                    )
                    .await?
            }
            ("$meta", _) => app.fhir.meta_operation(&rtype, &id).await?,
            ("$erase", true) => app.fhir.erase_patient(&id).await?,
            ("$meta-add", true) => {
                app.fhir
                    .meta_change_operation(&rtype, &id, req.resource_body(&body)?, true)
                    .await?
            }
            ("$meta-delete", true) => {
                app.fhir
                    .meta_change_operation(&rtype, &id, req.resource_body(&body)?, false)
                    .await?
            }
            (_, false)
                if crate::service::operations::RESOURCE_OPERATIONS.contains(&op.as_str()) =>
            {
                return Err(FhirError::new(
                    405,
                    crate::fhir::outcome::IssueType::NotSupported,
                    format!("{op} takes POST"),
                ));
            }
            _ => return Err(unknown_operation(&op)),
        };
        Ok(fhir_body(
            StatusCode::OK,
            req.shape.format,
            req.shape.render_value(&value)?,
        ))
    }
    .await;
    reply(&req, result)
}

/// `GET|POST Patient(/[id])/$everything`, `GET|POST Encounter/[id]/$everything`:
/// query parameters, and (POST) a Parameters body.
async fn everything(
    app: &App,
    req: &FhirRequest,
    rtype: &str,
    id: Option<&str>,
    body: Option<&Bytes>,
) -> Response {
    let result = async {
        if !crate::service::everything::has_everything(rtype, id.is_some()) {
            return Err(unknown_operation("$everything"));
        }
        let mut params = req.params.clone();
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            params.extend(crate::service::everything::parameters_input(
                &req.resource_body(body)?,
            )?);
        }
        let strict = is_strict(req.header("prefer"));
        let bundle = app
            .fhir
            .everything(rtype, id, &params, strict, req.access()?)
            .await?;
        let body = req.shape.render(&Bytes::from(bundle), false)?;
        Ok(fhir_body(StatusCode::OK, req.shape.format, body))
    }
    .await;
    reply(req, result)
}

fn unknown_operation(op: &str) -> FhirError {
    FhirError::new(
        404,
        crate::fhir::outcome::IssueType::NotSupported,
        format!("`{op}` is not an operation of this server"),
    )
}

fn is_terminology_operation(rtype: &str, op: &str) -> bool {
    crate::service::terminology::TERMINOLOGY_OPERATIONS
        .iter()
        .any(|(t, o)| *t == rtype && *o == op)
}

/// `GET|POST [type](/[id])/$lookup|$validate-code|$subsumes|$expand`: query
/// parameters (GET) or a Parameters body (POST).
async fn terminology_operation(
    app: &App,
    req: &FhirRequest,
    rtype: &str,
    id: Option<&str>,
    op: &str,
    body: Option<&Bytes>,
) -> Response {
    use crate::service::terminology::OpInput;
    let result = async {
        if !is_terminology_operation(rtype, op) {
            return Err(unknown_operation(op));
        }
        // Terminology operations read code systems and value sets.
        app.fhir.permit(req.access()?, Perm::Read, rtype)?;
        let input = match body {
            Some(body) if !body.is_empty() => OpInput::from_parameters(&req.resource_body(body)?)?,
            _ => OpInput::from_query(&req.params),
        };
        let fhir = &app.fhir;
        let value = match (rtype, op) {
            ("CodeSystem", "$lookup") => fhir.lookup(id, &input).await?,
            ("CodeSystem", "$validate-code") => fhir.validate_code_system(id, &input).await?,
            ("CodeSystem", "$subsumes") => fhir.subsumes(id, &input).await?,
            ("ValueSet", "$expand") => fhir.expand(id, &input).await?,
            _ => fhir.validate_value_set_code(id, &input).await?,
        };
        Ok(fhir_body(
            StatusCode::OK,
            req.shape.format,
            req.shape.render_value(&value)?,
        ))
    }
    .await;
    reply(req, result)
}
