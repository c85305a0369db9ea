-- load_mix.lua - the mixed API traffic of the load test (bench/load.py,
-- make load): out of every 20 requests, 5 list jobs, 4 list machines, 5 read
-- a metrics trend, 4 read the queue status and 2 trigger a retrain (baseline
-- and anomaly in turn), spread over the machine ids given after "--".
-- A trigger for a machine whose job of that type is still pending or running
-- is refused with 409, so the queue never holds more than two jobs per
-- machine however fast wrk sends.
--
-- At the end it prints one line "LOAD-RESULT {json}": requests, socket
-- errors, status code counts, requests per kind, and the latency
-- percentiles (microseconds) of all requests.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  machines = {}
  for i = 1, #args do
    machines[i] = args[i]
  end
  if #machines == 0 then
    machines[1] = "c0000000-0000-0000-0000-000000000001"
  end
  n = 0
  statuses = {}
  kinds = {}
end

-- Which request the n-th one is (n counts from 0).
local plan = {
  "jobs", "machines", "trend", "queue", "jobs", "trend", "machines", "queue", "trigger", "jobs",
  "trend", "machines", "queue", "jobs", "trend", "machines", "queue", "trigger", "jobs", "trend",
}

local json_headers = {["Content-Type"] = "application/json"}

function request()
  local kind = plan[(n % #plan) + 1]
  local machine = machines[(math.floor(n / #plan) % #machines) + 1]
  local model = (math.floor(n / 10) % 2 == 0) and "baseline" or "anomaly"
  n = n + 1
  kinds[kind] = (kinds[kind] or 0) + 1
  if kind == "jobs" then
    return wrk.format("GET", "/api/v1/jobs?limit=20")
  elseif kind == "machines" then
    return wrk.format("GET", "/api/v1/machines")
  elseif kind == "trend" then
    return wrk.format("GET", "/api/v1/model-performance/metrics/trend?model_type=" .. model ..
      "&machine_id=" .. machine .. "&days=30")
  elseif kind == "queue" then
    return wrk.format("GET", "/api/v1/queue")
  end
  return wrk.format("POST", "/api/v1/model-performance/retrain/trigger", json_headers,
    '{"model_type":"' .. model .. '","machine_id":"' .. machine .. '","reason":"load test"}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function json_counts(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, string.format('"%s":%d', tostring(k), v))
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_statuses, all_kinds = {}, {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses") or {}) do
      all_statuses[k] = (all_statuses[k] or 0) + v
    end
    for k, v in pairs(thread:get("kinds") or {}) do
      all_kinds[k] = (all_kinds[k] or 0) + v
    end
  end
  local e = summary.errors
  io.write(string.format(
    'LOAD-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_4xx_5xx":%d},' ..
    '"statuses":%s,"sent":%s,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    json_counts(all_statuses), json_counts(all_kinds),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
