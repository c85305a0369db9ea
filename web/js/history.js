// history.js - the Training History page: every job, filtered (status, model type, machine,
// date range) and paged by the API's keyset cursor; running jobs update live (events, and a
// poll of each running job's progress, stage and heartbeat age); Cancel on pending and running
// jobs; and a detail dialog (timestamps, duration, attempts, worker, error, metrics, version).
import { get, post } from './api.js';
import {
  $, badge, confirmDialog, el, fmtDuration, fmtNum, fmtTime, modelName, showError, showSuccess,
} from './ui.js';

const ACTIVE = new Set(['pending', 'running']);
let cursors = [null]; // cursors[i] opens page i
let pageIdx = 0;
let nextCursor = null;
let visible = false;
let pollTimer = null;
let reloadTimer = null;
let rows = new Map(); // job id -> its <tr>
let appRef = null;

function filters() {
  const f = {
    status: $('f-status').value, model_type: $('f-model-type').value, machine_id: $('f-machine').value,
    limit: $('f-limit').value,
  };
  // Dates are whole local days: from the start of "From" to the end of "To".
  if ($('f-since').value) f.since = new Date(`${$('f-since').value}T00:00:00`).toISOString();
  if ($('f-until').value) {
    const u = new Date(`${$('f-until').value}T00:00:00`);
    u.setDate(u.getDate() + 1);
    f.until = u.toISOString();
  }
  return f;
}

export function init(app) {
  appRef = app;
  app.fillMachines($('f-machine'), app.machines, true);
  $('history-filters').addEventListener('submit', (e) => { e.preventDefault(); firstPage(); });
  $('f-reset').addEventListener('click', () => { $('history-filters').reset(); firstPage(); });
  $('page-older').addEventListener('click', () => { if (nextCursor) { cursors[pageIdx + 1] = nextCursor; pageIdx++; load(); } });
  $('page-newer').addEventListener('click', () => { if (pageIdx > 0) { pageIdx--; load(); } });
}

export function show() {
  visible = true;
  load();
  pollTimer = setInterval(pollActive, 1000);
}
export function hide() {
  visible = false;
  clearInterval(pollTimer);
}

function firstPage() { cursors = [null]; pageIdx = 0; load(); }

let loadSeq = 0;
async function load() {
  const seq = ++loadSeq;
  const query = Object.assign(filters(), { cursor: cursors[pageIdx] });
  let res;
  try {
    res = await get('/api/v1/jobs', query);
  } catch (e) {
    if (seq !== loadSeq) return;
    $('history-count').textContent = `Could not load jobs: ${e.message}`;
    return;
  }
  if (seq !== loadSeq) return;
  const jobs = res.jobs || [];
  nextCursor = res.next_cursor || null;
  const body = $('history-body');
  body.replaceChildren();
  rows = new Map();
  for (const j of jobs) {
    const tr = renderRow(j);
    rows.set(j.id, tr);
    body.append(tr);
  }
  $('history-empty').hidden = jobs.length > 0;
  $('history-count').textContent = `${jobs.length} job${jobs.length === 1 ? '' : 's'} on page ${pageIdx + 1}`;
  $('page-info').textContent = `Page ${pageIdx + 1}`;
  $('page-newer').disabled = pageIdx === 0;
  $('page-older').disabled = !nextCursor;
}

function progressCell(status, pct, stage) {
  pct = Math.max(0, Math.min(100, Math.round(Number(pct) || 0)));
  return el('div', { class: 'mini-progress' },
    el('div', { class: 'progress', role: 'progressbar', 'aria-label': 'progress', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct },
      el('div', { class: 'progress-fill', style: `width:${pct}%` })),
    el('span', { class: 'stage', text: `${pct}%${stage && ACTIVE.has(status) ? ` ${stage}` : ''}` }));
}

function renderRow(j) {
  const tr = el('tr', { dataset: { jobId: j.id, status: j.training_status } });
  fillRow(tr, j, null);
  return tr;
}

// A finished job's row only goes back to running on the word of a newer
// answer: a poll that left before a cancel, or a progress event the worker
// sent just before it saw the cancel flag, arrives late and must not undo it.
function stale(tr, status) {
  return tr.dataset.status && !ACTIVE.has(tr.dataset.status) && status === 'running';
}

function fillRow(tr, j, live) {
  const status = j.training_status;
  tr._gen = (tr._gen || 0) + 1;
  tr.dataset.status = status;
  const pct = live && live.progress !== undefined ? live.progress : j.progress;
  const stage = live && live.stage ? live.stage : j.stage;
  const hb = live && typeof live.heartbeat_age_s === 'number' ? `${fmtNum(live.heartbeat_age_s)} s ago`
    : ACTIVE.has(status) && j.heartbeat_at ? `${Math.max(0, Math.round((Date.now() - Date.parse(j.heartbeat_at)) / 1000))} s ago` : '–';
  tr.replaceChildren(
    el('td', {}, fmtTime(j.created_at)),
    el('td', {}, appRef.machineName(j.machine_id)),
    el('td', {}, modelName(j.model_type), j.job_kind && j.job_kind !== 'train' ? ` (${j.job_kind})` : ''),
    el('td', {}, j.trigger_type || '–'),
    el('td', { class: 'status-cell' }, badge(status)),
    el('td', {}, progressCell(status, status === 'completed' ? 100 : pct, stage)),
    el('td', { class: 'heartbeat' }, hb),
    el('td', {}, String(j.attempts ?? '–')),
    el('td', {},
      el('button', { type: 'button', class: 'btn btn-small', text: 'Details', 'aria-label': `Details of job ${j.id}`, onclick: () => details(j.id) }),
      ACTIVE.has(status) ? el('button', { type: 'button', class: 'btn btn-small btn-danger', text: 'Cancel',
        'aria-label': `Cancel job ${j.id}`, onclick: () => cancel(j) }) : null));
  tr._job = j;
}

