-- Two-step sign-in (TOTP, RFC 6238) and account sessions.
-- The TOTP secret is sealed through the body codec (like the signing keys);
-- backup codes are kept only as SHA-256 hashes (80 random bits each).
CREATE TABLE auth_mfa (
    username  TEXT PRIMARY KEY,
    secret    BLOB NOT NULL,            -- sealed 20-byte TOTP secret
    enabled   INTEGER NOT NULL DEFAULT 0, -- 1 once a first code confirmed it
    last_step INTEGER NOT NULL DEFAULT 0, -- the last time step accepted: each code works once
    created   INTEGER NOT NULL
);

CREATE TABLE auth_backup_codes (
    username  TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, code_hash)
);
