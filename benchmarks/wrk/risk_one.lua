-- wrk script of benchmarks/serving_api.py: POST /v1/risk with ONE order id per request, each
-- request the next id of IDS_FILE (every open order of the benchmark world, shuffled: no id
-- repeats within a run of fewer requests than there are ids), with the key in OTD_KEY.
-- RATE (optional, requests/s over all connections): pace the requests to that rate, wrk2-style
-- (wrk 4.1 has no -R): each request takes the next slot of one schedule and waits for it in
-- delay(). Latency is still timed by wrk from each request's send.
-- done() prints one line `RESULT {json}` for the benchmark to read.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } otd_timespec;
int clock_gettime(int clk_id, otd_timespec *tp);
]])
local now_ts = ffi.new("otd_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("OTD_KEY"),
}
local next_id = tonumber(os.getenv("IDS_START") or "0")
local rate = tonumber(os.getenv("RATE") or "0")
local slot = nil

function request()
  next_id = next_id % #ids + 1
  local body = '{"orders":[{"order_id":"' .. ids[next_id] .. '"}]}'
  return wrk.format("POST", "/v1/risk", headers, body)
end

if rate > 0 then
  local interval = 1000.0 / rate
  function delay()
    local t = now_ms()
    if slot == nil or slot < t - interval then
      slot = t -- start, or fell behind by more than a slot: do not burst to catch up
    else
      slot = slot + interval
    end
    return math.max(0, math.floor(slot - t + 0.5))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
