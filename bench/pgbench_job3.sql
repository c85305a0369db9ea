-- pgbench_job3.sql - a job's lifecycle as three durable commits, as the queue
-- writes it today: insert (pending), running, completed; the job_events trigger
-- fires on each. bench/bench.py runs it with pgbench -M prepared.
INSERT INTO model_training_history (model_type, machine_id, trigger_type, reason, triggered_by, params, queue_name, stage, job_kind) VALUES ('probe', 'c0000000-0000-0000-0000-000000000001', 'manual', 'pgbench', 'bench', '{"steps":1,"step_ms":0}', 'default', 'queued', 'train') RETURNING id AS job_id \gset
UPDATE model_training_history SET training_status = 'running', attempts = attempts + 1, worker_id = 'pgbench', training_start = now(), heartbeat_at = now(), stage = 'starting' WHERE id = :job_id AND training_status = 'pending';
UPDATE model_training_history SET training_status = 'completed', training_end = now(), training_duration_seconds = EXTRACT(epoch FROM now() - training_start), progress = 100, stage = 'completed' WHERE id = :job_id AND training_status = 'running' AND attempts = 1;
