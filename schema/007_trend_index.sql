-- 007_trend_index.sql: the metric trend's own index. GET .../metrics/trend reads one machine's
-- and model type's newest evaluations on the time axis COALESCE(evaluation_end,
-- evaluation_date), newest first: an index on that expression, in that order, lets it read
-- them in order and stop at its row limit instead of collecting and sorting the whole window
-- (the sort was about a sixth of PostgreSQL's time per trend request).
CREATE INDEX ix_performance_trend
    ON model_performance_metrics (machine_id, model_type,
                                  (COALESCE(evaluation_end, evaluation_date)) DESC,
                                  created_at DESC, id DESC);
