dofile("benches/wrk/common.lua")
request = function()
  return wrk.format("GET", "/fhir/Patient/p" .. math.random(0, seeded - 1))
end
