-- Every HL7 v2 message received (MLLP or HTTP), stored before it is
-- acknowledged: the raw bytes (through the body codec), when it arrived,
-- what became of it and the ACK sent, so duplicates are answered with the
-- original ACK and failed messages can be listed and replayed.
CREATE TABLE hl7v2_messages (
    id           BIGSERIAL PRIMARY KEY,
    tenant       BIGINT NOT NULL REFERENCES tenants(id),
    sender       TEXT NOT NULL,          -- MSH-3 and MSH-4 (application|facility)
    control_id   TEXT,                   -- MSH-10; NULL when unreadable
    message_type TEXT NOT NULL,          -- MSH-9, e.g. ADT^A01
    received     BIGINT NOT NULL,       -- microseconds since the Unix epoch
    status       TEXT NOT NULL,          -- applied | failed | rejected
    ack_code     TEXT NOT NULL,          -- AA | AE | AR
    ack          BYTEA NOT NULL,          -- the ACK sent (codec envelope)
    error        TEXT,                   -- why it failed (no message content)
    resources    TEXT,                   -- Type/id of what it wrote, space separated
    attempts     BIGINT NOT NULL DEFAULT 1,
    raw          BYTEA NOT NULL           -- the message as received (codec envelope)
);
CREATE UNIQUE INDEX hl7v2_messages_control ON hl7v2_messages (tenant, sender, control_id);
CREATE INDEX hl7v2_messages_status ON hl7v2_messages (tenant, status, id);
