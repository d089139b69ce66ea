//! The client of a mutual-TLS MLLP connection: the names its verified
//! certificate carries, recorded with each of its messages, and the sender
//! binding (`mllp_tls_bind_sender`) that ties MSH-3/MSH-4 to them.
//!
//! rustls has verified the chain before a name is read here; this module
//! only reads names (x509-parser), it decides nothing about trust. Pure: no
//! I/O, no logging.

use x509_parser::extensions::GeneralName;

use super::ack::{ErrorCode, Failure, Location};

/// Longest value kept of one name (a Common Name is at most 64 characters
/// by X.520; SANs have no bound).
const MAX_NAME_CHARS: usize = 256;

/// SANs of one kind shown in the log row and the error text; the binding
/// checks them all.
const MAX_SHOWN: usize = 8;

/// The names of a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject's Common Name (the first, when there are several).
    pub common_name: Option<String>,
    /// The subject as a whole (RFC 4514 style), shown when there is no CN.
    pub subject: String,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// URIs of the subject alternative name extension.
    pub uris: Vec<String>,
}

/// A client certificate whose names could not be read.
#[derive(Debug)]
pub struct Unreadable(pub String);

impl ClientIdentity {
    /// Reads the names of a DER certificate (the end-entity certificate of
    /// the chain the client presented).
    pub fn from_der(der: &[u8]) -> Result<ClientIdentity, Unreadable> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Unreadable(format!("the certificate does not parse: {e}")))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut identity = ClientIdentity {
            common_name,
            subject: cert.subject().to_string(),
            ..ClientIdentity::default()
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|e| Unreadable(format!("the subject alternative names do not parse: {e}")))?;
        for name in san.iter().flat_map(|san| san.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => identity.dns_names.push(dns.to_string()),
                GeneralName::URI(uri) => identity.uris.push(uri.to_string()),
                _ => {}
            }
        }
        Ok(identity)
    }

    /// Whether `name` is the Common Name or one of the DNS names (ASCII
    /// case ignored, as DNS names compare; a CN compares the same way).
    pub fn is_named(&self, name: &str) -> bool {
        !name.is_empty()
            && self
                .common_name
                .iter()
                .chain(self.dns_names.iter())
                .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The identity as the message log records it and `charaka hl7 list`
    /// shows it: `CN=…; DNS=…; URI=…` (the whole subject when there is no
    /// CN), control characters replaced, each name and the number of SANs
    /// bounded.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match &self.common_name {
            Some(cn) => parts.push(format!("CN={}", shown(cn))),
            None if !self.subject.is_empty() => {
                parts.push(format!("subject={}", shown(&self.subject)))
            }
            None => {}
        }
        for (kind, names) in [("DNS", &self.dns_names), ("URI", &self.uris)] {
            for name in names.iter().take(MAX_SHOWN) {
                parts.push(format!("{kind}={}", shown(name)));
            }
            if names.len() > MAX_SHOWN {
                parts.push(format!("{} more {kind}", names.len() - MAX_SHOWN));
            }
        }
        parts.join("; ")
    }

    /// The names the binding accepts, for the error text.
    fn bindable(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        if let Some(cn) = &self.common_name {
            names.push(format!("CN `{}`", shown(cn)));
        }
        for dns in self.dns_names.iter().take(MAX_SHOWN) {
            names.push(format!("DNS `{}`", shown(dns)));
        }
        if names.is_empty() {
            "neither a Common Name nor a DNS name".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// The TLS client of a connection, as the listener hands it to
/// `ingest::handle`.
#[derive(Debug, Clone)]
pub struct Client {
    pub identity: ClientIdentity,
    /// `mllp_tls_bind_sender`: MSH-3/MSH-4 must name the certificate.
    pub bind_sender: bool,
}

/// The words that mark a log row refused by the sender binding (its error
/// text); such a row is never replayed.
pub const NOT_BOUND: &str = "do not name the client certificate";

/// The sender binding: Ok when it is off, or when MSH-3 or MSH-4 (their
/// first components, `application` and `facility`) is the certificate's
/// Common Name or one of its DNS names; otherwise the `AR`: error 103
/// (table value not found) at MSH-4, since the sending application and
/// facility (HD, tables 0361 and 0362) are not among those this
/// connection may send for, with a text naming both fields and the
/// certificate's names.
pub fn check_sender(client: &Client, application: &str, facility: &str) -> Result<(), Failure> {
    let identity = &client.identity;
    if !client.bind_sender || identity.is_named(application) || identity.is_named(facility) {
        return Ok(());
    }
    Err(Failure::reject(
        ErrorCode::TableValueNotFound,
        Some(Location::new("MSH", 1, 4)),
        format!(
            "MSH-3 (sending application) `{}` and MSH-4 (sending facility) `{}` {NOT_BOUND} \
             ({}); the message was not applied",
            shown_field(application),
            shown_field(facility),
            identity.bindable()
        ),
    ))
}

/// A name as shown: control characters replaced, at most
/// `MAX_NAME_CHARS` characters.
fn shown(name: &str) -> String {
    bounded(name, MAX_NAME_CHARS)
}

/// An MSH-3/MSH-4 value as shown in the error (sent back in the ACK and
/// kept in the log): 64 characters at most.
fn shown_field(value: &str) -> String {
    bounded(value, 64)
}

fn bounded(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7v2::ack::AckCode;

    fn identity(cn: Option<&str>, dns: &[&str]) -> ClientIdentity {
        ClientIdentity {
            common_name: cn.map(str::to_string),
            subject: cn.map(|c| format!("CN={c}")).unwrap_or_default(),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            uris: Vec::new(),
        }
    }

    fn bound(identity: ClientIdentity) -> Client {
        Client {
            identity,
            bind_sender: true,
        }
    }

    #[test]
    fn the_names_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec![
            "lab.north.example".to_string(),
            "LAB2.north.example".to_string(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "NORTHLAB");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "North Hospital");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://north.example/lab".try_into().unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = ClientIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.common_name.as_deref(), Some("NORTHLAB"));
        assert_eq!(id.dns_names, ["lab.north.example", "LAB2.north.example"]);
        assert_eq!(id.uris, ["spiffe://north.example/lab"]);
        assert_eq!(
            id.summary(),
            "CN=NORTHLAB; DNS=lab.north.example; DNS=LAB2.north.example; URI=spiffe://north.example/lab"
        );
        assert!(id.is_named("northlab"));
        assert!(id.is_named("lab2.NORTH.example"));
        assert!(
            !id.is_named("spiffe://north.example/lab"),
            "URIs do not bind"
        );
        assert!(!id.is_named(""));
        assert!(ClientIdentity::from_der(b"not a certificate").is_err());
    }

    #[test]
    fn without_a_common_name_the_subject_is_shown() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "North Hospital");
        let key = rcgen::KeyPair::generate().unwrap();
        let id = ClientIdentity::from_der(params.self_signed(&key).unwrap().der()).unwrap();
        assert_eq!(id.common_name, None);
        assert_eq!(id.summary(), "subject=O=North Hospital");
    }

    #[test]
    fn summary_is_bounded_and_has_no_control_characters() {
        let mut id = identity(Some("a\nb"), &[]);
        id.dns_names = (0..10).map(|i| format!("h{i}.example")).collect();
        let s = id.summary();
        assert!(s.starts_with("CN=a?b; DNS=h0.example"), "{s}");
        assert!(s.ends_with("DNS=h7.example; 2 more DNS"), "{s}");
        let long = identity(Some(&"x".repeat(300)), &[]).summary();
        assert_eq!(long.chars().count(), "CN=".len() + 256 + 1);
    }

    #[test]
    fn the_sender_binding() {
        let client = bound(identity(Some("NORTHLAB"), &["lab.north.example"]));
        assert!(
            check_sender(&client, "LAB", "northlab").is_ok(),
            "MSH-4 = CN"
        );
        assert!(check_sender(&client, "NorthLab", "X").is_ok(), "MSH-3 = CN");
        assert!(
            check_sender(&client, "LAB.NORTH.EXAMPLE", "X").is_ok(),
            "DNS"
        );
        let f = check_sender(&client, "LAB", "SOUTH").unwrap_err();
        assert_eq!(
            (f.ack, f.code),
            (AckCode::Reject, ErrorCode::TableValueNotFound)
        );
        assert_eq!(f.location, Some(Location::new("MSH", 1, 4)));
        assert_eq!(
            f.text,
            "MSH-3 (sending application) `LAB` and MSH-4 (sending facility) `SOUTH` do not \
             name the client certificate (CN `NORTHLAB`, DNS `lab.north.example`); the message \
             was not applied"
        );
        let f = check_sender(&bound(identity(None, &[])), "", "").unwrap_err();
        assert!(
            f.text.contains("(neither a Common Name nor a DNS name)"),
            "{}",
            f.text
        );
        let off = Client {
            bind_sender: false,
            ..client
        };
        assert!(check_sender(&off, "LAB", "SOUTH").is_ok());
    }
}
