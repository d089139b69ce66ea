//! Original-mode acknowledgements: `MSH` mirroring the sender's (sending and
//! receiving application and facility swapped, MSH-11 processing id and
//! MSH-12 version copied, the sender's encoding characters), `MSA` with the
//! code and the sender's control id, and for errors an `ERR` segment with
//! the HL7 error code (table 0357), the location and a readable text.

use super::message::{Message, Separators};

/// The acknowledgement code (table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept: the message is applied and committed.
    Accept,
    /// Application error: understood, but it could not be applied.
    Error,
    /// Application reject: unsupported type or version, or unparseable.
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// HL7 error codes (table 0357) this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    SegmentSequence,
    RequiredFieldMissing,
    DataType,
    TableValueNotFound,
    UnsupportedMessageType,
    UnsupportedEvent,
    UnsupportedProcessingId,
    UnsupportedVersion,
    UnknownKey,
    InternalError,
}

impl ErrorCode {
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "100",
            ErrorCode::RequiredFieldMissing => "101",
            ErrorCode::DataType => "102",
            ErrorCode::TableValueNotFound => "103",
            ErrorCode::UnsupportedMessageType => "200",
            ErrorCode::UnsupportedEvent => "201",
            ErrorCode::UnsupportedProcessingId => "202",
            ErrorCode::UnsupportedVersion => "203",
            ErrorCode::UnknownKey => "204",
            ErrorCode::InternalError => "207",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataType => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEvent => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersion => "Unsupported version id",
            ErrorCode::UnknownKey => "Unknown key identifier",
            ErrorCode::InternalError => "Application internal error",
        }
    }
}

/// Where in the message an error is (ERR-2, or ERR-1 before v2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub segment: String,
    /// 1-based occurrence of the segment.
    pub sequence: usize,
    pub field: usize,
}

impl Location {
    pub fn new(segment: &str, sequence: usize, field: usize) -> Location {
        Location {
            segment: segment.to_string(),
            sequence,
            field,
        }
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub ack: AckCode,
    pub code: ErrorCode,
    pub location: Option<Location>,
    /// Readable text; never message content.
    pub text: String,
}

impl Failure {
    pub fn error(code: ErrorCode, location: Option<Location>, text: impl Into<String>) -> Self {
        Failure {
            ack: AckCode::Error,
            code,
            location,
            text: text.into(),
        }
    }

    pub fn reject(code: ErrorCode, location: Option<Location>, text: impl Into<String>) -> Self {
        Failure {
            ack: AckCode::Reject,
            code,
            location,
            text: text.into(),
        }
    }

    /// The error as the message log records it: `code name: text`.
    pub fn summary(&self) -> String {
        format!("{} {}: {}", self.code.code(), self.code.text(), self.text)
    }

    /// A required field is empty (AE 101).
    pub fn missing(segment: &str, field: usize, what: &str) -> Self {
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new(segment, 1, field)),
            format!("{segment}-{field} ({what}) is required"),
        )
    }
}

/// The name of a processing id (table 0103).
fn processing_name(id: &str) -> &'static str {
    match id {
        "P" => "production",
        "T" => "training",
        "D" => "debugging",
        _ => "unknown",
    }
}

/// Checks MSH-11 against the processing ids this server applies
/// (`accepted`, from `hl7v2_processing_ids`).
///
/// HL7 v2 (2.9.2, original mode): the receiver checks that MSH-11 "is
/// appropriate for the application process handling the message" and
/// otherwise rejects it, `AR` with error 202 (unsupported processing id).
/// So a production server does not apply training (`T`) or debugging (`D`)
/// messages to patient records, and the sender learns at once that it is
/// connected to the wrong system. MSH-11 is required: empty → `AR` 101.
/// The processing mode (MSH-11.2, table 0207: archive, restore, initial
/// load, current processing) does not change how a message is applied; a
/// value outside the table → `AR` 202.
pub fn check_processing_id(message: &Message, accepted: &[String]) -> Result<(), Failure> {
    let (id, mode) = message.processing();
    let at = || Some(Location::new("MSH", 1, 11));
    if id.is_empty() {
        return Err(Failure::reject(
            ErrorCode::RequiredFieldMissing,
            at(),
            "MSH-11 (processing id) is required",
        ));
    }
    if !accepted.contains(&id) {
        let applied: Vec<String> = accepted
            .iter()
            .map(|a| format!("{a} ({})", processing_name(a)))
            .collect();
        let name = processing_name(&id);
        let shown = if name == "unknown" {
            "an unknown processing id".to_string()
        } else {
            format!("processing id {id} ({name})")
        };
        return Err(Failure::reject(
            ErrorCode::UnsupportedProcessingId,
            at(),
            format!(
                "{shown} is not applied by this server, which applies {}",
                applied.join(", ")
            ),
        ));
    }
    if !matches!(mode.as_str(), "" | "A" | "I" | "R" | "T") {
        return Err(Failure::reject(
            ErrorCode::UnsupportedProcessingId,
            at(),
            "MSH-11.2 (processing mode) is not one of A, I, R, T (table 0207)",
        ));
    }
    Ok(())
}

