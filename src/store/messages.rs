//! SQL for the log of inbound HL7 v2 messages (`hl7v2_messages`): each
//! received message with its outcome and the ACK it was answered with. The
//! raw message and the ACK pass through the body codec like resource bodies.
//! Knows nothing of HL7 itself: the service decides what a row says.

use super::codec::{Aad, Codec, MessagePart};
use super::db::{Conn, Query, Row};
use super::StoreError;

/// A row to record.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub sender: &'a str,
    pub control_id: Option<&'a str>,
    pub message_type: &'a str,
    /// Microseconds since the Unix epoch.
    pub received: i64,
    pub status: &'a str,
    pub ack_code: &'a str,
    pub ack: &'a [u8],
    pub error: Option<&'a str>,
    pub resources: Option<&'a str>,
    pub raw: &'a [u8],
    /// The mutual-TLS client certificate's names; None over plain MLLP and
    /// HTTP.
    pub peer_identity: Option<&'a str>,
}

/// A stored message, as listed (without its raw bytes) or read whole.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: i64,
    pub sender: String,
    pub control_id: Option<String>,
    pub message_type: String,
    pub received: i64,
    pub status: String,
    pub ack_code: String,
    pub error: Option<String>,
    pub resources: Option<String>,
    pub attempts: i64,
    /// The mutual-TLS client certificate's names (CN, DNS and URI SANs).
    pub peer_identity: Option<String>,
    /// Present when read whole.
    pub raw: Option<Vec<u8>>,
}

/// The earlier answer to a message with the same sender and control id.
#[derive(Debug, Clone)]
pub struct PriorAck {
    pub id: i64,
    pub status: String,
    pub ack: Vec<u8>,
}

const COLUMNS: &str = "id, sender, control_id, message_type, received, status, ack_code, \
                       error, resources, attempts, peer_identity";

fn opt_text(row: &Row, i: usize) -> Result<Option<String>, StoreError> {
    if row.is_null(i)? {
        Ok(None)
    } else {
        row.text(i).map(Some)
    }
}

/// The associated data of one part of a message row.
pub fn message_aad<'a>(
    tenant: i64,
    sender: &'a str,
    control_id: Option<&'a str>,
    received: i64,
    part: MessagePart,
) -> Aad<'a> {
    Aad::Message {
        tenant,
        sender,
        control_id,
        received,
        part,
    }
}

fn from_row(
    codec: &Codec,
    tenant: i64,
    row: &Row,
    with_raw: bool,
) -> Result<StoredMessage, StoreError> {
    let (sender, control_id, received) = (row.text(1)?, opt_text(row, 2)?, row.int(4)?);
    let raw = if with_raw {
        match row.opt_bytes(11)? {
            Some(stored) => {
                let aad = message_aad(
                    tenant,
                    &sender,
                    control_id.as_deref(),
                    received,
                    MessagePart::Raw,
                );
                Some(codec.decode(stored, &aad)?.to_vec())
            }
            None => None,
        }
    } else {
        None
    };
    Ok(StoredMessage {
        id: row.int(0)?,
        sender,
        control_id,
        message_type: row.text(3)?,
        received,
        status: row.text(5)?,
        ack_code: row.text(6)?,
        error: opt_text(row, 7)?,
        resources: opt_text(row, 8)?,
        attempts: row.int(9)?,
        peer_identity: opt_text(row, 10)?,
        raw,
    })
}

/// The earlier ACK for `(sender, control_id)`, if that message was seen.
pub async fn find_prior(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    sender: &str,
    control_id: &str,
) -> Result<Option<PriorAck>, StoreError> {
    let q = Query::new(
        "SELECT id, status, ack, received FROM hl7v2_messages \
         WHERE tenant = $1 AND sender = $2 AND control_id = $3",
    )
    .int(tenant)
    .text(sender)
    .text(control_id);
    match conn.fetch_optional(&q).await? {
        Some(row) => {
            let ack = row.opt_bytes(2)?.unwrap_or_default();
            let aad = message_aad(
                tenant,
                sender,
                Some(control_id),
                row.int(3)?,
                MessagePart::Ack,
            );
            Ok(Some(PriorAck {
                id: row.int(0)?,
                status: row.text(1)?,
                ack: codec.decode(ack, &aad)?.to_vec(),
            }))
        }
        None => Ok(None),
    }
}

