//! Discovery documents: SMART's `.well-known/smart-configuration`, OpenID
//! Connect discovery, and the CapabilityStatement's `rest.security`.

use serde_json::{json, Value};

use super::Auth;

/// SMART capabilities this server implements.
pub const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
    "authorize-post",
];

pub const SCOPES_SUPPORTED: &[&str] = &[
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "patient/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "system/*.cruds",
    "system/*.rs",
    "patient/*.read",
    "patient/*.write",
    "user/*.read",
    "user/*.write",
    "system/*.read",
    "system/*.write",
];

impl Auth {
    pub fn smart_configuration(&self) -> Value {
        let a = &self.auth_base;
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{a}/jwks"),
            "authorization_endpoint": format!("{a}/authorize"),
            "token_endpoint": format!("{a}/token"),
            "introspection_endpoint": format!("{a}/introspect"),
            "revocation_endpoint": format!("{a}/revoke"),
            "registration_endpoint": format!("{a}/register"),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types_supported": ["code"],
            "scopes_supported": SCOPES_SUPPORTED,
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "capabilities": CAPABILITIES,
        })
    }

    pub fn openid_configuration(&self) -> Value {
        let a = &self.auth_base;
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{a}/jwks"),
            "authorization_endpoint": format!("{a}/authorize"),
            "token_endpoint": format!("{a}/token"),
            "registration_endpoint": format!("{a}/register"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid", "fhirUser"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "fhirUser", "nonce"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        })
    }
}

/// `CapabilityStatement.rest.security` pointing at the same endpoints.
pub fn capability_security(auth_base: &str, enabled: bool) -> Value {
    let mut security = json!({
        "cors": true,
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"
        }],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "token", "valueUri": format!("{auth_base}/token")},
                {"url": "authorize", "valueUri": format!("{auth_base}/authorize")},
                {"url": "introspect", "valueUri": format!("{auth_base}/introspect")},
                {"url": "revoke", "valueUri": format!("{auth_base}/revoke")},
                {"url": "register", "valueUri": format!("{auth_base}/register")}
            ]
        }]
    });
    if !enabled {
        security["description"] =
            json!("Authorization is turned off on this development server (loopback only).");
    }
    security
}
