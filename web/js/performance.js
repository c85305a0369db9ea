// performance.js - the Model Performance page: machine/model/period controls, Trigger
// Retraining (confirm, overlay for at least 2 s, toasts with the seed's messages, then a live
// progress bar following the job), alert banners with Acknowledge/Resolve, stat cards, the
// energy chart with baseline, forecast band and anomalies, metric trend and drift charts, and
// the model versions with Rollback. Endpoints that answer 404/501 show "No data yet".
import { ApiError, get, getOr, post } from './api.js';
import {
  $, badge, confirmDialog, drawChart, el, fmtDate, fmtNum, fmtTime, metricSummary, overlay,
  showError, showInfo, showSuccess, timeAxis,
} from './ui.js';

const PERF = '/api/v1/model-performance';
// At least 2 s; the 50 ms margin covers timer clamping, so no clock ever reads 1.999 s.
export const MIN_LOADING_MS = 2050;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const MSG_IN_PROGRESS = 'Another training job is currently running for this model. '
  + 'Please wait for it to complete or check the training history.';
const MSG_NO_MODEL = 'No model found to retrain. Please train a baseline model first.';
const MSG_NO_API = 'Could not connect to the API. Please check your connection.';

let tracked = null;      // {id, timer, status}
// Recent job events by job id (at most RECENT_MAX jobs): a job may run through its stages
// while the overlay still shows, before its id is known; trackJob replays them.
const RECENT_MAX = 100;
const recent = new Map();
let loadSeq = 0;         // drops answers of an older refresh
let visible = false;

const sel = () => ({ machine_id: $('machine').value, model_type: $('model-type').value, days: Number($('period').value) });

export function init(app) {
  app.fillMachines($('machine'), app.machines, false);
  if (!app.machines.length) $('machine').append(el('option', { value: '', text: 'no machines' }));
  for (const id of ['machine', 'model-type', 'period']) $(id).addEventListener('change', () => refresh(app));
  $('refresh-btn').addEventListener('click', () => refresh(app));
  $('trigger-btn').addEventListener('click', () => triggerRetrain(app));
  $('perf-controls').addEventListener('submit', (e) => e.preventDefault());
}

export function show(app) { visible = true; refresh(app); }
export function hide() { visible = false; }

export function onEvent(app, name, data) {
  if (!data.job_id) return;
  if (!recent.has(data.job_id)) {
    if (recent.size >= RECENT_MAX) recent.delete(recent.keys().next().value);
    recent.set(data.job_id, []);
  }
  recent.get(data.job_id).push(data);
  if (tracked && data.job_id === tracked.id) applyProgress(app, data.status, data.progress_pct, data.stage, data.error_message);
  // A version may have appeared or changed: refresh when a job of this page's selection ends.
  if (visible && TERMINAL.has(data.status) && data.machine_id === sel().machine_id
      && (!tracked || data.job_id !== tracked.id)) refresh(app);
}

// ---- Trigger Retraining -------------------------------------------------------------------

async function triggerRetrain(app) {
  const { machine_id, model_type } = sel();
  if (!machine_id) { showError('Training Failed', 'Choose a machine first.'); return; }
  const ok = await confirmDialog('Trigger Retraining',
    `Retrain the ${$('model-type').selectedOptions[0].textContent} model of ${app.machineName(machine_id)}?`,
    'Trigger Retraining');
  if (!ok) return;
  overlay(true, 'Starting training…');
  $('trigger-btn').disabled = true;
  // The seed's rule: the overlay stays at least 2 s, longer if the API is slower.
  const minLoading = new Promise((r) => setTimeout(r, MIN_LOADING_MS));
  const call = post(`${PERF}/retrain/trigger`, { model_type, machine_id, reason: 'manual retrain from the dashboard' });
  const [res] = await Promise.allSettled([call, minLoading]);
  overlay(false);
  $('trigger-btn').disabled = false;
  if (res.status === 'fulfilled') {
    const id = res.value.training_job_id;
    showSuccess('Training Started!', `Job ID: ${id}`);
    trackJob(app, id);
    refresh(app);
    return;
  }
  const e = res.reason;
  const why = e instanceof ApiError ? `${e.body.reason || ''} ${e.message}` : String(e);
  if (e instanceof ApiError && e.status === 409 && /already in progress/i.test(why)) {
    showError('Training In Progress', MSG_IN_PROGRESS);
    if (e.body.training_job_id) trackJob(app, e.body.training_job_id);
  } else if (e instanceof ApiError && e.status === 404) {
    showError('Training Failed', MSG_NO_MODEL);
  } else if (e instanceof ApiError && e.network) {
    showError('Training Failed', MSG_NO_API);
  } else {
    showError('Training Failed', e.message || String(e));
  }
}

