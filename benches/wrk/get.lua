-- GET the path in $QUERY (a search), for benches/search.sh.
dofile("benches/wrk/common.lua")
local query = os.getenv("QUERY")
request = function()
  return wrk.format("GET", query)
end
