/**
 * Small SVG line charts: one or more series over the same time axis, gaps where a value is missing, a legend,
 * and a text alternative (the latest value of each series) for screen readers. No library: the dashboard's
 * charts are a few dozen points each.
 */

const SVG = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 200;
const PAD = { left: 52, right: 12, top: 12, bottom: 26 };
export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];

function svg(tag, attrs = {}, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
}

/** Round-ish upper bound and tick step for values up to `max`. */
function scale(max) {
    if (!(max > 0)) return { top: 1, step: 0.25 };
    const magnitude = 10 ** Math.floor(Math.log10(max));
    const step = [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => max / s <= 4);
    return { top: Math.ceil(max / step) * step, step };
}

export function formatValue(value, unit) {
    if (value === null || value === undefined) return '–';
    if (unit === 'ms') return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
    if (unit === '%') return `${Math.round(value * 100)}%`;
    if (Number.isInteger(value)) return String(value);
    return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function clock(iso) {
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * Draw into `figure` (replacing what was there): `times` (ISO strings), `series` [{name, values}], `unit`
 * ('ms', '%' for ratios 0..1, or '' for counts). Returns the figure.
 */
export function lineChart(figure, { title, times, series, unit = '', max }) {
    figure.replaceChildren();
    figure.classList.add('chart');
    const id = `chart-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
    const caption = document.createElement('figcaption');
    caption.id = `${id}-title`;
    caption.textContent = title;
    figure.append(caption);

    const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    const { top, step } = scale(max ?? Math.max(0, ...values));
    const x = (i) => PAD.left + (times.length <= 1 ? 0 : (i / (times.length - 1)) * (W - PAD.left - PAD.right));
    const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);

    const latest = series.map((s) => {
        const last = [...s.values].reverse().find((v) => v !== null && v !== undefined);
        return `${s.name}: ${formatValue(last ?? null, unit)}`;
    });
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`,
                               preserveAspectRatio: 'none' });
    chart.append(svg('desc', { id: `${id}-desc` }, values.length ? `Latest: ${latest.join('; ')}.` : 'No data in this window.'));

    const grid = svg('g', { class: 'chart-grid', 'aria-hidden': 'true' });
    for (let v = 0; v <= top + step / 2; v += step) {
        grid.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
        grid.append(svg('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatValue(v, unit)));
    }
    const labels = Math.min(6, times.length);
    for (let k = 0; k < labels; k += 1) {
        const i = Math.round((k / Math.max(labels - 1, 1)) * (times.length - 1));
        grid.append(svg('text', { x: x(i), y: H - 8, 'text-anchor': k === 0 ? 'start' : k === labels - 1 ? 'end' : 'middle' },
                        clock(times[i])));
    }
    chart.append(grid);

    series.forEach((s, n) => {
        const color = s.color ?? PALETTE[n % PALETTE.length];
        const g = svg('g', { class: 'chart-series', 'data-series': s.name, 'aria-hidden': 'true' });
        let d = '';
        let pen = false;
        s.values.forEach((v, i) => {
            if (v === null || v === undefined) {
                pen = false;
                return;
            }
            d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
            pen = true;
            const prev = s.values[i - 1];
            const next = s.values[i + 1];
            if ((prev === null || prev === undefined) && (next === null || next === undefined)) {
                g.append(svg('circle', { cx: x(i), cy: y(v), r: 2.5, fill: color }));  // a lone point
            }
        });
        if (d) g.prepend(svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }));
        chart.append(g);
    });
    figure.append(chart);

    if (series.length > 1 || series[0]?.name !== title) {
        const legend = document.createElement('ul');
        legend.className = 'chart-legend';
        series.forEach((s, n) => {
            const li = document.createElement('li');
            const swatch = document.createElement('span');
            swatch.className = 'swatch';
            swatch.style.background = s.color ?? PALETTE[n % PALETTE.length];
            li.append(swatch, document.createTextNode(s.name));
            legend.append(li);
        });
        figure.append(legend);
    }
    figure.dataset.points = String(values.length);
    return figure;
}
