//! DFT^P03 (post detail financial transactions) → ChargeItem, one per FT1.
//! The IG 1.0.0 has no FT1 table; our rules:
//! - only charges become ChargeItems: FT1-6 `CG` (or empty) → status
//!   `billable`; credits, payments and adjustments (CD, PY, AJ, ...) are
//!   not charges and get AE 103 rather than being dropped unseen;
//! - code FT1-7 (required; FT1-8 as its text when the code has none),
//!   quantity FT1-10, occurrence FT1-4 (a range → occurrencePeriod),
//!   priceOverride FT1-11 extended amount, else FT1-12 unit amount times
//!   the quantity, performer FT1-20, enterer FT1-24, enteredDate FT1-5,
//!   reason FT1-19 (diagnoses);
//! - context: the Encounter of PV1-19 (matched, or created with status
//!   `unknown` when not known yet);
//! - identity: FT1-2 transaction id (local to the sender), else a key from
//!   the patient, FT1-4, FT1-7 and FT1-1, so a message sent again updates.

use serde_json::{json, Value};

use super::adt::{known_encounter, practitioner};
use super::datatypes::{codeable_concept, date_time, number, occurrence};
use super::order::derived_order_key;
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, Rep};

/// A CP (composite price: MO price, the MO an amount & currency) → Money.
fn money(cp: &Rep, times: f64) -> Option<Value> {
    let amount = cp.sub(1, 1);
    let value = number(&amount)?;
    let value = if times == 1.0 {
        value
    } else {
        // Four decimals: enough for any currency, and no binary residue.
        let v = (value.as_f64()? * times * 10_000.0).round() / 10_000.0;
        number(&format!("{v}")).unwrap_or(json!(v))
    };
    let mut m = json!({"value": value});
    let currency = cp.sub(1, 2);
    if currency.len() == 3 {
        m["currency"] = json!(currency.to_ascii_uppercase());
    }
    Some(m)
}

pub fn map(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    let default = default_system(message);
    let context = known_encounter(message, &patient, b);
    let mut any = false;
    for ft1 in message.all("FT1") {
        any = true;
        let at = occurrence(message, &ft1);
        let kind = ft1.get(6).comp(1);
        if !kind.is_empty() && kind != "CG" {
            return Err(Failure::error(
                ErrorCode::TableValueNotFound,
                Some(Location::new("FT1", at, 6)),
                format!(
                    "FT1-6 transaction type `{kind}` is not a charge (CG); only charges are mapped"
                ),
            ));
        }
        let mut code = codeable_concept(&ft1.get(7)).ok_or_else(|| {
            Failure::error(
                ErrorCode::RequiredFieldMissing,
                Some(Location::new("FT1", at, 7)),
                "FT1-7 (transaction code) is required",
            )
        })?;
        if code.get("text").is_none() {
            if let Some(t) = ft1.get(8).opt(1) {
                code["text"] = json!(t);
            }
        }
        let mut c = json!({
            "resourceType": "ChargeItem",
            "status": "billable",
            "code": code,
            "subject": {"reference": patient},
        });
        if let Some(e) = &context {
            c["context"] = json!({"reference": e});
        }
        let when = ft1.get(4);
        match (date_time(&when.comp(1)), date_time(&when.comp(2))) {
            (Some(s), Some(e)) => c["occurrencePeriod"] = json!({"start": s, "end": e}),
            (Some(s), None) => c["occurrenceDateTime"] = json!(s),
            _ => {}
        }
        let raw_quantity = ft1.get(10).comp(1);
        let mut times = 1.0;
        if !raw_quantity.is_empty() {
            let q = number(&raw_quantity).ok_or_else(|| {
                Failure::error(
                    ErrorCode::DataType,
                    Some(Location::new("FT1", at, 10)),
                    "FT1-10 (transaction quantity) is not a number",
                )
            })?;
            times = q.as_f64().unwrap_or(1.0);
            c["quantity"] = json!({"value": q});
        }
        if let Some(m) = money(&ft1.get(11), 1.0).or_else(|| money(&ft1.get(12), times)) {
            c["priceOverride"] = m;
        }
        let performers: Vec<Value> = ft1
            .reps(20)
            .iter()
            .filter_map(|x| practitioner(x, &default, b))
            .map(|who| json!({"actor": who}))
            .collect();
        if !performers.is_empty() {
            c["performer"] = json!(performers);
        }
        if let Some(who) = practitioner(&ft1.get(24), &default, b) {
            c["enterer"] = who;
        }
        if let Some(d) = date_time(&ft1.get(5).comp(1)) {
            c["enteredDate"] = json!(d);
        }
        let reasons: Vec<Value> = ft1.reps(19).iter().filter_map(codeable_concept).collect();
        if !reasons.is_empty() {
            c["reason"] = json!(reasons);
        }
        let key = match ft1.get(2).opt(1) {
            Some(tx) => (default.clone(), tx),
            None => derived_order_key(
                "FT1",
                &patient_key,
                &[&when.comp(1), &ft1.get(7).comp(1), &ft1.get(1).comp(1)],
            ),
        };
        c["identifier"] = json!([{"system": key.0, "value": key.1}]);
        let url = b.upsert(identifier_query(&key.0, &key.1), c);
        b.focus.push(url);
    }
    if !any {
        return Err(Failure::missing("FT1", 7, "transaction code"));
    }
    Ok(())
}
