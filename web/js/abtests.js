// abtests.js - the A/B Tests page: start a test between two versions of a machine's model,
// list the running, completed and cancelled tests (GET /api/v1/model-performance/ab-tests),
// show results (paired samples, test, p-value, winner, recommendation) and decide (promote A /
// promote B / no winner). Every way the start can fail ends in a toast: the form is checked
// here (novalidate), not by the browser's silent bubble.
import { ApiError, get, post } from './api.js';
import { $, badge, el, fmtNum, fmtTime, modelName, showError, showSuccess } from './ui.js';

const PERF = '/api/v1/model-performance';
const LIST_STATUSES = ['running', 'completed', 'cancelled'];
const LIST_LIMIT = 50;
let appRef = null;
let openId = null;
let versionsSeq = 0; // only the newest loadVersions() may fill the selects
let starting = false;

export function init(app) {
  appRef = app;
  app.fillMachines($('ab-machine'), app.machines, false);
  $('ab-machine').addEventListener('change', loadVersions);
  $('ab-model-type').addEventListener('change', loadVersions);
  $('ab-form').addEventListener('submit', (e) => { e.preventDefault(); start(); });
  $('ab-open').addEventListener('submit', (e) => { e.preventDefault(); const id = $('ab-open-id').value.trim(); if (id) openTest(id); });
  $('ab-promote-a').addEventListener('click', () => decide('promote_a'));
  $('ab-promote-b').addEventListener('click', () => decide('promote_b'));
  $('ab-no-winner').addEventListener('click', () => decide('no_winner'));
}
export function show() { loadVersions(); loadList(); }
export function hide() {}

function hint(text) {
  $('ab-hint').textContent = text || '';
  $('ab-hint').hidden = !text;
}

async function loadVersions() {
  const seq = ++versionsSeq;
  const machine_id = $('ab-machine').value;
  const model_type = $('ab-model-type').value;
  $('ab-form').dataset.versions = 'loading';
  let models = [];
  let problem = '';
  try {
    models = (await get('/api/v1/models', { machine_id, model_type })).models || [];
  } catch (e) {
    problem = `Could not load the versions: ${e.message}`;
  }
  if (seq !== versionsSeq) return; // the machine or type changed meanwhile
  for (const [id, pick] of [['ab-a', 1], ['ab-b', 0]]) {
    const s = $(id);
    s.replaceChildren(...models.map((m) => el('option', { value: m.id, text: `v${m.version}${m.is_active ? ' (active)' : ''} · ${fmtTime(m.created_at)}` })));
    if (!models.length) s.append(el('option', { value: '', text: 'no versions' }));
    else s.selectedIndex = Math.min(pick, models.length - 1); // A: the older, B: the newest
  }
  hint(problem || (models.length < 2
    ? `${modelName(model_type)} of ${appRef.machineName(machine_id)} has ${models.length} version${models.length === 1 ? '' : 's'}: train at least two to compare them.`
    : ''));
  $('ab-form').dataset.versions = String(models.length);
}

// The running, completed and cancelled tests, newest first (running ones on top).
async function loadList() {
  const lists = await Promise.all(LIST_STATUSES.map((status) =>
    get(`${PERF}/ab-tests`, { status, limit: LIST_LIMIT }).then((r) => r.tests || [], (e) => e)));
  const failed = lists.find((l) => l instanceof Error);
  const tests = lists.filter((l) => Array.isArray(l)).flat()
    .sort((x, y) => (x.test_status === 'running') - (y.test_status === 'running') || String(x.test_start).localeCompare(String(y.test_start)))
    .reverse();
  const ul = $('ab-list');
  ul.replaceChildren(...tests.map((t) => el('li', { dataset: { testId: t.id, status: t.test_status, decision: t.decision || '' } },
    el('button', { type: 'button', class: 'btn btn-small', text: 'Results', 'aria-label': `Results of test ${t.test_name || t.id}`, onclick: () => openTest(t.id) }),
    el('span', {}, el('strong', { text: t.test_name || 'test' }),
      ` · ${t.machine_name || appRef.machineName(t.machine_id)} · ${modelName(t.model_type)} · v${t.model_a_version} vs v${t.model_b_version} · ${fmtTime(t.test_start)}`),
    badge(t.test_status),
    t.decision ? el('span', { class: 'decision', text: t.decision.replace('_', ' ') }) : null,
    el('code', { text: t.id }))));
  const empty = $('ab-empty');
  empty.textContent = failed ? `Could not load the tests: ${failed.message}` : 'No tests yet.';
  empty.hidden = tests.length > 0 && !failed;
}

// The first problem with the form's fields, as "<label>: <problem>", focusing that field.
function formProblem() {
  const fields = [['ab-name', 'Name'], ['ab-a', 'Version A'], ['ab-b', 'Version B'],
    ['ab-hours', 'Duration (hours)'], ['ab-split', 'Traffic to A'], ['ab-conf', 'Confidence']];
  for (const [id, label] of fields) {
    const f = $(id);
    if (id === 'ab-name' && !f.value.trim()) f.setCustomValidity('Enter a name.');
    else f.setCustomValidity('');
    if (!f.checkValidity()) {
      f.focus();
      return `${label}: ${f.validationMessage || 'not valid'}`;
    }
  }
  if ($('ab-a').value === $('ab-b').value) {
    $('ab-b').focus();
    return 'Version B: choose a version other than A.';
  }
  return '';
}

