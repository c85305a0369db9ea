-- 005_job_event_trigger.sql: records every status change of a job in job_events, whoever makes
-- it (API, worker, housekeeping, enmsctl, an operator's SQL), so a job's history can never miss
-- a transition. The row carries the attempt (the fencing token) and the worker that held the
-- job; its message is the error text when there is one, else the stage (which holds the reason
-- of a re-queue, such as "lease expired: worker w1 lost").

CREATE FUNCTION enms_record_job_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_events (job_id, from_status, to_status, attempt, worker_id, message)
        VALUES (NEW.id, NULL, NEW.training_status, NEW.attempts, NEW.worker_id, NEW.reason);
    ELSIF NEW.training_status IS DISTINCT FROM OLD.training_status THEN
        INSERT INTO job_events (job_id, from_status, to_status, attempt, worker_id, message)
        VALUES (NEW.id, OLD.training_status, NEW.training_status, NEW.attempts,
                COALESCE(NEW.worker_id, OLD.worker_id), COALESCE(NEW.error_message, NEW.stage));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER trg_training_job_events
    AFTER INSERT OR UPDATE OF training_status ON model_training_history
    FOR EACH ROW EXECUTE FUNCTION enms_record_job_event();
