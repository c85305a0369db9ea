// abtests.js - the A/B Tests page: start a test between two versions of a machine's model,
// list tests (GET /api/v1/model-performance/ab-tests when the API has it, else the tests
// started or opened in this browser), show results (paired samples, test, p-value, winner,
// recommendation) and decide (promote A / promote B / no winner).
import { ApiError, get, getOr, post } from './api.js';
import { $, badge, el, fmtNum, fmtTime, modelName, showError, showSuccess } from './ui.js';

const PERF = '/api/v1/model-performance';
const KNOWN_KEY = 'enms_ab_tests';
let appRef = null;
let openId = null;

function known() {
  try { return JSON.parse(localStorage.getItem(KNOWN_KEY) || '[]'); } catch { return []; }
}
function remember(t) {
  const list = known().filter((x) => x.test_id !== t.test_id);
  list.unshift({ test_id: t.test_id, test_name: t.test_name || '', model_type: t.model_type, machine_id: t.machine_id });
  try { localStorage.setItem(KNOWN_KEY, JSON.stringify(list.slice(0, 50))); } catch { /* storage off */ }
}

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

async function loadVersions() {
  const machine_id = $('ab-machine').value;
  const model_type = $('ab-model-type').value;
  let models = [];
  try { models = (await get('/api/v1/models', { machine_id, model_type })).models || []; } catch { models = []; }
  for (const [id, pick] of [['ab-a', 1], ['ab-b', 0]]) {
    const s = $(id);
    s.replaceChildren(...models.map((m) => el('option', { value: m.id, text: `v${m.version}${m.is_active ? ' (active)' : ''} · ${fmtTime(m.created_at)}` })));
    if (!models.length) s.append(el('option', { value: '', text: 'no versions' }));
    else s.selectedIndex = Math.min(pick, models.length - 1); // A: the older, B: the newest
  }
  $('ab-start').disabled = models.length < 2;
}

async function loadList() {
  let list = null;
  try {
    const r = await getOr(`${PERF}/ab-tests`, {}, null);
    list = r ? (Array.isArray(r) ? r : r.tests || []) : null;
  } catch { list = null; }
  if (!list) list = known();
  const ul = $('ab-list');
  ul.replaceChildren(...list.map((t) => el('li', { dataset: { testId: t.test_id || t.id } },
    el('button', { type: 'button', class: 'btn btn-small', text: 'Results', 'aria-label': `Results of test ${t.test_name || t.test_id}`, onclick: () => openTest(t.test_id || t.id) }),
    el('span', {}, el('strong', { text: t.test_name || 'test' }), ` · ${appRef.machineName(t.machine_id)} · ${modelName(t.model_type)}`),
    t.status || t.test_status ? badge(t.status || t.test_status) : null,
    el('code', { text: t.test_id || t.id }))));
  $('ab-empty').hidden = list.length > 0;
}

async function start() {
  const body = {
    test_name: $('ab-name').value.trim(), machine_id: $('ab-machine').value, model_type: $('ab-model-type').value,
    model_a_id: $('ab-a').value, model_b_id: $('ab-b').value,
    duration_hours: Number($('ab-hours').value), traffic_split: Number($('ab-split').value),
    confidence_level: Number($('ab-conf').value),
  };
  try {
    const r = await post(`${PERF}/ab-test/start`, body);
    remember(Object.assign({}, body, r));
    showSuccess('A/B Test Started', `Test ID: ${r.test_id}`);
    loadList();
    openTest(r.test_id);
  } catch (e) {
    showError('Could Not Start Test', e.message);
  }
}

async function openTest(id) {
  openId = id;
  const panel = $('ab-results');
  const dl = $('ab-results-body');
  panel.hidden = false;
  dl.replaceChildren(el('dt', {}, 'Test'), el('dd', {}, el('code', { text: id })));
  let r;
  try {
    r = await get(`${PERF}/ab-test/${encodeURIComponent(id)}/results`);
  } catch (e) {
    dl.append(el('dt', {}, 'Results'), el('dd', {}, e instanceof ApiError && e.unavailable ? `No results yet (${e.message}).` : e.message));
    return;
  }
  remember(r);
  const m = (x) => (x && typeof x === 'object' ? Object.entries(x).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${fmtNum(v)}`).join(' · ') : '–');
  const items = [
    ['Status', badge(r.status || 'running')],
    ['Machine', appRef.machineName(r.machine_id)],
    ['Model', modelName(r.model_type)],
    ['Version A', `v${r.model_a_version} (${fmtNum((r.traffic_split_a ?? 0.5) * 100)}% traffic) — ${m(r.model_a_metrics)}`],
    ['Version B', `v${r.model_b_version} (${fmtNum((r.traffic_split_b ?? 0.5) * 100)}% traffic) — ${m(r.model_b_metrics)}`],
    ['Paired samples', `${fmtNum(r.paired_samples)}${r.min_paired_samples ? ` (at least ${r.min_paired_samples} needed)` : ''}`],
    ['Test', `${r.test || '–'}${r.loss ? ` on ${r.loss}` : ''}`],
    ['p-value', el('span', { class: 'p-value', text: fmtNum(r.p_value, 4) })],
    ['Confidence level', fmtNum(r.confidence_level)],
    ['Winner', el('span', { class: 'winner', text: r.winner === 'no_winner' ? 'no winner' : `${r.winner}${r.winner_version ? ` (v${r.winner_version})` : ''}` })],
    ['Recommendation', r.recommendation || '–'],
    ['Decision', r.decision ? `${r.decision}${r.decided_by ? ` by ${r.decided_by}` : ''}` : 'not decided'],
  ];
  if (r.note) items.push(['Note', r.note]);
  dl.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  for (const b of ['ab-promote-a', 'ab-promote-b', 'ab-no-winner']) $(b).disabled = !!r.decision;
}

async function decide(decision) {
  if (!openId) return;
  try {
    await post(`${PERF}/ab-test/${encodeURIComponent(openId)}/decide`, { decision, decided_by: 'dashboard' });
    showSuccess('Decision Recorded', decision.replace('_', ' '));
  } catch (e) {
    showError('Could Not Decide', e.message);
  }
  openTest(openId);
  loadList();
}
