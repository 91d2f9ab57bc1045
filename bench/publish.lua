-- POST /tenants with a unique domain per request (wrk -s publish.lua).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    thread_id = tid
    token = os.getenv("TOKEN") or "bench-token"
    run = os.getenv("RUN") or tostring(os.time())
end

function request()
    counter = counter + 1
    local body = string.format(
        '{"domain":"t%s-%d-%d.bench.example","admin":{"username":"admin","email":"admin@bench.example"},"plan":"Demo"}',
        run, thread_id, counter)
    return wrk.format("POST", "/tenants", {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
    }, body)
end

function done(summary, latency, requests)
    local non2xx = summary.errors.status
    io.write(string.format("publish: requests=%d non2xx=%d rps=%.0f p50=%.2fms p99=%.2fms\n",
        summary.requests, non2xx, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