/// The parts of the original MSH an ACK mirrors; taken from a parsed
/// message, or defaulted when the message could not be parsed.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub separators: Separators,
    pub sending_app: String,
    pub sending_facility: String,
    pub receiving_app: String,
    pub receiving_facility: String,
    pub trigger: String,
    pub control_id: String,
    pub processing_id: String,
    pub version: String,
}

impl Header {
    /// Reads the header of a parsed message, keeping fields as written
    /// (escaped), since they go back into a message with the same encoding.
    pub fn of(message: &Message) -> Header {
        let msh = message.msh();
        Header {
            separators: message.separators,
            sending_app: msh.raw(3).to_string(),
            sending_facility: msh.raw(4).to_string(),
            receiving_app: msh.raw(5).to_string(),
            receiving_facility: msh.raw(6).to_string(),
            trigger: msh.get(9).part(2).raw().to_string(),
            control_id: msh.raw(10).to_string(),
            processing_id: msh.raw(11).to_string(),
            version: msh.raw(12).to_string(),
        }
    }

    /// A best-effort header from bytes that did not parse as a message: the
    /// MSH fields are read by position if the first segment looks like MSH.
    pub fn guess(bytes: &[u8]) -> Header {
        let text = String::from_utf8_lossy(bytes);
        let first = text.split(['\r', '\n']).next().unwrap_or("");
        let mut header = Header::default();
        if first.len() > 8 && first.starts_with("MSH") {
            let sep = first[3..].chars().next().unwrap_or('|');
            let fields: Vec<&str> = first.split(sep).collect();
            let at = |n: usize| fields.get(n - 1).copied().unwrap_or("").to_string();
            header.sending_app = at(3);
            header.sending_facility = at(4);
            header.receiving_app = at(5);
            header.receiving_facility = at(6);
            header.control_id = at(10);
            header.processing_id = at(11);
            header.version = at(12);
            if sep != '|' || fields.get(1).copied() != Some("^~\\&") {
                // Mirror the fields only with the default encoding, which
                // the ACK uses when the original did not parse.
                header.sending_app.clear();
                header.sending_facility.clear();
                header.receiving_app.clear();
                header.receiving_facility.clear();
            }
            for v in [&mut header.control_id, &mut header.processing_id] {
                v.retain(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
            }
        }
        header
    }

    fn is_v25_or_later(&self) -> bool {
        let v = self.version.split('^').next().unwrap_or("");
        let mut parts = v.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(2);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(5);
        (major, minor) >= (2, 5)
    }
}

/// Builds an ACK. `ack_id` becomes the ACK's own MSH-10; `timestamp` its
/// MSH-7 (`YYYYMMDDHHMMSS`).
pub fn build(
    header: &Header,
    code: AckCode,
    failure: Option<&Failure>,
    ack_id: &str,
    timestamp: &str,
) -> Vec<u8> {
    let s = &header.separators;
    let f = s.field;
    let c = s.component;
    let version = if header.version.is_empty() {
        "2.5"
    } else {
        &header.version
    };
    let processing = if header.processing_id.is_empty() {
        "P"
    } else {
        &header.processing_id
    };
    let trigger = &header.trigger;
    let mut out = String::with_capacity(256);
    out.push_str(&format!(
        "MSH{f}{enc}{f}{ra}{f}{rf}{f}{sa}{f}{sf}{f}{timestamp}{f}{f}ACK{c}{trigger}{c}ACK{f}{ack_id}{f}{processing}{f}{version}\r",
        enc = s.encoding_characters(),
        ra = header.receiving_app,
        rf = header.receiving_facility,
        sa = header.sending_app,
        sf = header.sending_facility,
    ));
    out.push_str(&format!("MSA{f}{}{f}{}", code.as_str(), header.control_id));
    if let Some(failure) = failure {
        // MSA-3 (text message) too: deprecated, but many senders show it.
        out.push_str(&format!("{f}{}", s.escape(&failure.text)));
        out.push('\r');
        let text = s.escape(&failure.text);
        let loc = failure.location.clone().unwrap_or_default();
        let t = s.subcomponent;
        if header.is_v25_or_later() {
            let location = if loc.segment.is_empty() {
                String::new()
            } else {
                format!("{}{c}{}{c}{}", loc.segment, loc.sequence, loc.field)
            };
            let severity = if failure.ack == AckCode::Reject || failure.ack == AckCode::Error {
                "E"
            } else {
                "I"
            };
            out.push_str(&format!(
                "ERR{f}{f}{location}{f}{code}{c}{name}{c}HL70357{f}{severity}{f}{f}{f}{f}{text}\r",
                code = failure.code.code(),
                name = failure.code.text(),
            ));
        } else {
            // ERR-1 (ELD): segment^sequence^field^code&text&HL70357.
            out.push_str(&format!(
                "ERR{f}{seg}{c}{seq}{c}{field}{c}{code}{t}{name}{t}HL70357\r",
                seg = loc.segment,
                seq = if loc.segment.is_empty() {
                    String::new()
                } else {
                    loc.sequence.to_string()
                },
                field = if loc.field == 0 {
                    String::new()
                } else {
                    loc.field.to_string()
                },
                code = failure.code.code(),
                name = failure.code.text(),
            ));
        }
    } else {
        out.push('\r');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_the_sender() {
        let m = Message::parse(
            b"MSH|^~\\&|LAB|NORTH|CHARAKA|MAIN|20240101||ORU^R01^ORU_R01|C42|T|2.5.1\rPID|1",
        )
        .unwrap();
        let ack = build(
            &Header::of(&m),
            AckCode::Accept,
            None,
            "A1",
            "20240102030405",
        );
        let ack = String::from_utf8(ack).unwrap();
        assert_eq!(
            ack,
            "MSH|^~\\&|CHARAKA|MAIN|LAB|NORTH|20240102030405||ACK^R01^ACK|A1|T|2.5.1\rMSA|AA|C42\r"
        );
    }

    #[test]
    fn processing_id_must_be_one_the_server_applies() {
        let msg = |p: &str| {
            Message::parse(format!("MSH|^~\\&|A|B|C|D|2024||ADT^A04|9|{p}|2.5.1\rPID|1").as_bytes())
                .unwrap()
        };
        let production = ["P".to_string()];
        assert!(check_processing_id(&msg("P"), &production).is_ok());
        assert!(check_processing_id(&msg("P^I"), &production).is_ok());
        assert!(check_processing_id(&msg("P^T"), &production).is_ok());
        let f = check_processing_id(&msg("T"), &production).unwrap_err();
        assert_eq!(
            (f.ack, f.code),
            (AckCode::Reject, ErrorCode::UnsupportedProcessingId)
        );
        assert_eq!(f.location, Some(Location::new("MSH", 1, 11)));
        assert_eq!(
            f.text,
            "processing id T (training) is not applied by this server, which applies P (production)"
        );
        let f = check_processing_id(&msg(""), &production).unwrap_err();
        assert_eq!(f.code, ErrorCode::RequiredFieldMissing);
        let f = check_processing_id(&msg("X<script>"), &production).unwrap_err();
        assert!(
            f.text.starts_with("an unknown processing id"),
            "no content echoed"
        );
        let f = check_processing_id(&msg("P^Z"), &production).unwrap_err();
        assert_eq!(f.code, ErrorCode::UnsupportedProcessingId);
        let training = ["T".to_string(), "D".to_string()];
        assert!(check_processing_id(&msg("D"), &training).is_ok());
        assert!(check_processing_id(&msg("P"), &training).is_err());
    }

    #[test]
    fn error_segment_by_version() {
        let m = Message::parse(b"MSH|^~\\&|A|B|C|D|2024||ADT^A40|9|P|2.3\rPID|1").unwrap();
        let failure = Failure::error(
            ErrorCode::UnknownKey,
            Some(Location::new("MRG", 1, 1)),
            "no patient has identifier X|Y",
        );
        let ack = String::from_utf8(build(
            &Header::of(&m),
            AckCode::Error,
            Some(&failure),
            "A2",
            "2024",
        ))
        .unwrap();
        assert!(
            ack.contains("MSA|AE|9|no patient has identifier X\\F\\Y\r"),
            "{ack}"
        );
        assert!(
            ack.contains("ERR|MRG^1^1^204&Unknown key identifier&HL70357\r"),
            "{ack}"
        );
        let m = Message::parse(b"MSH|^~\\&|A|B|C|D|2024||ADT^A40|9|P|2.6\rPID|1").unwrap();
        let ack = String::from_utf8(build(
            &Header::of(&m),
            AckCode::Error,
            Some(&failure),
            "A2",
            "2024",
        ))
        .unwrap();
        assert!(
            ack.contains("ERR||MRG^1^1|204^Unknown key identifier^HL70357|E||||no patient"),
            "{ack}"
        );
    }
}
