-- Shared by the wrk scripts: a Patient body and the result line.
patient_body = function(id)
  local id_part = ""
  if id then id_part = '"id":"' .. id .. '",' end
  return '{"resourceType":"Patient",' .. id_part ..
    '"identifier":[{"system":"http://hospital.example/mrn","value":"' .. math.random(1, 1000000000) .. '"}],' ..
    '"active":true,"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],' ..
    '"telecom":[{"system":"phone","value":"(03) 5555 6473","use":"work"}],"gender":"male",' ..
    '"birthDate":"1974-12-25","address":[{"use":"home","line":["534 Erewhon St"],"city":"PleasantVille",' ..
    '"state":"Vic","postalCode":"3999"}]}'
end

seeded = tonumber(os.getenv("SEEDED") or "1000")

-- The bearer token of benches/lib.sh (authorization on).
if os.getenv("TOKEN") then
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
