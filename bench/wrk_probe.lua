-- wrk_probe.lua - POSTs no-op probe jobs (bench/bench.py, dispatch section).
-- Probes are exempt from the one-active-job-per-machine index, so one machine does.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model_type":"probe","machine_id":"c0000000-0000-0000-0000-000000000001",' ..
           '"params":{"steps":1,"step_ms":0}}'
