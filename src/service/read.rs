//! read and vread (http://hl7.org/fhir/R4/http.html#read).

use super::{check_type, Fhir, VersionOut};
use crate::error::{FhirError, FhirResult};

impl Fhir {
    /// The current version; 404 if it never existed, 410 if deleted.
    pub async fn read(&self, rtype: &str, id: &str) -> FhirResult<VersionOut> {
        check_type(rtype)?;
        let found = self.store.read(self.tenant, rtype, id).await?;
        match found {
            None => Err(FhirError::not_found(format!("{rtype}/{id} is not known"))),
            Some(v) if v.deleted => Err(FhirError::gone(
                format!("{rtype}/{id} was deleted (version {})", v.version),
                v.version,
            )),
            Some(v) => Ok(VersionOut::stored(rtype, id, v)),
        }
    }

    /// One version; 404 if there is no such version, 410 if it is a deletion.
    pub async fn vread(&self, rtype: &str, id: &str, version: &str) -> FhirResult<VersionOut> {
        check_type(rtype)?;
        let Some(number) = super::parse_version(version) else {
            return Err(FhirError::not_found(format!(
                "`{version}` is not a version id of {rtype}/{id}"
            )));
        };
        match self.store.vread(self.tenant, rtype, id, number).await? {
            None => Err(FhirError::not_found(format!(
                "{rtype}/{id} has no version {number}"
            ))),
            Some(v) if v.deleted => Err(FhirError::gone(
                format!("version {number} of {rtype}/{id} is a deletion"),
                v.version,
            )),
            Some(v) => Ok(VersionOut::stored(rtype, id, v)),
        }
    }
}
