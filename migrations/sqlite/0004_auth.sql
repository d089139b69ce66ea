-- SMART on FHIR authorization server: accounts, clients, signing keys and
-- the short-lived state of the OAuth flows. Secrets are stored as hashes
-- (argon2id for passwords, SHA-256 for server-generated random tokens).
-- `created` and `retired` are microseconds since the Unix epoch (UTC);
-- `expires` is in seconds, like the `exp` of a JWT.

CREATE TABLE auth_users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,            -- admin, practitioner, patient
    fhir_user     TEXT,                     -- e.g. Practitioner/123, Patient/9
    disabled      INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL
);

CREATE TABLE auth_clients (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,            -- public, symmetric, asymmetric
    secret_hash   TEXT,                     -- SHA-256 of the secret (symmetric)
    redirect_uris TEXT NOT NULL,            -- JSON array, matched exactly
    scope         TEXT NOT NULL,            -- the scopes it may be granted
    jwks          TEXT,                     -- JSON Web Key Set (asymmetric)
    jwks_uri      TEXT,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL
);

CREATE TABLE auth_signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key BLOB NOT NULL,              -- PKCS#8 DER
    public_jwk  TEXT NOT NULL,
    created     INTEGER NOT NULL,
    retired     INTEGER                     -- no longer signs from then on
);

-- Authorization codes, refresh tokens and EHR launch contexts, by the hash
-- of the token the client holds.
CREATE TABLE auth_grants (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,               -- code, refresh, launch
    client_id  TEXT,
    username   TEXT,
    scope      TEXT NOT NULL,
    context    TEXT NOT NULL,               -- JSON: patient, encounter, redirect_uri, PKCE, nonce ...
    family     TEXT NOT NULL,               -- refresh tokens rotated from one grant share a family
    expires    INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created    INTEGER NOT NULL
);
CREATE INDEX auth_grants_by_family ON auth_grants (family);

-- Client assertion ids seen (private_key_jwt replay protection).
CREATE TABLE auth_assertions (
    client_id TEXT NOT NULL,
    jti       TEXT NOT NULL,
    expires   INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Access tokens revoked before they expired.
CREATE TABLE auth_revoked_tokens (
    jti     TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);

-- What a user allowed a client, so they are not asked again.
CREATE TABLE auth_consents (
    username  TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope     TEXT NOT NULL,
    created   INTEGER NOT NULL,
    PRIMARY KEY (username, client_id)
);
