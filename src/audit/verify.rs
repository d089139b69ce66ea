//! `charaka audit verify`: walks a tenant's chain from the first record,
//! recomputing every hash from the stored AuditEvents, and checks the
//! signed checkpoints. Each problem names the record where it shows.

use base64::Engine;

use super::chain::{link_hash, CheckpointClaims, Report};
use crate::error::FhirResult;
use crate::service::Fhir;

const PAGE: i64 = 1000;

/// Verifies the chain of `fhir`'s tenant. `check` verifies a checkpoint's
/// signature and returns its claims.
pub async fn verify(
    fhir: &Fhir,
    check: impl Fn(&str) -> Result<CheckpointClaims, String>,
) -> FhirResult<Report> {
    let tenant = fhir.tenant;
    let store = &fhir.store;
    let mut report = Report::default();
    let mut previous = vec![0u8; 32];
    let mut expected = 1i64;
    let mut hashes: std::collections::HashMap<i64, Vec<u8>> = Default::default();
    let checkpoints = store.audit_checkpoints(tenant).await?;
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut after = 0;
    loop {
        let page = store.audit_chain(tenant, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for link in page {
            report.records += 1;
            if link.seq != expected {
                report.problem(
                    expected,
                    if link.seq > expected {
                        format!(
                            "records {expected} to {} are missing (deleted from the chain)",
                            link.seq - 1
                        )
                    } else {
                        format!("record {} appears out of order", link.seq)
                    },
                );
            }
            expected = link.seq + 1;
            let event = format!("AuditEvent/{}", link.event_id);
            let stored = match store.vread(tenant, "AuditEvent", &link.event_id, 1).await {
                Ok(Some(stored)) => stored,
                other => {
                    let why = match other {
                        Err(e) => format!("the stored event cannot be read ({e})"),
                        _ => "the event is missing (deleted)".to_string(),
                    };
                    report.problem(link.seq, format!("record {} ({event}): {why}", link.seq));
                    previous = link.hash.clone();
                    continue;
                }
            };
            if !matches!(
                store.vread(tenant, "AuditEvent", &link.event_id, 2).await,
                Ok(None)
            ) {
                report.problem(
                    link.seq,
                    format!(
                        "record {} ({event}): the event has a later version (modified)",
                        link.seq
                    ),
                );
            }
            let body = stored.body.unwrap_or_default();
            let computed = link_hash(&previous, link.seq, &link.event_id, &body);
            if computed != link.hash {
                report.problem(
                    link.seq,
                    format!(
                        "record {} ({event}): hash mismatch: the event was modified, or a record before it was changed, inserted or reordered",
                        link.seq
                    ),
                );
            }
            // Carry on from the stored hash, so later problems show apart.
            previous = link.hash.clone();
            if wanted.contains(&link.seq) {
                hashes.insert(link.seq, link.hash.clone());
            }
        }
    }
    let last = expected - 1;
    let (head_seq, head_hash) = store.audit_head(tenant).await?;
    if head_seq != last || (last > 0 && head_hash != previous) {
        report.problem(
            last.max(head_seq),
            format!("the chain ends at record {last} but its head names record {head_seq}: records were removed from the end or the head was changed"),
        );
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for c in &checkpoints {
        report.checkpoints += 1;
        match check(&c.signature) {
            Err(why) => report.problem(
                c.seq,
                format!(
                    "checkpoint at record {}: the signature does not verify ({why})",
                    c.seq
                ),
            ),
            Ok(claims) => {
                let signed = b64.decode(&claims.hash).unwrap_or_default();
                if claims.seq != c.seq || claims.tenant != tenant || signed != c.hash {
                    report.problem(
                        c.seq,
                        format!("checkpoint at record {}: the stored checkpoint differs from what was signed", c.seq),
                    );
                } else if hashes.get(&c.seq) != Some(&signed) {
                    report.problem(
                        c.seq,
                        format!("checkpoint at record {}: the chain no longer has the signed hash there: the chain was rewritten or cut", c.seq),
                    );
                }
            }
        }
    }
    for id in store.unchained_audit_events(tenant, 100).await? {
        report.problem(
            0,
            format!("AuditEvent/{id} is not in the chain (inserted behind the audit trail's back)"),
        );
    }
    Ok(report)
}
