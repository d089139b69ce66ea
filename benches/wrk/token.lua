-- client_credentials token issuance: POST /auth/token with the client's
-- secret (HTTP Basic, CLIENT_ID / CLIENT_SECRET from benches/token.sh).
dofile("benches/wrk/common.lua")
local mime = "Basic " .. (os.getenv("CLIENT_BASIC") or "")
wrk.method = "POST"
wrk.headers["Authorization"] = mime
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials&scope=system%2FPatient.rs"
wrk.path = "/auth/token"
