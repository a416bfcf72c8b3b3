-- wrk script of bench.heartbeats (bench/heartbeats/wrk.py runs it): a closed-loop
-- heartbeat generator in C, so the generator costs a few microseconds per request
-- instead of the Python generator's 50-100.
--
-- Arguments (after "--"): TOKENS_FILE PATH [THREADS]. Each request is UploadHeartbeat with
-- the next node's bearer token (one token a line in TOKENS_FILE; every thread walks the
-- whole list from its own offset) and the body {"sentAt": "<now>"}, re-encoded once a
-- second. PATH "/healthz" sends bodiless GETs instead. done() prints one JSON line.

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_index", counter - 1)
end

local heads = {}
local count = 0
local next_index = 0
local healthz = nil
local second = -1
local tail = ""

function init(args)
  local tokens_file, path, threads = args[1], args[2], tonumber(args[3] or "1")
  local authority = wrk.host .. ":" .. tostring(wrk.port)
  if path == "/healthz" then
    healthz = "GET /healthz HTTP/1.1\r\nHost: " .. authority .. "\r\n\r\n"
    return
  end
  for token in io.lines(tokens_file) do
    if token ~= "" then
      count = count + 1
      heads[count] = "POST " .. path .. " HTTP/1.1\r\nHost: " .. authority ..
        "\r\nContent-Type: application/json\r\nAuthorization: Bearer " .. token .. "\r\n"
    end
  end
  next_index = math.floor(count * (thread_index or 0) / threads)
end

local function body_tail()
  local now = os.time()
  if now ~= second then
    second = now
    local body = '{"sentAt":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ", now) .. '"}'
    tail = "Content-Length: " .. #body .. "\r\n\r\n" .. body
  end
  return tail
end

function request()
  if healthz then
    return healthz
  end
  next_index = next_index % count + 1
  return heads[next_index] .. body_tail()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p99.9":%d,' ..
    '"max":%d,"mean":%.1f}}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
