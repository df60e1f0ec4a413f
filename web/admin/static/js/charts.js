// charts.js — pictures of an integration or a campaign over time, drawn
// with uPlot (vendored in static/vendor/uplot, loaded by index.html as the
// global uPlot) from GET …/timeseries, and kept current by polling it.
//
// uPlot styles its elements through the CSSOM (element.style), which the
// console's Content-Security-Policy allows; it adds no <style> and no
// inline script.

import {get} from './api.js';
import {h, replace} from './dom.js';

const POLL_MS = 2000;
const HEIGHT = 180;

// Outcome colours: answered and completed green, the rest by kind.
const COLOURS = {
  answered: '#2e9e5b', completed: '#1f7a44', short_call: '#9bc53d', voicemail: '#7e57c2', no_answer: '#f0a202',
  busy: '#e8743b', dial_error: '#c0392b', timeout: '#8e44ad', dial_lost: '#7f8c8d', cancelled: '#95a5a6',
  suppressed: '#34495e', ineligible: '#bdc3c7',
};
const LIVE = '#3b6fd8';
const LIMIT = '#c0392b';

// timeseriesCharts draws the charts of source ('integration' or
// 'campaign') into a new section; start() draws them and keeps them current.
// limit, when given, answers the concurrency limit drawn against the live calls.
export function timeseriesCharts(ctx, source, id, limit) {
  const url = source === 'campaign' ? `/api/campaigns/${id}/timeseries` : `/api/integrations/${id}/timeseries`;
  const section = h('section', {class: 'card charts', 'aria-labelledby': 'charts-h', 'data-source': source});
  const note = h('p', {class: 'muted small'}, 'The last hour by minute; updated as calls are dialled and end.');
  const boxes = {
    active: chartBox('chart-active', source === 'campaign' ? 'Live calls' : 'Live calls against the limit'),
    dials: chartBox('chart-dials', 'Dials per minute by outcome'),
    queue: chartBox('chart-queue', source === 'campaign' ? 'Progress: dials ended, and calls still to dial' : 'Queue: calls waiting for their first dial'),
  };
  replace(section, h('h2', {id: 'charts-h'}, 'Over time'), note, h('div', {class: 'chart-grid'}, Object.values(boxes).map((b) => b.el)));

  let last = '';
  const plots = {};
  async function refresh() {
    const [ts, lim] = await Promise.all([get(url), limit ? limit() : null]);
    if (!ctx.alive) return;
    const key = JSON.stringify([ts, lim]);
    if (key === last) return;
    last = key;
    draw(ts, lim);
  }

  function draw(ts, lim) {
    const points = ts.points || [];
    const x = points.map((p) => Date.parse(p.t) / 1000);
    const outcomes = [...new Set(points.flatMap((p) => Object.keys(p.byOutcome || {})))].sort();
    const charts = {
      active: {
        series: [{label: 'live', stroke: LIVE, width: 2, fill: LIVE + '22'}].concat(lim == null ? [] : [{label: 'limit', stroke: LIMIT, dash: [6, 4], width: 1.5}]),
        data: [x, points.map((p) => p.active)].concat(lim == null ? [] : [points.map(() => lim)]),
      },
      dials: stackedDials(x, points, outcomes),
      queue: source === 'campaign' ? progress(x, points) : {
        series: [{label: 'queued', stroke: '#f0a202', width: 2, fill: '#f0a20222'}],
        data: [x, points.map((p) => p.queued)],
      },
    };
    for (const [name, c] of Object.entries(charts)) {
      const box = boxes[name];
      const shape = JSON.stringify(c.series.map((s) => s.label));
      // uPlot fixes its series when made: a new outcome makes a new plot.
      if (plots[name] && plots[name].shape === shape) {
        plots[name].u.setData(c.data);
      } else {
        if (plots[name]) plots[name].u.destroy();
        const u = new window.uPlot(options(c.series, box.plot.clientWidth, c.bars), c.data, box.plot);
        plots[name] = {u, shape};
        box.el.uplot = u; // for the browser tests and the console's own debugging
      }
      box.el.dataset.points = String(points.length);
    }
  }

  // Each plot follows its box's width, so a phone shows it whole.
  const resize = new ResizeObserver(() => {
    for (const [name, p] of Object.entries(plots)) {
      const w = boxes[name].plot.clientWidth;
      if (w > 0 && w !== p.u.width) p.u.setSize({width: w, height: HEIGHT});
    }
  });
  resize.observe(section);
  const stop = () => { resize.disconnect(); for (const p of Object.values(plots)) p.u.destroy(); };

  // Started by the page once the section is in it (a plot needs a width);
  // a chart that cannot load must not take the page with it.
  const start = () => {
    ctx.onLeave(stop);
    return ctx.every(POLL_MS, refresh).catch((e) => replace(note, h('span', {class: 'form-error'}, 'The charts cannot load: ' + e.message)));
  };
  return {section, start};
}

function chartBox(id, title) {
  const plot = h('div', {class: 'chart-plot'});
  const el = h('figure', {class: 'chart', id, 'aria-labelledby': id + '-h'}, h('figcaption', {id: id + '-h'}, title), plot);
  return {el, plot};
}

function options(series, width, bars) {
  return {
    width: Math.max(width, 200), height: HEIGHT,
    cursor: {drag: {x: false, y: false}},
    scales: {x: {time: true}, y: {range: (_, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))]}},
    axes: [{}, {size: 40, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]}],
    series: [{}].concat(series.map((s) => bars ? {...s, paths: window.uPlot.paths.bars({size: [0.8, 40]}), points: {show: false}} : {...s, points: {show: false}})),
  };
}

// stackedDials draws each minute's dials as one bar split by outcome: each
// series is the running total up to its outcome, drawn tallest first, so
// every outcome shows as its own band; the legend shows its own count.
function stackedDials(x, points, outcomes) {
  const own = [points.map((p) => p.dials - Object.values(p.byOutcome || {}).reduce((a, b) => a + b, 0))];
  const series = [{label: 'live', fill: LIVE, stroke: LIVE}];
  for (const o of outcomes) {
    own.push(points.map((p) => (p.byOutcome || {})[o] || 0));
    series.push({label: o.replace(/_/g, ' '), fill: COLOURS[o] || '#555', stroke: COLOURS[o] || '#555'});
  }
  // Tallest band first: "live" on top of every outcome.
  const data = [x];
  for (let i = 0; i < own.length; i++) {
    data.push(points.map((_, j) => own.slice(i).reduce((sum, s) => sum + s[j], 0)));
  }
  series.forEach((s, i) => { s.value = (u, v, si, idx) => idx == null ? '—' : String(own[i][idx]); });
  return {series, data, bars: true};
}

// progress is a campaign's shape: dials ended so far (from the start of
// the window) and the calls still waiting for their first dial.
function progress(x, points) {
  let ended = 0;
  const done = points.map((p) => (ended += Object.values(p.byOutcome || {}).reduce((a, b) => a + b, 0)));
  return {
    series: [{label: 'dials ended', stroke: '#2e9e5b', width: 2, fill: '#2e9e5b22'}, {label: 'still to dial', stroke: '#f0a202', width: 2}],
    data: [x, done, points.map((p) => p.queued)],
  };
}
