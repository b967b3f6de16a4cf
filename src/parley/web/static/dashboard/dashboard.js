/**
 * The dashboard: `/admin/stats` (the completion log and feedback of every replica, and this replica's live
 * gauges) as headline tiles, charts over time and the newest low-rated answers with their traces. The page
 * asks for an admin key when the API says it needs one; it shares the chat page's stored key.
 */

import { getJSON, setApiKey } from '../common/api.js';
import { traceView } from '../common/trace.js';
import { formatValue, lineChart } from './chart.js';

const REFRESH_MS = 10_000;
const BUCKETS = 60;
const $ = (id) => document.getElementById(id);

function tile(label, value, detail) {
    const box = document.createElement('div');
    box.className = 'tile';
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (detail) {
        const small = document.createElement('span');
        small.className = 'tile-detail';
        small.textContent = detail;
        dd.append(small);
    }
    box.append(dt, dd);
    return box;
}

function renderTiles(stats) {
    const t = stats.totals;
    const running = Object.values(stats.live.models).reduce((n, m) => n + m.running, 0);
    const waiting = Object.values(stats.live.models).reduce((n, m) => n + m.waiting, 0);
    $('tiles').replaceChildren(
        tile('Requests', String(t.requests), `${t.failed} failed, ${t.cancelled} cancelled`),
        tile('Error rate', formatValue(t.error_rate, '%')),
        tile('Latency p50 / p95', `${formatValue(t.latency_p50_ms, 'ms')} / ${formatValue(t.latency_p95_ms, 'ms')}`),
        tile('TTFT p50 / p95', `${formatValue(t.ttft_p50_ms, 'ms')} / ${formatValue(t.ttft_p95_ms, 'ms')}`),
        tile('Tokens/s', formatValue(t.tokens_per_s), `${t.completion_tokens} generated`),
        tile('Rated good', formatValue(t.feedback_ratio, '%'), `${t.feedback_good} 👍 ${t.feedback_bad} 👎`),
        tile('Now', `${running} running`, `${waiting} waiting`),
    );
}

function named(map) {
    return Object.entries(map).map(([name, values]) => ({ name, values }));
}

function renderCharts(stats) {
    const s = stats.series;
    const times = s.t;
    lineChart($('chart-requests'), { title: 'Requests', times,
        series: [{ name: 'requests', values: s.requests }, { name: 'failed', values: s.failed, color: '#dc2626' }] });
    lineChart($('chart-latency'), { title: 'Latency', times, unit: 'ms',
        series: [{ name: 'p50', values: s.latency_p50_ms }, { name: 'p95', values: s.latency_p95_ms, color: '#ea580c' }] });
    lineChart($('chart-ttft'), { title: 'Time to first token', times, unit: 'ms',
        series: [{ name: 'p50', values: s.ttft_p50_ms }, { name: 'p95', values: s.ttft_p95_ms, color: '#ea580c' }] });
    lineChart($('chart-tokens'), { title: 'Tokens per second', times, series: [{ name: 'generated', values: s.tokens_per_s }] });
    lineChart($('chart-feedback'), { title: 'Feedback rated good', times, unit: '%', max: 1,
        series: [{ name: 'good / rated', values: s.feedback_ratio, color: '#16a34a' }] });
    const guards = named(s.guard_blocks);
    lineChart($('chart-guards'), { title: 'Guard blocks by scanner', times,
        series: guards.length ? guards : [{ name: 'none', values: s.t.map(() => 0) }] });
    lineChart($('chart-adapters'), { title: 'Requests by adapter', times, series: named(s.adapters) });
}

function cell(text, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text ?? '';
    return td;
}

function renderLowRated(stats) {
    const body = $('low-rated').tBodies[0];
    body.replaceChildren();
    $('low-empty').hidden = stats.low_rated.length > 0;
    stats.low_rated.forEach((row, n) => {
        const tr = document.createElement('tr');
        const when = new Date(row.rated_at);
        const model = row.adapter ? `${row.model} + ${row.adapter}` : row.model;
        tr.append(cell(when.toLocaleString()), cell(model), cell(String(row.rating)), cell(row.question, 'text'),
                  cell(row.answer, 'text'), cell(row.correction ?? '—', 'text'));
        const td = document.createElement('td');
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'Trace';
        button.setAttribute('aria-expanded', 'false');
        button.setAttribute('aria-controls', `trace-${n}`);
        td.append(button);
        tr.append(td);
        const detail = document.createElement('tr');
        detail.className = 'low-trace';
        detail.hidden = true;
        const holder = document.createElement('td');
        holder.colSpan = 7;
        detail.append(holder);
        button.addEventListener('click', () => {
            if (!holder.firstChild) holder.append(traceView(row.trace ?? [], `trace-${n}`));
            detail.hidden = !detail.hidden;
            button.setAttribute('aria-expanded', String(!detail.hidden));
        });
        body.append(tr, detail);
    });
}

function askForKey(reason) {
    $('key-reason').textContent = reason;
    $('key-form').hidden = false;
    $('key-input').focus();
}

let timer = null;
let loading = false;

async function load() {
    if (loading) return;
    loading = true;
    try {
        const window = $('window').value;
        const stats = await getJSON(`admin/stats?window=${window}&buckets=${BUCKETS}&low_rated=20`);
        $('key-form').hidden = true;
        renderTiles(stats);
        renderCharts(stats);
        const openRow = document.querySelector('.low-trace:not([hidden])');
        if (!openRow) renderLowRated(stats);  // don't collapse a trace someone is reading
        const pending = stats.log_pending ? ` (${stats.log_pending} turns still being written)` : '';
        $('status').textContent = `Updated ${new Date().toLocaleTimeString()}${pending}.`;
        document.body.dataset.loaded = 'true';
    } catch (err) {
        if (err.status === 401 || err.status === 403) {
            stop();
            askForKey(err.status === 401 ? 'The dashboard needs an admin API key.' : `This key cannot read the dashboard: ${err.message}`);
        } else {
            $('status').textContent = `Could not load the figures: ${err.message}`;
        }
    } finally {
        loading = false;
    }
}

function stop() {
    clearInterval(timer);
    timer = null;
}

function schedule() {
    stop();
    if ($('auto').checked) timer = setInterval(load, REFRESH_MS);
}

$('controls').addEventListener('submit', (e) => {
    e.preventDefault();
    load();
});
$('window').addEventListener('change', load);
$('auto').addEventListener('change', schedule);
$('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setApiKey($('key-input').value.trim());
    $('key-input').value = '';
    load().then(schedule);
});
load().then(schedule);
