/**
 * The pipeline trace of one answer (`parley_trace`): the six stages in order with their durations as bars,
 * every stage's and step's detail (whatever keys the server sends), the guards' verdicts at the top and a
 * badge on each step that decided something.
 */

import { element } from './dom.js';

const STAGES = ['input', 'preprocess', 'model', 'output', 'postprocess', 'final'];
const STRENGTH = { block: 3, redact: 2, flag: 1 };

export function formatMs(ms) {
    if (typeof ms !== 'number') return '—';
    if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
    return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

function strongest(actions) {
    return actions.reduce((best, a) => ((STRENGTH[a] ?? 0) > (STRENGTH[best] ?? 0) ? a : best), actions[0]);
}

function findingText(f) {
    const what = [f.scanner, f.kind].filter(Boolean).join(' ');
    const score = typeof f.score === 'number' ? ` (${f.score})` : '';
    return `${what}${score}${f.action ? ` → ${f.action}` : ''}`;
}

/** What a step decided, for its badge: `{text, level}` (level: info, flag, block), or null. */
function decisionOf(step) {
    const d = step.detail ?? {};
    switch (step.step) {
        case 'guard_input': {
            if (d.off_topic) return { text: `off topic → ${d.off_topic.action ?? 'block'}`, level: 'block' };
            const actions = (d.verdicts ?? []).map((v) => v.action).filter(Boolean);
            if (!actions.length) return null;
            const action = strongest(actions);
            return { text: `${actions.length} verdict${actions.length > 1 ? 's' : ''}: ${action}`, level: action === 'block' ? 'block' : 'flag' };
        }
        case 'output_guard':
            if (d.blocked) return { text: 'blocked', level: 'block' };
            if (d.findings?.length) return { text: `${d.findings.length} finding${d.findings.length > 1 ? 's' : ''}`, level: 'flag' };
            return null;
        case 'repetition':
            return d.loop_cut ? { text: 'cut a loop', level: 'flag' } : null;
        case 'truncation':
            return d.trimmed ? { text: 'trimmed the end', level: 'info' } : null;
        case 'fences':
            return d.closed_fence ? { text: 'closed a code fence', level: 'info' } : null;
        case 'leaked_tokens':
            return d.stripped?.length ? { text: 'stripped template tokens', level: 'flag' } : null;
        case 'html':
            return d.sanitized ? { text: `sanitized ${d.sanitized}`, level: 'flag' } : null;
        case 'params': {
            const parts = [];
            if (d.complexity?.tier) parts.push(`tier ${d.complexity.tier}`);
            if (d.temperature_from) parts.push(`temperature from ${d.temperature_from}`);
            return parts.length ? { text: parts.join(', '), level: 'info' } : null;
        }
        default:
            return null;
    }
}

function stepOf(trace, name) {
    for (const stage of trace) {
        const step = (stage.steps ?? []).find((s) => s.step === name);
        if (step) return step;
    }
    return null;
}

/** One line per guard: passed, or what it found and did. */
function guardSummary(trace) {
    const list = element('ul', 'trace-guards');
    list.setAttribute('aria-label', 'Guard verdicts');
    const input = stepOf(trace, 'guard_input');
    const output = stepOf(trace, 'output_guard');
    const line = (label, text, level) => {
        const li = list.appendChild(element('li', `guard guard-${level}`));
        li.append(element('strong', '', `${label}: `), text);
    };
    if (!input) line('Input guard', 'not run', 'info');
    else {
        const verdicts = input.detail?.verdicts ?? [];
        if (!verdicts.length) line('Input guard', 'passed', 'ok');
        for (const v of verdicts) {
            const findings = (v.findings ?? []).map(findingText).join(', ');
            line('Input guard', `${v.action ?? 'flag'} message ${v.message ?? '?'}${findings ? ` — ${findings}` : ''}`,
                v.action === 'block' ? 'block' : 'flag');
        }
        if (input.detail?.off_topic) line('Topic', `off topic → ${input.detail.off_topic.action ?? 'block'}`, 'block');
    }
    if (!output) line('Output guard', 'not run', 'info');
    else if (output.detail?.blocked) line('Output guard', `blocked — ${valueText(output.detail.blocked)}`, 'block');
    else if (output.detail?.findings?.length) {
        line('Output guard', output.detail.findings.map(findingText).join(', '), 'flag');
    } else line('Output guard', 'passed', 'ok');
    return list;
}

function valueText(value) {
    if (value === null || value === undefined) return '—';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
}

/** Any JSON value, readable: scalars inline, long text folded, lists and objects nested. */
function valueNode(value) {
    if (value === null || value === undefined) return element('span', 'trace-null', '—');
    if (typeof value === 'boolean') return element('span', `trace-bool trace-${value}`, value ? 'yes' : 'no');
    if (typeof value === 'number') return element('span', 'trace-num', String(Math.round(value * 1000) / 1000));
    if (typeof value === 'string') {
        if (value.length <= 80 && !value.includes('\n')) return element('span', 'trace-str', value);
        const details = element('details', 'trace-long');
        details.append(element('summary', '', `${value.length} characters`), element('pre', '', value));
        return details;
    }
    if (Array.isArray(value)) {
        if (!value.length) return element('span', 'trace-null', 'none');
        if (value.every((v) => v === null || typeof v !== 'object')) return element('span', 'trace-str', value.map(valueText).join(', '));
        const list = element('ol', 'trace-list');
        for (const item of value) list.appendChild(element('li')).append(valueNode(item));
        return list;
    }
    return detailList(value);
}

function detailList(detail) {
    const dl = element('dl', 'trace-detail');
    for (const [key, value] of Object.entries(detail ?? {})) {
        const row = dl.appendChild(element('div'));
        row.append(element('dt', '', key));
        row.appendChild(element('dd')).append(valueNode(value));
    }
    return dl;
}

function row(name, ms, fraction) {
    const r = element('div', 'trace-row');
    r.append(element('span', 'trace-name', name));
    if (fraction !== undefined) {
        const bar = r.appendChild(element('span', 'trace-bar'));
        bar.setAttribute('aria-hidden', 'true');
        bar.appendChild(element('span', 'trace-fill')).style.width = `${Math.max(0.5, fraction * 100).toFixed(1)}%`;
    }
    r.append(element('span', 'trace-ms', formatMs(ms)));
    return r;
}

function stepNode(step) {
    const li = element('li', 'trace-step');
    li.dataset.step = step.step;
    const r = li.appendChild(row(step.step, step.duration_ms));
    const decision = decisionOf(step);
    if (decision) r.append(element('span', `badge badge-${decision.level}`, decision.text));
    if (step.detail && Object.keys(step.detail).length) li.append(detailList(step.detail));
    return li;
}

/** The trace panel of an answer; `id` for the button's aria-controls. */
export function traceView(trace, id) {
    const panel = element('section', 'trace-panel');
    panel.id = id;
    panel.setAttribute('aria-label', 'Pipeline trace');
    const byName = new Map(trace.map((s) => [s.stage, s]));
    const ordered = [...STAGES.map((name) => byName.get(name)).filter(Boolean), ...trace.filter((s) => !STAGES.includes(s.stage))];
    const total = ordered.reduce((sum, s) => sum + (s.duration_ms ?? 0), 0);
    const title = panel.appendChild(element('div', 'trace-title'));
    title.append(element('strong', '', 'Pipeline trace'), element('span', 'trace-total', `${formatMs(total)} in all`));
    panel.append(guardSummary(trace));
    const stages = panel.appendChild(element('ol', 'trace-stages'));
    for (const stage of ordered) {
        const li = stages.appendChild(element('li', 'trace-stage'));
        li.dataset.stage = stage.stage;
        li.append(row(stage.stage, stage.duration_ms, total ? (stage.duration_ms ?? 0) / total : 0));
        if (stage.detail && Object.keys(stage.detail).length) li.append(detailList(stage.detail));
        if (stage.steps?.length) {
            const steps = li.appendChild(element('ol', 'trace-steps'));
            for (const step of stage.steps) steps.append(stepNode(step));
        }
    }
    return panel;
}
