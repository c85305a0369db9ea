// queue.js - the Queue & Workers page: queue depths, jobs in flight, workers with their state
// and heartbeat age, and the dead-letter list with Requeue (POST /api/v1/jobs/{id}/requeue).
// Refreshed every 2 s while visible, and at once on a job event.
import { get, getOr, post } from './api.js';
import { $, badge, el, fmtNum, fmtTime, modelName, showError, showSuccess } from './ui.js';

let timer = null;
let visible = false;
let appRef = null;
let pending = false;

export function init(app) { appRef = app; }
export function show() { visible = true; load(); timer = setInterval(load, 2000); }
export function hide() { visible = false; clearInterval(timer); }
export function onEvent() { if (visible && !pending) { pending = true; setTimeout(() => { pending = false; load(); }, 200); } }

async function load() {
  try {
    const q = await get('/api/v1/queue');
    const queues = q.queues || [];
    $('q-depth').textContent = fmtNum(queues.reduce((s, x) => s + (x.depth || 0), 0));
    $('q-queues').textContent = queues.map((x) => `${x.name}: ${x.depth}`).join(' · ');
    $('q-inflight').textContent = fmtNum(q.processing_total ?? 0);
    const workers = q.workers || [];
    $('q-workers').textContent = fmtNum(workers.length);
    const lost = workers.filter((w) => w.state === 'lost').length;
    $('q-workers-sub').textContent = lost ? `${lost} lost` : workers.length ? 'all reporting' : '';
    $('q-dead').textContent = fmtNum(q.dead_letter ?? 0);
    $('workers-empty').hidden = workers.length > 0;
    $('workers-body').replaceChildren(...workers.map((w) => el('tr', { dataset: { workerId: w.id } },
      el('td', {}, el('code', { text: w.id })),
      el('td', {}, w.host || '–'),
      el('td', {}, w.pid ?? '–'),
      el('td', {}, badge(w.state === 'lost' ? 'failed' : w.state === 'busy' ? 'running' : 'completed', w.state || '–')),
      el('td', {}, w.job ? el('code', { text: w.job }) : '–'),
      el('td', { class: 'heartbeat' }, typeof w.heartbeat_age_s === 'number' ? `${fmtNum(w.heartbeat_age_s)} s ago` : '–'),
      el('td', {}, String(w.in_flight ?? 0)))));
  } catch (e) {
    $('q-depth').textContent = '–';
    $('workers-empty').hidden = false;
    $('workers-empty').textContent = `Could not load the queue: ${e.message}`;
  }
  let dead;
  try {
    dead = await getOr('/api/v1/queue/dead', {}, null);
  } catch (e) {
    dead = null;
  }
  const body = $('dead-body');
  if (!dead) {
    body.replaceChildren();
    $('dead-empty').hidden = false;
    $('dead-empty').textContent = 'The dead-letter list is not available from this API yet.';
    return;
  }
  const list = dead.dead || [];
  $('dead-empty').hidden = list.length > 0;
  $('dead-empty').textContent = 'The dead-letter list is empty.';
  body.replaceChildren(...list.map((d) => {
    const j = d.job || {};
    return el('tr', { dataset: { jobId: d.job_id } },
      el('td', {}, el('code', { text: d.job_id }), el('br'), el('small', { text: fmtTime(j.training_end || j.created_at) })),
      el('td', {}, j.machine_name || appRef.machineName(j.machine_id)),
      el('td', {}, modelName(j.model_type)),
      el('td', {}, j.training_status ? badge(j.training_status) : 'job gone'),
      el('td', {}, String(j.attempts ?? '–')),
      el('td', {}, j.error_message || '–'),
      el('td', {}, j.training_status === 'failed' ? el('button', { type: 'button', class: 'btn btn-small', text: 'Requeue',
        'aria-label': `Requeue job ${d.job_id}`, onclick: () => requeue(d.job_id) }) : null));
  }));
}

async function requeue(id) {
  try {
    await post(`/api/v1/jobs/${id}/requeue`);
    showSuccess('Job Requeued', `Job ${id} is pending again.`);
  } catch (e) {
    showError('Could Not Requeue', e.message);
  }
  load();
}