// Follows one job to its end: live events, and a poll of the job every second as a backstop.
function trackJob(app, id) {
  if (tracked) clearInterval(tracked.timer);
  tracked = { id, status: 'pending', timer: null };
  $('job-progress').hidden = false;
  $('job-progress-id').textContent = id;
  $('job-progress-bar').setAttribute('aria-valuenow', '0');
  $('job-stages').replaceChildren();
  applyProgress(app, 'pending', 0, 'queued', null);
  for (const d of recent.get(id) || []) applyProgress(app, d.status, d.progress_pct, d.stage, d.error_message);
  const poll = async () => {
    if (!tracked || tracked.id !== id) return;
    try {
      const j = await get(`/api/v1/jobs/${id}`);
      const live = j.live || {};
      applyProgress(app, j.training_status, live.progress ?? j.progress, live.stage ?? j.stage, j.error_message);
    } catch { /* the API may be down for a moment: keep the last state */ }
  };
  tracked.timer = setInterval(poll, 1000);
  poll();
}

function applyProgress(app, status, pct, stage, error) {
  if (!tracked || TERMINAL.has(tracked.status)) return;
  pct = Math.max(0, Math.min(100, Math.round(Number(pct) || 0)));
  if (status === 'completed') pct = 100;
  const bar = $('job-progress-bar');
  const prev = Number(bar.getAttribute('aria-valuenow')) || 0;
  if (status === 'running' || status === 'pending') pct = Math.max(pct, prev); // never goes back
  bar.setAttribute('aria-valuenow', String(pct));
  bar.dataset.status = status;
  bar.dataset.stage = stage || '';
  $('job-progress-fill').style.width = `${pct}%`;
  $('job-progress-text').textContent = `${status}${stage ? ` — ${stage}` : ''} (${pct}%)`;
  // The trail of stages the job went through, each with the percent it reached.
  const trail = $('job-stages');
  const label = stage || status;
  const lastLi = trail.lastElementChild;
  if (lastLi && lastLi.dataset.stage === label) {
    lastLi.dataset.pct = String(pct);
    lastLi.textContent = `${label} ${pct}%`;
  } else {
    trail.append(el('li', { dataset: { stage: label, status, pct: String(pct) }, text: `${label} ${pct}%` }));
  }
  if (TERMINAL.has(status)) {
    tracked.status = status;
    clearInterval(tracked.timer);
    if (status === 'completed') showSuccess('Training Completed', `Job ${tracked.id} finished: a new version is ready.`);
    else if (status === 'failed') showError('Training Failed', error || 'The training job failed; see its details in the history.');
    else showInfo('Training Cancelled', `Job ${tracked.id} was cancelled.`);
    refresh(app);
  }
}

// ---- data ---------------------------------------------------------------------------------