/// Records a message; returns its id.
pub async fn insert(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    m: &NewMessage<'_>,
) -> Result<i64, StoreError> {
    let aad = |part| message_aad(tenant, m.sender, m.control_id, m.received, part);
    let mut q = Query::new(
        "INSERT INTO hl7v2_messages (tenant, sender, control_id, message_type, received, \
         status, ack_code, ack, error, resources, raw, peer_identity) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .int(tenant)
    .text(m.sender);
    q = opt(q, m.control_id);
    q = q
        .text(m.message_type)
        .int(m.received)
        .text(m.status)
        .text(m.ack_code)
        .bytes(codec.encode(m.ack, &aad(MessagePart::Ack)));
    q = opt(q, m.error);
    q = opt(q, m.resources);
    q = q.bytes(codec.encode(m.raw, &aad(MessagePart::Raw)));
    q = opt(q, m.peer_identity);
    let row = conn
        .fetch_optional(&q)
        .await?
        .ok_or_else(|| StoreError::Database("INSERT … RETURNING gave no row".into()))?;
    row.int(0)
}

/// A nullable text parameter: SQL NULL through a typed NULL expression.
fn opt(q: Query, v: Option<&str>) -> Query {
    match v {
        Some(v) => q.text(v),
        None => q.null(),
    }
}

/// Records the outcome of another attempt (a replay).
#[allow(clippy::too_many_arguments)]
pub async fn update_outcome(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    id: i64,
    status: &str,
    ack_code: &str,
    ack: &[u8],
    error: Option<&str>,
    resources: Option<&str>,
) -> Result<(), StoreError> {
    let q = Query::new(
        "SELECT sender, control_id, received FROM hl7v2_messages WHERE tenant = $1 AND id = $2",
    )
    .int(tenant)
    .int(id);
    let row = conn
        .fetch_optional(&q)
        .await?
        .ok_or_else(|| StoreError::Database(format!("no HL7 v2 message {id}")))?;
    let (sender, control_id) = (row.text(0)?, opt_text(&row, 1)?);
    let aad = message_aad(
        tenant,
        &sender,
        control_id.as_deref(),
        row.int(2)?,
        MessagePart::Ack,
    );
    let mut q = Query::new(
        "UPDATE hl7v2_messages SET status = $1, ack_code = $2, ack = $3, error = $4, \
         resources = $5, attempts = attempts + 1 WHERE tenant = $6 AND id = $7",
    )
    .text(status)
    .text(ack_code)
    .bytes(codec.encode(ack, &aad));
    q = opt(q, error);
    q = opt(q, resources);
    conn.execute(&q.int(tenant).int(id)).await?;
    Ok(())
}

/// Messages, newest first, optionally only those with `status`.
pub async fn list(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let q = match status {
        Some(status) => Query::dynamic(format!(
            "SELECT {COLUMNS} FROM hl7v2_messages WHERE tenant = $1 AND status = $2 \
             ORDER BY id DESC LIMIT $3"
        ))
        .int(tenant)
        .text(status)
        .int(limit),
        None => Query::dynamic(format!(
            "SELECT {COLUMNS} FROM hl7v2_messages WHERE tenant = $1 ORDER BY id DESC LIMIT $2"
        ))
        .int(tenant)
        .int(limit),
    };
    conn.fetch_all(&q)
        .await?
        .iter()
        .map(|r| from_row(codec, tenant, r, false))
        .collect()
}

/// One message with its raw bytes.
pub async fn get(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    id: i64,
) -> Result<Option<StoredMessage>, StoreError> {
    let q = Query::dynamic(format!(
        "SELECT {COLUMNS}, raw FROM hl7v2_messages WHERE tenant = $1 AND id = $2"
    ))
    .int(tenant)
    .int(id);
    conn.fetch_optional(&q)
        .await?
        .map(|r| from_row(codec, tenant, &r, true))
        .transpose()
}

/// Blanks the raw bytes and ACK of every message whose `resources` names one
/// of `resources`, and marks it `erased`; returns how many rows changed.
pub async fn erase(
    conn: &mut Conn<'_>,
    tenant: i64,
    resources: &[String],
) -> Result<u64, StoreError> {
    let mut total = 0;
    for r in resources {
        let q = Query::new(
            "UPDATE hl7v2_messages SET raw = $3, ack = $3, status = 'erased', error = NULL \
             WHERE tenant = $1 AND (' ' || resources || ' ') LIKE $2",
        )
        .int(tenant)
        .text(format!("% {r} %"))
        // An empty plain envelope: nothing left to seal.
        .bytes(Codec::plain().encode(b"", &message_aad(tenant, "", None, 0, MessagePart::Raw)));
        total += conn.execute(&q).await?;
    }
    Ok(total)
}