async function cancel(j) {
  const ok = await confirmDialog('Cancel job', `Cancel the ${modelName(j.model_type)} job of ${appRef.machineName(j.machine_id)}?`, 'Cancel job');
  if (!ok) return;
  try {
    const r = await post(`/api/v1/jobs/${j.id}/cancel`);
    showSuccess('Job Cancelled', `Job ${j.id} was ${r.previous_status}; it is now cancelled.`);
    const tr = rows.get(j.id);
    if (tr) fillRow(tr, Object.assign({}, tr._job, { training_status: 'cancelled' }), null);
  } catch (e) {
    showError('Could Not Cancel', e.message);
  }
  refreshOne(j.id);
}

async function refreshOne(id) {
  const tr = rows.get(id);
  if (!tr) return;
  const gen = tr._gen;
  try {
    const j = await get(`/api/v1/jobs/${id}`);
    // Drawn only when nothing redrew the row while the request was out.
    if (rows.get(id) === tr && tr._gen === gen) fillRow(tr, j, j.live);
  } catch { /* keep the row as it is */ }
}

function pollActive() {
  if (!visible) return;
  for (const [id, tr] of rows) if (ACTIVE.has(tr.dataset.status)) refreshOne(id);
}

export function onEvent(app, name, data) {
  if (!visible) return;
  const tr = rows.get(data.job_id);
  if (tr) {
    if (stale(tr, data.status)) return;
    const j = Object.assign({}, tr._job, { training_status: data.status, progress: data.progress_pct, stage: data.stage,
      attempts: data.attempt ?? tr._job.attempts, error_message: data.error_message ?? tr._job.error_message });
    fillRow(tr, j, null);
  } else if (name === 'training.queued' && pageIdx === 0) {
    clearTimeout(reloadTimer); // a new job: show it on the first page (debounced)
    reloadTimer = setTimeout(load, 300);
  }
}

async function details(id) {
  const dlg = $('job-dialog');
  const dl = $('job-details');
  dl.replaceChildren(el('dt', {}, 'Loading'), el('dd', {}, '…'));
  $('job-events').replaceChildren();
  $('job-title').textContent = `Job ${id}`;
  if (!dlg.open) dlg.showModal();
  let j;
  try { j = await get(`/api/v1/jobs/${id}`); } catch (e) {
    dl.replaceChildren(el('dt', {}, 'Error'), el('dd', {}, e.message));
    return;
  }
  const dur = j.training_duration_seconds ?? (j.training_start && j.training_end
    ? (Date.parse(j.training_end) - Date.parse(j.training_start)) / 1000 : null);
  const json = (v) => (v && Object.keys(v).length ? el('pre', { class: 'json', text: JSON.stringify(v, null, 1) }) : '–');
  const w = j.worker;
  const items = [
    ['Status', badge(j.training_status)],
    ['Model', `${modelName(j.model_type)}${j.model_version ? ` · version ${j.model_version}` : ''}`],
    ['Machine', appRef.machineName(j.machine_id)],
    ['Trigger', `${j.trigger_type || '–'}${j.triggered_by ? ` by ${j.triggered_by}` : ''}`],
    ['Reason', j.reason || '–'],
    ['Created', fmtTime(j.created_at)],
    ['Started', fmtTime(j.training_start)],
    ['Ended', fmtTime(j.training_end)],
    ['Duration', fmtDuration(dur)],
    ['Attempts', String(j.attempts ?? '–')],
    ['Worker', w ? `${w.id} (${w.state}${typeof w.heartbeat_age_s === 'number' ? `, heartbeat ${fmtNum(w.heartbeat_age_s)} s ago` : ''})` : j.worker_id || '–'],
    ['Progress', `${j.progress ?? 0}%${j.stage ? ` · ${j.stage}` : ''}`],
    ['Error', j.error_message || '–'],
    ['Training samples', fmtNum(j.training_samples)],
    ['Data window', j.training_data_start ? `${fmtTime(j.training_data_start)} – ${fmtTime(j.training_data_end)}` : '–'],
    ['Resulting version', j.result_version_id ? el('code', { text: j.result_version_id }) : '–'],
    ['Training metrics', json(j.training_metrics)],
    ['Validation metrics', json(j.validation_metrics)],
    ['Parameters', json(j.params)],
  ];
  dl.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  $('job-events').replaceChildren(...(j.events || []).map((ev) => el('li', {},
    `${fmtTime(ev.at)}: ${ev.from_status || '∅'} → ${ev.to_status}${ev.worker_id ? ` (${ev.worker_id}, attempt ${ev.attempt})` : ''}${ev.message ? ` — ${ev.message}` : ''}`)));
}
