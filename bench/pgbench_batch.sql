-- pgbench_batch.sql - the ceiling of a batched dispatch (docs/performance.md, "What limits the
-- unmet goals"): the lifecycle of pgbench_job2.sql (insert, completed; "running" in Redis), but
-- 32 jobs per statement, as a worker that claims and settles 32 jobs at a time would write them.
-- The per-row work stays (indexes, the updated_at and job_events triggers); the per-statement
-- and per-commit work is shared by 32 jobs. One transaction = 32 jobs. Run by bench/bench.py.
WITH ins AS (INSERT INTO model_training_history (model_type, machine_id, trigger_type, reason, triggered_by, params, queue_name, stage, job_kind) SELECT 'probe', 'c0000000-0000-0000-0000-000000000001', 'manual', 'pgbench', 'bench', '{"steps":1,"step_ms":0}', 'default', 'queued', 'train' FROM generate_series(1, 32) RETURNING id) SELECT array_agg(id)::text AS job_ids FROM ins \gset
UPDATE model_training_history SET training_status = 'completed', attempts = attempts + 1, worker_id = 'pgbench', training_start = now(), training_end = now(), training_duration_seconds = 0, progress = 100, stage = 'completed' WHERE id = ANY (:job_ids::uuid[]) AND training_status = 'pending';
