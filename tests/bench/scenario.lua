-- The wrk side of tests/bench/run.py: one scenario per wrk run.
--
-- Environment: BENCH_SCENARIO (health, list, list-token, get, sync, create, update),
-- BENCH_TOKEN (user A's access token; for list-token, a personal access token of A's),
-- BENCH_IDS (a file with A's task ids, one a line), BENCH_SINCE (for sync: a change-feed
-- position that is up to date) and BENCH_SUMMARY (where done() writes the run's figures as
-- JSON).
--
-- wrk's own error count only starts at status 400, so every response outside 2xx is counted
-- here, per thread; done() adds the threads' counts up.

local scenario = os.getenv("BENCH_SCENARIO") or "health"
local token = os.getenv("BENCH_TOKEN") or ""
local ids_path = os.getenv("BENCH_IDS")
local summary_path = os.getenv("BENCH_SUMMARY")
local since = os.getenv("BENCH_SINCE") or ""

local STATUSES = { "pending", "in_progress", "completed" }
local PRIORITIES = { "low", "medium", "high" }

-- Globals, so that setup() and done() can reach them in each thread with thread:set/get.
thread_number = 0
non_2xx = 0

local threads = {}
local ids = {}
local created = 0
local fixed_request = nil
-- wrk.format() writes Content-Length into the headers table it is given, so requests with a
-- body never share a table with requests without one.
local auth_headers = {}
local json_headers = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local function read_ids(path)
  local list = {}
  for line in io.lines(path) do
    list[#list + 1] = tonumber(line)
  end
  return list
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
  auth_headers = { ["Authorization"] = "Bearer " .. token }
  json_headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if ids_path then
    ids = read_ids(ids_path)
  end
  if scenario == "health" then
    fixed_request = wrk.format("GET", "/health", {})
  elseif scenario == "list" or scenario == "list-token" then
    fixed_request = wrk.format("GET", "/api/v1/tasks?limit=20", auth_headers)
  elseif scenario == "sync" then
    -- A client polling the change feed when nothing changed: the common case.
    fixed_request = wrk.format("GET", "/api/v1/tasks/changes?since=" .. since, auth_headers)
  end
end

local function pick(list)
  return list[math.random(#list)]
end

local function task_path()
  return "/api/v1/tasks/" .. pick(ids)
end

local function create_body()
  created = created + 1
  return string.format(
    '{"title": "Bench task %d-%d", "description": "Created under load by wrk thread %d", '
      .. '"status": "%s", "priority": "%s"}',
    thread_number, created, thread_number, pick(STATUSES), pick(PRIORITIES)
  )
end

local function update_body()
  return string.format(
    '{"title": "Updated under load %d", "description": "Replaced by a PUT", '
      .. '"status": "%s", "priority": "%s", "due_date": "2027-%02d-%02dT09:30:00Z"}',
    math.random(1000000), pick(STATUSES), pick(PRIORITIES), math.random(12), math.random(28)
  )
end

function request()
  if fixed_request then
    return fixed_request
  elseif scenario == "get" then
    return wrk.format("GET", task_path(), auth_headers)
  elseif scenario == "create" then
    return wrk.format("POST", "/api/v1/tasks", json_headers, create_body())
  elseif scenario == "update" then
    return wrk.format("PUT", task_path(), json_headers, update_body())
  end
  error("unknown BENCH_SCENARIO " .. scenario)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local total_non_2xx = 0
  for _, thread in ipairs(threads) do
    total_non_2xx = total_non_2xx + thread:get("non_2xx")
  end
  local errors = summary.errors
  local file = assert(io.open(summary_path, "w"))
  file:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, '
      .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p99": %d}}\n',
    summary.requests, summary.duration, summary.bytes, total_non_2xx,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)
  ))
  file:close()
end
