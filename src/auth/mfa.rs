//! Two-step sign-in: a TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits,
//! 30-second steps, the parameters every authenticator app reads from an
//! `otpauth://` URI) and one-time backup codes.
//!
//! The secret (160 random bits) is stored sealed through the body codec;
//! backup codes (80 random bits each) only as SHA-256 hashes salted with the
//! account name. A code is accepted for the current step or one step either
//! side (clock drift), and each step once: the last accepted step is
//! stored and a code of that step or an earlier one is refused (replay).
//! Wrong codes count against the same sign-in limits as wrong passwords.

use base64::Engine;
use totp_rs::{Algorithm, TOTP};

use super::secrets;
use crate::store::{Store, StoreError};

/// Seconds per TOTP step.
const STEP: u64 = 30;
/// Digits of a code.
const DIGITS: usize = 6;
/// Backup codes made at enrolment.
pub const BACKUP_CODES: usize = 10;
/// Shown in authenticator apps next to the account.
const ISSUER: &str = "Charaka";

fn totp(secret: &[u8], username: &str) -> TOTP {
    // The otpauth label is `issuer:account`: a colon in the account name
    // would split it.
    let account = username.replace(':', "_");
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP,
        secret.to_vec(),
        Some(ISSUER.to_string()),
        account,
    )
}

/// What an enrolment shows the user once.
pub struct Enrolment {
    /// `otpauth://totp/Charaka:NAME?secret=...&issuer=Charaka...`
    pub uri: String,
    /// The secret in base32, for typing in by hand.
    pub secret_base32: String,
    /// The URI as a QR code (PNG), base64.
    pub qr_png_base64: String,
    /// One-time backup codes, `XXXX-XXXX-XXXX-XXXX`.
    pub backup_codes: Vec<String>,
}

/// Starts an enrolment: a new secret and backup codes, stored unconfirmed
/// (sign-ins ask for codes only after [`confirm`]). None when two-step
/// sign-in is already on.
pub async fn enrol(store: &Store, username: &str) -> anyhow::Result<Option<Enrolment>> {
    let secret = secrets::random_bytes(20);
    let backup_codes: Vec<String> = (0..BACKUP_CODES).map(|_| new_backup_code()).collect();
    let hashes: Vec<String> = backup_codes
        .iter()
        .map(|c| backup_hash(username, c))
        .collect();
    let now = crate::fhir::datetime::now_micros();
    if !store.begin_mfa(username, &secret, &hashes, now).await? {
        return Ok(None);
    }
    let t = totp(&secret, username);
    let uri = t.get_url();
    let png = qr_png(&uri)?;
    Ok(Some(Enrolment {
        secret_base32: t.get_secret_base32(),
        qr_png_base64: base64::engine::general_purpose::STANDARD.encode(png),
        uri,
        backup_codes,
    }))
}

/// The time step a 6-digit code matches at `now` (seconds), if any.
fn matching_step(secret: &[u8], username: &str, code: &str, now: u64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, username);
    let current = now / STEP;
    // Every candidate is computed, so the time taken does not say which
    // step matched.
    let mut found = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        if secrets::constant_time_eq(&t.generate(step * STEP), code) {
            found = Some(step as i64);
        }
    }
    found
}

/// Turns two-step sign-in on with a first code from the user's app; false
/// when the code is wrong or there is no enrolment to confirm.
pub async fn confirm(
    store: &Store,
    username: &str,
    code: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(row) = store.mfa(username).await? else {
        return Ok(false);
    };
    if row.enabled {
        return Ok(false);
    }
    match matching_step(&row.secret, username, code.trim(), now.max(0) as u64) {
        Some(step) => store.accept_mfa_step(username, step, true).await,
        None => Ok(false),
    }
}

/// Whether the account has two-step sign-in on.
pub async fn enabled(store: &Store, username: &str) -> Result<bool, StoreError> {
    Ok(store.mfa(username).await?.is_some_and(|m| m.enabled))
}

/// Checks a second factor at sign-in: a 6-digit code of the current step
/// (± one) not used before, or an unused backup code (then used up).
pub async fn verify(
    store: &Store,
    username: &str,
    input: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(row) = store.mfa(username).await? else {
        return Ok(false);
    };
    if !row.enabled {
        return Ok(false);
    }
    let input = input.trim();
    if let Some(step) = matching_step(&row.secret, username, input, now.max(0) as u64) {
        if step <= row.last_step {
            return Ok(false);
        }
        return store.accept_mfa_step(username, step, false).await;
    }
    let normalized = normalize_backup(input);
    if normalized.len() != 16 {
        return Ok(false);
    }
    store
        .use_backup_code(username, &backup_hash(username, &normalized))
        .await
}

/// A backup code: 80 random bits in base32, grouped by four.
fn new_backup_code() -> String {
    let raw = base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        &secrets::random_bytes(10),
    );
    raw.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

/// A backup code as typed: without dashes and spaces, upper case.
fn normalize_backup(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn backup_hash(username: &str, code: &str) -> String {
    secrets::token_hash(&format!("backup:{username}:{}", normalize_backup(code)))
}

/// The QR code of `text` as a grayscale PNG: 6 pixels per module and the
/// 4-module quiet zone scanners need.
fn qr_png(text: &str) -> anyhow::Result<Vec<u8>> {
    const SCALE: usize = 6;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % width + QUIET, i / width + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_neighbours_only() {
        // RFC 6238 appendix B, SHA-1 secret, truncated to 6 digits.
        let secret = b"12345678901234567890";
        assert_eq!(matching_step(secret, "u", "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "u", "287082", 89), Some(1));
        assert_eq!(matching_step(secret, "u", "287082", 30 * 4), None);
        assert_eq!(matching_step(secret, "u", "28708", 59), None);
        assert_eq!(matching_step(secret, "u", "abcdef", 59), None);
    }

    #[test]
    fn backup_codes_are_typed_loosely() {
        let code = new_backup_code();
        assert_eq!(code.len(), 19);
        assert_eq!(
            backup_hash("u", &code),
            backup_hash("u", &code.to_lowercase().replace('-', " "))
        );
        assert_ne!(backup_hash("u", &code), backup_hash("v", &code));
    }

    #[test]
    fn qr_code_is_a_png() {
        let png = qr_png("otpauth://totp/Charaka:u?secret=AAAA").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