export async function refresh(app) {
  const { machine_id, model_type, days } = sel();
  if (!machine_id) return;
  const seq = ++loadSeq;
  const current = () => seq === loadSeq;
  const since = new Date(Date.now() - days * 86400e3).toISOString();
  const jobs = [
    get('/api/v1/models', { machine_id, model_type }).then((r) => current() && renderVersions(app, r.models || []),
      (e) => current() && renderVersions(app, null, e)),
    getOr(`${PERF}/metrics/trend`, { machine_id, model_type, days }, null)
      .then((t) => current() && renderTrend(t), (e) => current() && renderTrend(null, e)),
    getOr(`${PERF}/alerts/active`, { machine_id }, [])
      .then((a) => current() && renderAlerts(app, Array.isArray(a) ? a : (a && a.alerts) || []),
        () => current() && renderAlerts(app, [])),
    loadEnergy(machine_id, days, since, current),
  ];
  await Promise.allSettled(jobs);
}

let lastVersions = [];
function renderVersions(app, models, err) {
  const body = $('versions-body');
  body.replaceChildren();
  lastVersions = models || [];
  $('versions-empty').hidden = !!(models && models.length);
  if (err) $('versions-empty').textContent = `Could not load versions: ${err.message}`;
  else $('versions-empty').textContent = 'No trained versions yet.';
  const active = lastVersions.find((m) => m.is_active);
  for (const m of lastVersions) {
    const older = active && m.version < active.version;
    const btn = m.is_active ? null : el('button', {
      type: 'button', class: 'btn btn-small', dataset: { version: m.version, modelId: m.id },
      'aria-label': `${older ? 'Rollback to' : 'Activate'} version ${m.version}`,
      text: older ? 'Rollback' : 'Activate', onclick: () => activate(app, m),
    });
    body.append(el('tr', { dataset: { modelId: m.id, version: m.version } },
      el('td', {}, `v${m.version}`),
      el('td', {}, fmtTime(m.created_at)),
      el('td', {}, m.is_active ? badge('active', 'Active') : badge('inactive', 'inactive')),
      el('td', {}, metricSummary(m.metrics)),
      el('td', {}, btn)));
  }
  $('stat-version').textContent = active ? `v${active.version}` : 'none';
  $('stat-version-date').textContent = active ? `active since ${fmtDate(active.activated_at || active.created_at)}` : 'no active version';
}

async function activate(app, m) {
  const ok = await confirmDialog('Activate version', `Make version ${m.version} the active model?`, `Activate v${m.version}`);
  if (!ok) return;
  try {
    await post(`/api/v1/models/${m.id}/activate`);
    showSuccess('Version Activated', `Version ${m.version} is now active.`);
  } catch (e) {
    showError('Activation Failed', e.message);
  }
  refresh(app);
}

