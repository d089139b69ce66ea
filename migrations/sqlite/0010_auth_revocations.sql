-- One counter every node watches: revoking a client or disabling (or
-- enabling) an account adds one, and a node that sees a new value reads the
-- revoked clients and disabled accounts again, so their access tokens stop
-- working on every node without waiting for the tokens to expire.
CREATE TABLE auth_revocations (
    id         INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL
);
INSERT INTO auth_revocations (id, generation) VALUES (1, 0);
