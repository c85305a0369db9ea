// ui.js - shared page pieces: element building, toasts (8 s), the loading overlay, the confirm
// dialog, formatting of times, durations, numbers and statuses, and the chart helper that
// honours reduced motion and copes with the charting library being absent.

export const TOAST_MS = 8000;
export const MODEL_NAMES = {
  baseline: 'Energy Baseline', anomaly: 'Anomaly Detection', forecast_arima: 'Forecast (ARIMA)', probe: 'Probe',
};

export const $ = (id) => document.getElementById(id);

// el('td', {class: 'x', text: 'y', onclick: f}, child...) -> element
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function reducedMotion() {
  return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

export function toast(kind, title, message) {
  const box = el('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    el('div', {}, el('p', { class: 'toast-title', text: title }), el('p', { class: 'toast-msg', text: message || '' })),
    el('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', text: '×' }));
  const remove = () => box.remove();
  box.querySelector('.toast-close').addEventListener('click', remove);
  $('toasts').append(box);
  setTimeout(remove, TOAST_MS);
  return box;
}
export const showSuccess = (title, msg) => toast('success', title, msg);
export const showError = (title, msg) => toast('error', title, msg);
export const showInfo = (title, msg) => toast('info', title, msg);

export function overlay(on, text) {
  const o = $('loading-overlay');
  if (text) $('loading-text').textContent = text;
  o.hidden = !on;
}

// confirmDialog(title, text, okLabel) -> Promise<boolean>
export function confirmDialog(title, text, okLabel = 'OK') {
  return new Promise((resolve) => {
    const dlg = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = okLabel;
    dlg.returnValue = '';
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
    $('confirm-yes').focus();
  });
}

export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
export function fmtDate(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: '2-digit' });
}
export function fmtDuration(s) {
  if (s === null || s === undefined || Number.isNaN(Number(s))) return '–';
  s = Number(s);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
export function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return '–';
  const n = Number(v);
  if (Number.isInteger(n)) return n.toLocaleString();
  return Math.abs(n) >= 1000 ? n.toFixed(0) : n.toPrecision(digits);
}
export function badge(status, label) {
  return el('span', { class: `badge badge-${status}`, text: label || status });
}
export function modelName(t) { return MODEL_NAMES[t] || t || '–'; }

// A few metrics of a version or job, as "name value" pairs.
export function metricSummary(m) {
  if (!m || typeof m !== 'object') return '–';
  const keys = ['r_squared', 'cv_rmse', 'cv_rmse_pct', 'rmse', 'mape', 'mase', 'f1', 'precision', 'recall', 'anomaly_rate', 'aic'];
  const parts = [];
  for (const k of keys) if (typeof m[k] === 'number') parts.push(`${k} ${fmtNum(m[k])}`);
  if (!parts.length) for (const [k, v] of Object.entries(m)) if (typeof v === 'number' && parts.length < 3) parts.push(`${k} ${fmtNum(v)}`);
  return parts.slice(0, 4).join(' · ') || '–';
}

// Draws (or redraws) a Chart.js chart on canvas id; returns it, or null without the library.
const charts = new Map();
export function drawChart(id, config) {
  const canvas = $(id);
  const old = charts.get(id);
  if (old) { old.destroy(); charts.delete(id); }
  if (!config) return null;
  if (typeof window.Chart !== 'function') {
    canvas.setAttribute('aria-label', 'chart unavailable: the charting library did not load');
    return null;
  }
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false }, config.options || {});
  if (reducedMotion()) config.options.animation = false;
  const c = new window.Chart(canvas, config);
  charts.set(id, c);
  return c;
}

// Ticks on a linear axis of epoch milliseconds.
export function timeAxis(title) {
  return {
    type: 'linear',
    title: { display: !!title, text: title || '' },
    ticks: {
      maxTicksLimit: 8,
      callback: (v) => new Date(v).toLocaleDateString(undefined, { month: 'short', day: 'numeric' }),
    },
  };
}
