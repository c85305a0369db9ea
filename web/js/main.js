// main.js - the dashboard's entry: loads the machines once, routes #/performance, #/history,
// #/queue and #/abtests to their page modules, and fans the live job events out to them.
import { get, subscribe } from './api.js';
import { $, showError } from './ui.js';
import * as performance from './performance.js';
import * as history from './history.js';
import * as queue from './queue.js';
import * as abtests from './abtests.js';

const PAGES = { performance, history, queue, abtests };
const app = { machines: [], machineName: (id) => id, current: null };

function route() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  const page = PAGES[name] ? name : 'performance';
  for (const [n, mod] of Object.entries(PAGES)) {
    const section = $(`page-${n}`);
    const on = n === page;
    if (section.hidden === on) {
      section.hidden = !on;
      if (on) mod.show(app); else mod.hide(app);
    }
  }
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  app.current = page;
  document.title = `${document.querySelector(`#page-${page} h2`).textContent} · enms-retrain`;
}

async function loadMachines() {
  try {
    const list = await get('/api/v1/machines');
    app.machines = Array.isArray(list) ? list : [];
  } catch (e) {
    app.machines = [];
    showError('Could not load machines', e.message);
  }
  const names = new Map(app.machines.map((m) => [m.id, m.name]));
  app.machineName = (id) => names.get(id) || (id ? id.slice(0, 8) : '–');
}

// Fills a <select> with the machines (keeping its first option when keepFirst).
export function fillMachines(select, machines, keepFirst) {
  const first = keepFirst ? select.options[0] : null;
  select.replaceChildren();
  if (first) select.append(first);
  for (const m of machines) {
    const o = document.createElement('option');
    o.value = m.id;
    o.textContent = m.location ? `${m.name} (${m.location})` : m.name;
    select.append(o);
  }
}

async function start() {
  await loadMachines();
  app.fillMachines = fillMachines;
  for (const mod of Object.values(PAGES)) mod.init(app);
  window.addEventListener('hashchange', () => { route(); $('main').focus({ preventScroll: true }); });
  route();
  const status = $('live-status');
  subscribe((name, data) => {
    for (const mod of Object.values(PAGES)) if (mod.onEvent) mod.onEvent(app, name, data);
  }, (state) => {
    status.textContent = state === 'live' ? '● live updates' : '○ live updates paused (reconnecting)';
    status.dataset.state = state;
  });
}

start();
