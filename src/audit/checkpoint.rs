//! Signed checkpoints of the audit chain: the server periodically signs
//! "record n of tenant t has hash h" with its current signing key (ES256,
//! the key that signs access tokens). Rebuilding the chain after tampering
//! would need that key.

use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};

use super::chain::{CheckpointClaims, CHECKPOINT_TYP};
use crate::auth::Auth;
use crate::error::FhirResult;
use crate::service::Fhir;
use crate::store::audit::Checkpoint;

/// Signs the chain's current head unless it is already signed; returns the
/// record signed.
pub async fn checkpoint(fhir: &Fhir, auth: &Auth) -> FhirResult<Option<i64>> {
    let (seq, hash) = fhir.store.audit_head(fhir.tenant).await?;
    if seq == 0 {
        return Ok(None);
    }
    let existing = fhir.store.audit_checkpoints(fhir.tenant).await?;
    if existing.last().is_some_and(|c| c.seq >= seq) {
        return Ok(None);
    }
    let claims = CheckpointClaims {
        typ: CHECKPOINT_TYP.into(),
        tenant: fhir.tenant,
        seq,
        hash: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash),
        iat: crate::auth::now_seconds(),
    };
    let signature = auth.sign(&claims);
    fhir.store
        .insert_audit_checkpoint(
            fhir.tenant,
            &Checkpoint {
                seq,
                hash,
                created: crate::fhir::datetime::now_micros(),
                signature,
            },
        )
        .await?;
    Ok(Some(seq))
}

/// Verifies a checkpoint's signature with the keys `auth` holds.
pub fn verify_signature(auth: &Auth, jws: &str) -> Result<CheckpointClaims, String> {
    let header = jsonwebtoken::decode_header(jws).map_err(|e| format!("malformed ({e})"))?;
    if header.alg != Algorithm::ES256 {
        return Err(format!("algorithm {:?} is not accepted", header.alg));
    }
    let kid = header.kid.ok_or("no key id")?;
    let keys = auth.keys();
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("signed by key {kid}, which this server no longer holds"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let claims = jsonwebtoken::decode::<CheckpointClaims>(jws, &key.decoding, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    if claims.typ != CHECKPOINT_TYP {
        return Err("not an audit checkpoint".into());
    }
    Ok(claims)
}

/// Signs checkpoints every `every` until the server stops.
pub fn spawn_periodic(app: std::sync::Weak<crate::http::App>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { break };
            if let Err(e) = checkpoint(&app.fhir, &app.auth).await {
                tracing::warn!(error = %e, "audit checkpoint failed");
            }
        }
    });
}
