-- wrk_trigger.lua - POSTs baseline retrain triggers, each for a different machine
-- (bench/bench.py seeds machines b0000000-0000-0000-0000-000000000000 upward, 100,000 of
-- them): thread t of wrk takes machines t, t + 8, t + 16, ... (up to 8 threads), so no two
-- requests collide; a thread wraps after 12,500 requests.
--
-- `base` is a global on purpose: setup() writes it into each thread's own Lua state with
-- thread:set, which a `local` at file level would shadow (every thread then started at 0
-- and half the requests met the other thread's pending job: 409).
local counter = 0
local stride = 8
base = 0
local next_base = 0

function setup(thread)
  thread:set("base", next_base)
  next_base = next_base + 1
end

function init(args)
  counter = 0
end

function request()
  local n = base + counter * stride
  counter = counter + 1
  local id = string.format("b0000000-0000-0000-0000-%012x", n % 100000)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
    '{"model_type":"baseline","machine_id":"' .. id .. '","reason":"bench"}')
end
