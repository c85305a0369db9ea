-- pgbench_job2.sql - the lifecycle the dispatch plan aims at: two durable commits
-- (insert, completed); "running" lives in Redis and the completion writes the start
-- time too. The job_events trigger fires on each. Run by bench/bench.py.
INSERT INTO model_training_history (model_type, machine_id, trigger_type, reason, triggered_by, params, queue_name, stage, job_kind) VALUES ('probe', 'c0000000-0000-0000-0000-000000000001', 'manual', 'pgbench', 'bench', '{"steps":1,"step_ms":0}', 'default', 'queued', 'train') RETURNING id AS job_id \gset
UPDATE model_training_history SET training_status = 'completed', attempts = attempts + 1, worker_id = 'pgbench', training_start = now(), training_end = now(), training_duration_seconds = 0, progress = 100, stage = 'completed' WHERE id = :job_id AND training_status = 'pending';
