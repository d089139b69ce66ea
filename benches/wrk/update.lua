dofile("benches/wrk/common.lua")
wrk.headers["Content-Type"] = "application/fhir+json"
request = function()
  local id = "p" .. math.random(0, seeded - 1)
  return wrk.format("PUT", "/fhir/Patient/" .. id, nil, patient_body(id))
end
