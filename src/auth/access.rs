//! Who is calling and what they may do: the principal every FHIR
//! interaction is checked against.

use std::sync::Arc;

use super::scopes::{Context, Perm, ResourceScope, Scopes};
use super::tokens::AccessClaims;

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Access {
    /// The user's name, or the client id of a backend service.
    pub subject: String,
    pub client_id: Option<String>,
    pub scopes: Arc<Scopes>,
    /// The patient of the launch context (`patient/` scopes reach only this
    /// patient's compartment).
    pub patient: Option<String>,
    pub fhir_user: Option<String>,
    pub role: Option<String>,
    /// No checks at all: authorization turned off (loopback development
    /// server), or the server's own work (import, HL7 v2 bridge).
    pub unrestricted: bool,
}

/// What a grant lets the caller reach of one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every resource of the type.
    All,
    /// Only resources matching any of these (OR): each a patient
    /// compartment and/or search constraints (AND).
    Some(Vec<Limit>),
}

/// One grant's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Only the compartment of this patient.
    pub patient: Option<String>,
    /// v2 scope constraints (`category=laboratory`).
    pub constraints: Vec<(String, String)>,
}

impl Access {
    /// Full access, for the server's own work and for `--auth off`.
    pub fn unrestricted(subject: &str) -> Access {
        Access {
            subject: subject.to_string(),
            client_id: None,
            scopes: Arc::new(Scopes::default()),
            patient: None,
            fhir_user: None,
            role: None,
            unrestricted: true,
        }
    }

    pub fn from_claims(claims: &AccessClaims) -> Access {
        Access {
            subject: claims.sub.clone(),
            client_id: Some(claims.client_id.clone()),
            // Tokens are issued with parsed scopes, so this parses.
            scopes: Arc::new(Scopes::parse(&claims.scope).unwrap_or_default()),
            patient: claims.patient.clone(),
            fhir_user: claims.fhir_user.clone(),
            role: claims.role.clone(),
            unrestricted: false,
        }
    }

    /// How much of `rtype` the caller may reach with `perm`; None when no
    /// scope grants it at all.
    pub fn reach(&self, perm: Perm, rtype: &str) -> Option<Reach> {
        if self.unrestricted {
            return Some(Reach::All);
        }
        let mut limits = Vec::new();
        for grant in self.scopes.grants(perm, rtype) {
            match self.limit_of(grant, rtype) {
                Some(None) => return Some(Reach::All),
                Some(Some(limit)) => limits.push(limit),
                None => {}
            }
        }
        (!limits.is_empty()).then_some(Reach::Some(limits))
    }

    /// The limit a grant puts on `rtype`: Some(None) for none; None when the
    /// grant is unusable (a patient scope without a patient in context).
    fn limit_of(&self, grant: &ResourceScope, rtype: &str) -> Option<Option<Limit>> {
        let patient = match grant.context {
            Context::Patient => Some(self.patient.clone()?),
            // A patient's own account reaches only their own record, whatever
            // the scope says.
            Context::User if self.role.as_deref() == Some("patient") => {
                Some(self.patient.clone().or_else(|| self.own_patient_id())?)
            }
            Context::User | Context::System => None,
        };
        // Types outside the patient compartment (Practitioner, Organization,
        // Medication, ...) hold no patient's data: a patient scope on them
        // reaches them all.
        let patient = patient.filter(|_| in_patient_compartment_type(rtype));
        if patient.is_none() && grant.constraints.is_empty() {
            return Some(None);
        }
        Some(Some(Limit {
            patient,
            constraints: grant.constraints.clone(),
        }))
    }

    fn own_patient_id(&self) -> Option<String> {
        self.fhir_user
            .as_deref()
            .and_then(|u| u.strip_prefix("Patient/"))
            .map(str::to_string)
    }

    /// Whether the caller may do anything on every type (server
    /// administration: `$reindex`, type-wide history).
    pub fn is_administrator(&self) -> bool {
        self.unrestricted
            || self.scopes.resources.iter().any(|r| {
                r.rtype.is_none()
                    && r.constraints.is_empty()
                    && r.perms == super::scopes::Perms::ALL
                    && (r.context == Context::System
                        || (r.context == Context::User && self.role.as_deref() == Some("admin")))
            })
    }
}

/// Whether `rtype` is in the R4 Patient compartment (Patient itself
/// included).
pub fn in_patient_compartment_type(rtype: &str) -> bool {
    rtype == "Patient" || !crate::service::search::compartment_params("Patient", rtype).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(scope: &str, patient: Option<&str>) -> Access {
        Access {
            subject: "u".into(),
            client_id: Some("c".into()),
            scopes: Arc::new(Scopes::parse(scope).unwrap()),
            patient: patient.map(str::to_string),
            fhir_user: None,
            role: Some("practitioner".into()),
            unrestricted: false,
        }
    }

    #[test]
    fn reach_by_context() {
        let a = access("patient/*.rs", Some("p1"));
        let Some(Reach::Some(limits)) = a.reach(Perm::Read, "Observation") else {
            panic!()
        };
        assert_eq!(limits[0].patient.as_deref(), Some("p1"));
        // Outside the compartment: everything.
        assert_eq!(a.reach(Perm::Read, "Practitioner"), Some(Reach::All));
        assert_eq!(a.reach(Perm::Create, "Observation"), None);
        // A patient scope without a patient grants nothing.
        assert_eq!(
            access("patient/*.rs", None).reach(Perm::Read, "Observation"),
            None
        );
        assert_eq!(
            access("user/Observation.rs", None).reach(Perm::Search, "Observation"),
            Some(Reach::All)
        );
    }

    #[test]
    fn the_widest_grant_wins() {
        let a = access(
            "patient/Observation.rs?category=laboratory user/Observation.r",
            Some("p1"),
        );
        assert_eq!(a.reach(Perm::Read, "Observation"), Some(Reach::All));
        let Some(Reach::Some(limits)) = a.reach(Perm::Search, "Observation") else {
            panic!()
        };
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].constraints[0].0, "category");
    }

    #[test]
    fn administrators() {
        assert!(access("system/*.cruds", None).is_administrator());
        assert!(!access("system/*.rs", None).is_administrator());
        assert!(!access("user/*.*", None).is_administrator());
        assert!(Access::unrestricted("server").is_administrator());
    }
}
