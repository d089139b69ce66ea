-- The client certificate a message came with over mutual TLS (MLLP): its
-- Common Name and DNS/URI subject alternative names, as one text
-- (`CN=...; DNS=...; URI=...`). NULL over plain MLLP and HTTP, and for
-- messages received before this column existed.
ALTER TABLE hl7v2_messages ADD COLUMN peer_identity TEXT;
