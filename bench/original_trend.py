"""original_trend.py - the original system's approach to GET
/api/v1/model-performance/metrics/trend, rebuilt for a same-machine comparison
(bench/bench.py, api section): FastAPI + asyncpg, the machine looked up, the
metric rows of the period fetched, a least-squares slope computed in Python,
JSON out. Written from the interface description in the project brief; it is a
stand-in for the old service's cost, not its code. Run under uvicorn:

    ORIG_DSN=postgresql://... python3 -m uvicorn original_trend:app --workers 2
"""
import os
from datetime import datetime, timedelta, timezone

import asyncpg
from fastapi import FastAPI, HTTPException

app = FastAPI()
pool = None


@app.on_event("startup")
async def startup():
    global pool
    pool = await asyncpg.create_pool(os.environ["ORIG_DSN"], min_size=2, max_size=10)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.get("/api/v1/model-performance/metrics/trend")
async def trend(model_type: str, machine_id: str, days: int = 30):
    since = datetime.now(timezone.utc) - timedelta(days=days)
    async with pool.acquire() as conn:
        machine = await conn.fetchrow("SELECT name FROM machines WHERE id = $1::uuid", machine_id)
        if machine is None:
            raise HTTPException(status_code=404, detail="Machine not found")
        rows = await conn.fetch(
            "SELECT id, model_id, model_type, machine_id, model_version, evaluation_date, "
            "r_squared, rmse, mae, mape, drift_detected, drift_score, sample_count, "
            "data_completeness FROM model_performance_metrics WHERE machine_id = $1::uuid "
            "AND model_type = $2 AND evaluation_date >= $3 ORDER BY evaluation_date",
            machine_id, model_type, since)
    if not rows:
        raise HTTPException(status_code=404, detail="No metrics found")
    metrics = [{k: (str(v) if k in ("id", "model_id", "machine_id") and v is not None else v)
                for k, v in dict(r).items()} for r in rows]
    direction, rate = "stable", 0.0
    ys = [r["r_squared"] for r in rows if r["r_squared"] is not None]
    if len(ys) >= 2:
        xs = list(range(len(ys)))
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        rate = slope / my * 100 if my else 0.0
        direction = "degrading" if rate < -0.5 else "improving" if rate > 0.5 else "stable"
    return {"model_type": model_type, "machine_id": machine_id, "machine_name": machine["name"],
            "metrics": metrics, "trend_direction": direction, "degradation_rate": rate}