function renderTrend(t, err) {
  const rows = (t && t.metrics) || [];
  const has = rows.length > 0;
  $('trend-empty').hidden = has;
  $('drift-empty').hidden = has && rows.some((r) => typeof r.drift_score === 'number');
  $('trend-empty').textContent = err ? `No data yet (${err.message}).` : 'No data yet.';
  $('trend-chart').parentElement.hidden = !has;
  $('drift-chart').parentElement.hidden = $('drift-empty').hidden === false;
  if (!has) {
    drawChart('trend-chart', null);
    drawChart('drift-chart', null);
    $('trend-summary').textContent = '';
    $('stat-metric').textContent = 'No data yet';
    $('stat-metric-change').textContent = '';
    $('stat-drift').replaceChildren('–');
    $('stat-drift-sub').textContent = 'no evaluation yet';
    $('stat-samples').textContent = '–';
    $('stat-samples-sub').textContent = '';
    return;
  }
  const metric = t.metric || 'value';
  const last = rows[rows.length - 1];
  const prev = rows.length > 1 ? rows[rows.length - 2] : null;
  $('stat-metric').textContent = `${metric} ${fmtNum(last.value, 4)}`;
  if (prev && typeof prev.value === 'number' && typeof last.value === 'number') {
    const d = last.value - prev.value;
    const better = t.lower_is_better ? d < 0 : d > 0;
    const chg = $('stat-metric-change');
    chg.textContent = `${d >= 0 ? '+' : ''}${fmtNum(d, 3)} since the previous evaluation`;
    chg.className = `card-sub ${d === 0 ? '' : better ? 'up-good' : 'up-bad'}`;
  } else {
    $('stat-metric-change').textContent = 'first evaluation';
  }
  $('stat-drift').replaceChildren(last.drift_detected ? badge('drift', 'Drift detected') : badge('ok', 'No drift'));
  $('stat-drift-sub').textContent = typeof last.drift_score === 'number' ? `score ${fmtNum(last.drift_score)}` : '';
  $('stat-samples').textContent = fmtNum(last.sample_count);
  $('stat-samples-sub').textContent = typeof last.data_completeness === 'number'
    ? `${(last.data_completeness * (last.data_completeness <= 1 ? 100 : 1)).toFixed(1)}% complete` : '';
  const dir = t.trend_direction || 'stable';
  $('trend-summary').textContent = `${metric}: ${dir}`
    + (typeof t.degradation_rate === 'number' ? `, ${fmtNum(t.degradation_rate)} % per day` : '');

  const xy = (f) => rows.map((r) => ({ x: Date.parse(r.evaluation_end || r.evaluation_date), y: f(r) }))
    .filter((p) => typeof p.y === 'number' && !Number.isNaN(p.x));
  const threshold = typeof t.threshold === 'number' ? t.threshold
    : (last.metrics && typeof last.metrics.threshold === 'number' ? last.metrics.threshold : null);
  const trendSets = [{ label: metric, data: xy((r) => r.value), borderColor: '#7c3aed', backgroundColor: '#7c3aed', tension: 0.2 }];
  if (threshold !== null) {
    const pts = xy((r) => r.value);
    trendSets.push({ label: 'threshold', data: pts.map((p) => ({ x: p.x, y: threshold })), borderColor: '#b91c1c', borderDash: [6, 4], pointRadius: 0 });
  }
  drawChart('trend-chart', { type: 'line', data: { datasets: trendSets }, options: { scales: { x: timeAxis() }, parsing: false } });
  const driftPts = xy((r) => r.drift_score);
  const driftSets = [{ label: 'drift score', data: driftPts, borderColor: '#10b981', backgroundColor: '#10b981', tension: 0.2 }];
  const dthr = rows.map((r) => r.drift_threshold).find((v) => typeof v === 'number');
  if (typeof dthr === 'number') driftSets.push({ label: 'threshold', data: driftPts.map((p) => ({ x: p.x, y: dthr })), borderColor: '#b91c1c', borderDash: [6, 4], pointRadius: 0 });
  drawChart('drift-chart', driftPts.length ? { type: 'line', data: { datasets: driftSets }, options: { scales: { x: timeAxis() }, parsing: false } } : null);
}

// ---- alerts -------------------------------------------------------------------------------

function renderAlerts(app, alerts) {
  const box = $('alerts');
  box.replaceChildren();
  for (const a of alerts) {
    const sev = a.severity || 'warning';
    const ack = a.acknowledged_at ? ` · acknowledged${a.acknowledged_by ? ` by ${a.acknowledged_by}` : ''} ${fmtTime(a.acknowledged_at)}` : '';
    box.append(el('div', { class: `alert-banner ${sev}`, role: 'alert', dataset: { alertId: a.id } },
      el('div', {},
        el('p', {}, el('strong', { text: `${sev.toUpperCase()} · ${(a.alert_type || 'alert').replace(/_/g, ' ')}: ` }), a.alert_message || ''),
        el('p', { class: 'alert-meta', text: `${app.machineName(a.machine_id)} · ${a.model_type || ''} · ${fmtTime(a.alert_timestamp)}${ack}` })),
      el('div', {},
        a.acknowledged_at ? null : el('button', { type: 'button', class: 'btn btn-small', text: 'Acknowledge',
          'aria-label': `Acknowledge alert: ${a.alert_message || a.alert_type}`, onclick: () => alertAction(app, a, 'acknowledge') }),
        ' ',
        el('button', { type: 'button', class: 'btn btn-small', text: 'Resolve',
          'aria-label': `Resolve alert: ${a.alert_message || a.alert_type}`, onclick: () => alertAction(app, a, 'resolve') }))));
  }
}

