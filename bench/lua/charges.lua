-- wrk script: POST call charges, rotating over the accounts, one unique idempotency key each.
-- Usage: wrk ... -s bench/lua/charges.lua URL -- <token> <accounts> <prefix> <run-nonce> [path]
-- path: "accounts" (default) or "card-codes" (then accounts counts card codes).
-- Prints "status <code> <count>" lines in done() for every thread's answers.

local threads = {}
local counter = 0
local token, accounts, prefix, nonce, path
-- Globals: thread:set() writes thread_id into each thread, done() reads statuses back.
thread_id = 0
statuses = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token, accounts, prefix, nonce = args[1], tonumber(args[2]), args[3], args[4]
  path = args[5] or "accounts"
  -- Each thread starts at a different account so the connections spread over the accounts.
  counter = thread_id * 997
end

function request()
  counter = counter + 1
  local account = string.format("%s%05d", prefix, (counter % accounts) + 1)
  local body = string.format(
    '{"amount": "0.01", "description": "Bench call", "idempotency_key": "%s-%d-%d"}',
    nonce, thread_id, counter)
  return wrk.format("POST", "/api/v1/" .. path .. "/" .. account .. "/charges", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for code, n in pairs(counts) do
      totals[code] = (totals[code] or 0) + n
    end
  end
  for code, n in pairs(totals) do
    io.write(string.format("status %d %d\n", code, n))
  end
end
