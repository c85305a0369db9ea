-- wrk_trigger.lua - POSTs baseline retrain triggers, each for a different machine
-- (bench/bench.py seeds machines b0000000-0000-0000-0000-000000000000 upward):
-- thread t of wrk takes machines t, t + 8, t + 16, ... so no two requests collide.
local counter = 0
local stride = 8
local base = 0

function setup(thread)
  thread:set("base", base)
  base = base + 1
end

function init(args)
  counter = 0
end

function request()
  local n = base + counter * stride
  counter = counter + 1
  local id = string.format("b0000000-0000-0000-0000-%012x", n % 20000)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
    '{"model_type":"baseline","machine_id":"' .. id .. '","reason":"bench"}')
end