async function alertAction(app, a, action) {
  // Acknowledge sends only notes: the contract names the person `acknowledged_by`, the
  // implementation `by` (reported); notes are accepted by both.
  const body = action === 'resolve' ? { action: 'resolved', resolved_by: 'dashboard', notes: 'resolved from the dashboard' }
    : { notes: 'acknowledged from the dashboard' };
  try {
    await post(`/api/v1/alerts/${a.id}/${action}`, body);
    showSuccess(action === 'resolve' ? 'Alert Resolved' : 'Alert Acknowledged', a.alert_message || '');
  } catch (e) {
    showError(action === 'resolve' ? 'Could Not Resolve Alert' : 'Could Not Acknowledge Alert', e.message);
  }
  refresh(app);
}

// ---- energy chart and anomalies -----------------------------------------------------------

async function loadEnergy(machine_id, days, since, current) {
  let energy = null;
  let anomalies = [];
  try { energy = await getOr(`${PERF}/energy`, { machine_id, days }, null); } catch { energy = null; }
  try {
    const a = await getOr('/api/v1/anomalies', { machine_id, since: energy && energy.since ? energy.since : since, limit: 500 }, []);
    anomalies = Array.isArray(a) ? a : (a && a.anomalies) || [];
  } catch { anomalies = []; }
  if (!current()) return;
  renderAnomalies(anomalies, machine_id);
  const readings = (energy && energy.readings) || [];
  $('energy-empty').hidden = readings.length > 0;
  $('energy-chart').parentElement.hidden = !readings.length;
  if (!readings.length) { drawChart('energy-chart', null); return; }
  const pt = (ts, y) => ({ x: Date.parse(ts), y });
  const sets = [{ label: 'measured kWh', data: readings.map((r) => pt(r.ts, r.energy_kwh)), borderColor: '#1e40af', backgroundColor: '#1e40af', pointRadius: 0, borderWidth: 1.5 }];
  const daily = energy.resolution === 'day';
  const base = energy.baseline && energy.baseline.points;
  // The baseline is a daily model: per day its total, per hour its mean hour (a step line).
  if (base && base.length) {
    sets.push({
      label: `baseline v${energy.baseline.version ?? ''}${daily ? '' : ' (day ÷ 24)'}`,
      data: base.map((p) => pt(p.ts, daily ? p.predicted_kwh : p.mean_hourly_kwh)),
      borderColor: '#10b981', pointRadius: 0, borderWidth: 1.5, stepped: daily ? false : 'before',
    });
  }
  const fc = energy.forecast && energy.forecast.points;
  if (fc && fc.length) {
    sets.push({ label: '95% band', data: fc.map((p) => pt(p.ts, p.upper_95)), borderColor: 'transparent', backgroundColor: 'rgba(236,72,153,.12)', pointRadius: 0, fill: '+1' });
    sets.push({ label: '95% low', data: fc.map((p) => pt(p.ts, p.lower_95)), borderColor: 'transparent', pointRadius: 0, fill: false });
    sets.push({ label: '80% band', data: fc.map((p) => pt(p.ts, p.upper_80)), borderColor: 'transparent', backgroundColor: 'rgba(236,72,153,.25)', pointRadius: 0, fill: '+1' });
    sets.push({ label: '80% low', data: fc.map((p) => pt(p.ts, p.lower_80)), borderColor: 'transparent', pointRadius: 0, fill: false });
    sets.push({ label: 'forecast', data: fc.map((p) => pt(p.ts, p.mean)), borderColor: '#ec4899', pointRadius: 0, borderDash: [5, 3], borderWidth: 1.5 });
  }
  const byTs = new Map(readings.map((r) => [Date.parse(r.ts), r.energy_kwh]));
  // Per day, an anomalous hour is marked on its day's total.
  const dayOf = (t) => {
    let hit = null;
    for (const r of readings) { const s = Date.parse(r.ts); if (s <= t && t < s + 864e5) hit = r; }
    return hit;
  };
  const marks = anomalies.map((a) => {
    const t = Date.parse(a.ts);
    if (daily) { const d = dayOf(t); return { x: d ? Date.parse(d.ts) : t, y: d ? d.energy_kwh : null, anomaly: a }; }
    return { x: t, y: a.energy_kwh ?? byTs.get(t) ?? null, anomaly: a };
  }).filter((p) => p.y !== null);
  if (marks.length) sets.push({ type: 'scatter', label: 'anomalies', data: marks, backgroundColor: '#b91c1c', pointRadius: 5, pointHoverRadius: 7 });
  drawChart('energy-chart', {
    type: 'line', data: { datasets: sets },
    options: {
      parsing: false, interaction: { mode: 'nearest', intersect: true },
      scales: { x: timeAxis(), y: { title: { display: true, text: daily ? 'kWh per day' : 'kWh per hour' } } },
      plugins: { legend: { labels: { filter: (i) => !/low$/.test(i.text) } } },
      onClick: (evt, els, chart) => {
        const hit = els.find((h) => chart.data.datasets[h.datasetIndex].label === 'anomalies');
        if (hit) labelDialog(chart.data.datasets[hit.datasetIndex].data[hit.index].anomaly, machine_id);
      },
    },
  });
}