async function start() {
  if (starting) return;
  if ($('ab-form').dataset.versions === 'loading') {
    showError('Could Not Start Test', 'The versions are still loading; try again in a moment.');
    return;
  }
  const problem = formProblem();
  if (problem) {
    showError('Could Not Start Test', problem);
    return;
  }
  const body = {
    test_name: $('ab-name').value.trim(), machine_id: $('ab-machine').value, model_type: $('ab-model-type').value,
    model_a_id: $('ab-a').value, model_b_id: $('ab-b').value,
    duration_hours: Number($('ab-hours').value), traffic_split: Number($('ab-split').value),
    confidence_level: Number($('ab-conf').value),
  };
  starting = true;
  $('ab-start').disabled = true;
  try {
    const r = await post(`${PERF}/ab-test/start`, body);
    showSuccess('A/B Test Started', `Test ID: ${r.test_id}`);
    loadList();
    openTest(r.test_id);
  } catch (e) {
    const existing = e instanceof ApiError && e.body && e.body.existing_test_id;
    showError('Could Not Start Test', existing ? `${e.message} (test ${existing})` : e.message);
    if (existing) openTest(existing);
  } finally {
    starting = false;
    $('ab-start').disabled = false;
  }
}

async function openTest(id) {
  openId = id;
  const panel = $('ab-results');
  const dl = $('ab-results-body');
  panel.hidden = false;
  panel.dataset.testId = id;
  delete panel.dataset.status;
  delete panel.dataset.decision;
  dl.replaceChildren(el('dt', {}, 'Test'), el('dd', {}, el('code', { text: id })));
  let r;
  try {
    r = await get(`${PERF}/ab-test/${encodeURIComponent(id)}/results`);
  } catch (e) {
    if (openId !== id) return;
    dl.append(el('dt', {}, 'Results'), el('dd', {}, e instanceof ApiError && e.unavailable ? `No results yet (${e.message}).` : e.message));
    return;
  }
  if (openId !== id) return; // another test was opened meanwhile
  const m = (x) => (x && typeof x === 'object' ? Object.entries(x).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${fmtNum(v)}`).join(' · ') : '–');
  const items = [
    ['Test', el('code', { text: r.test_id })],
    ['Name', r.test_name || '–'],
    ['Status', badge(r.status || 'running')],
    ['Machine', appRef.machineName(r.machine_id)],
    ['Model', modelName(r.model_type)],
    ['Period', `${fmtTime(r.test_start)} – ${fmtTime(r.test_end)}`],
    ['Version A', `v${r.model_a_version} (${fmtNum((r.traffic_split_a ?? 0.5) * 100)}% traffic) — ${m(r.model_a_metrics)}`],
    ['Version B', `v${r.model_b_version} (${fmtNum((r.traffic_split_b ?? 0.5) * 100)}% traffic) — ${m(r.model_b_metrics)}`],
    ['Paired samples', `${fmtNum(r.paired_samples)}${r.min_paired_samples ? ` (at least ${r.min_paired_samples} needed)` : ''}`],
    ['Statistical test', `${r.test || '–'}${r.loss ? ` on ${r.loss}` : ''}`],
    ['p-value', el('span', { class: 'p-value', text: fmtNum(r.p_value, 4) })],
    ['Confidence level', fmtNum(r.confidence_level)],
    ['Winner', el('span', { class: 'winner', text: r.winner === 'no_winner' ? 'no winner' : `${r.winner}${r.winner_version ? ` (v${r.winner_version})` : ''}` })],
    ['Recommendation', el('span', { class: 'recommendation', text: r.recommendation || '–' })],
    ['Decision', el('span', { class: 'decision', text: r.decision ? `${r.decision.replace('_', ' ')}${r.decided_by ? ` by ${r.decided_by}` : ''}${r.decided_at ? ` at ${fmtTime(r.decided_at)}` : ''}` : 'not decided' })],
  ];
  if (r.note) items.push(['Note', r.note]);
  dl.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  panel.dataset.status = r.status || '';
  panel.dataset.decision = r.decision || '';
  const closed = !!r.decision || r.status === 'cancelled';
  for (const b of ['ab-promote-a', 'ab-promote-b', 'ab-no-winner']) $(b).disabled = closed;
  $('ab-promote-a').textContent = `Promote A (v${r.model_a_version})`;
  $('ab-promote-b').textContent = `Promote B (v${r.model_b_version})`;
}

async function decide(decision) {
  if (!openId) return;
  const id = openId;
  for (const b of ['ab-promote-a', 'ab-promote-b', 'ab-no-winner']) $(b).disabled = true;
  try {
    const r = await post(`${PERF}/ab-test/${encodeURIComponent(id)}/decide`, { decision, decided_by: 'dashboard' });
    const what = decision === 'no_winner' ? 'no winner' : `version v${decision === 'promote_a' ? r.model_a_version : r.model_b_version} is now active`;
    showSuccess('Decision Recorded', `${decision.replace('_', ' ')}: ${what}`);
  } catch (e) {
    showError('Could Not Decide', e.message);
  }
  await openTest(id);
  loadList();
}
