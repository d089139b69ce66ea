-- POSTs the transaction Bundle named by $BUNDLE, again and again.
dofile("benches/wrk/common.lua")
local f = assert(io.open(os.getenv("BUNDLE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Prefer"] = "return=minimal"