function renderAnomalies(list, machine_id) {
  const body = $('anomalies-body');
  body.replaceChildren();
  $('anomalies-empty').hidden = list.length > 0;
  for (const a of list.slice(0, 50)) {
    body.append(el('tr', { dataset: { anomalyId: a.id } },
      el('td', {}, fmtTime(a.ts)),
      el('td', {}, badge(a.severity || 'warning')),
      el('td', {}, fmtNum(a.score)),
      el('td', {}, a.label ? a.label.replace('_', ' ') : 'unlabelled'),
      el('td', {},
        el('button', { type: 'button', class: 'btn btn-small', text: 'Confirm', 'aria-label': `Confirm anomaly at ${fmtTime(a.ts)}`, onclick: () => label(a, 'confirmed', machine_id) }),
        el('button', { type: 'button', class: 'btn btn-small', text: 'False positive', 'aria-label': `Mark anomaly at ${fmtTime(a.ts)} a false positive`, onclick: () => label(a, 'false_positive', machine_id) }))));
  }
}

async function labelDialog(a, machine_id) {
  const dlg = $('anomaly-dialog');
  $('anomaly-text').textContent = `${fmtTime(a.ts)} · severity ${a.severity} · score ${fmtNum(a.score)} · ${a.label ? `labelled ${a.label}` : 'unlabelled'}`;
  dlg.returnValue = '';
  dlg.addEventListener('close', () => {
    if (dlg.returnValue === 'confirmed' || dlg.returnValue === 'false_positive') label(a, dlg.returnValue, machine_id);
  }, { once: true });
  dlg.showModal();
}

async function label(a, value, machine_id) {
  try {
    await post(`/api/v1/anomalies/${a.id}/label`, { label: value, labelled_by: 'dashboard' });
    showSuccess('Anomaly Labelled', `${fmtTime(a.ts)}: ${value.replace('_', ' ')}`);
  } catch (e) {
    showError('Could Not Label Anomaly', e.message);
  }
  const { days } = sel();
  if (machine_id === sel().machine_id) loadEnergy(machine_id, days, new Date(Date.now() - days * 86400e3).toISOString(), () => true);
}
