dofile("benches/wrk/common.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
request = function()
  return wrk.format("POST", "/fhir/Patient", nil, patient_body(nil))
end
