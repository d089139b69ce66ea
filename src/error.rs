//! The one error type of the service layer. Every failure a client can see is
//! a `FhirError`: an HTTP status plus OperationOutcome issues. The HTTP edge
//! renders it (`http::outcome`); nothing else decides status codes.

use crate::fhir::outcome::{Issue, IssueType, Severity};

#[derive(Debug, Clone)]
pub struct FhirError {
    /// HTTP status code.
    pub status: u16,
    pub issues: Vec<Issue>,
    /// Version to report in an `ETag` header (for 410 Gone on a deleted resource).
    pub version: Option<i64>,
    /// A lost race with a concurrent writer: the whole write may be retried.
    pub retryable: bool,
}

impl FhirError {
    pub fn new(status: u16, code: IssueType, diagnostics: impl Into<String>) -> Self {
        FhirError {
            status,
            issues: vec![Issue::new(Severity::Error, code, diagnostics)],
            version: None,
            retryable: false,
        }
    }

    /// 400 with issues that name element paths.
    pub fn invalid_issues(issues: Vec<Issue>) -> Self {
        FhirError {
            status: 400,
            issues,
            version: None,
            retryable: false,
        }
    }

    pub fn bad_request(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(400, code, diagnostics)
    }

    pub fn invalid(diagnostics: impl Into<String>) -> Self {
        Self::new(400, IssueType::Invalid, diagnostics)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(404, IssueType::NotFound, diagnostics)
    }

    pub fn gone(diagnostics: impl Into<String>, version: i64) -> Self {
        let mut err = Self::new(410, IssueType::Deleted, diagnostics);
        err.version = Some(version);
        err
    }

    pub fn conflict(diagnostics: impl Into<String>) -> Self {
        Self::new(409, IssueType::Conflict, diagnostics)
    }

    /// A concurrent writer got there first; retrying the write will succeed.
    pub fn lost_race(diagnostics: impl Into<String>) -> Self {
        let mut err = Self::new(409, IssueType::Conflict, diagnostics);
        err.retryable = true;
        err
    }

    pub fn precondition_failed(diagnostics: impl Into<String>) -> Self {
        Self::new(412, IssueType::Conflict, diagnostics)
    }

    pub fn multiple_matches(diagnostics: impl Into<String>) -> Self {
        Self::new(412, IssueType::MultipleMatches, diagnostics)
    }

    pub fn not_supported(diagnostics: impl Into<String>) -> Self {
        Self::new(400, IssueType::NotSupported, diagnostics)
    }

    pub fn unsupported_media_type(diagnostics: impl Into<String>) -> Self {
        Self::new(415, IssueType::NotSupported, diagnostics)
    }

    pub fn not_acceptable(diagnostics: impl Into<String>) -> Self {
        Self::new(406, IssueType::NotSupported, diagnostics)
    }

    pub fn internal(diagnostics: impl Into<String>) -> Self {
        Self::new(500, IssueType::Exception, diagnostics)
    }

    pub fn unavailable(diagnostics: impl Into<String>) -> Self {
        Self::new(503, IssueType::Transient, diagnostics)
    }
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        for issue in &self.issues {
            match &issue.expression {
                Some(path) => write!(f, ": {path}: {}", issue.diagnostics)?,
                None => write!(f, ": {}", issue.diagnostics)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for FhirError {}

/// Storage failures reach clients as 500 (or 503 when the database is away);
/// the detail goes to the log, not to the client.
impl From<crate::store::StoreError> for FhirError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                FhirError::unavailable("the database is not reachable; try again later")
            }
            StoreError::Busy => {
                let mut err =
                    FhirError::new(503, IssueType::Transient, "the database is busy; try again");
                err.retryable = true;
                err
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "stored data could not be decoded");
                FhirError::internal("stored data could not be decoded")
            }
            StoreError::Database(detail) => {
                tracing::error!(error = %detail, "database error");
                FhirError::internal("internal database error")
            }
        }
    }
}

pub type FhirResult<T> = Result<T, FhirError>;
