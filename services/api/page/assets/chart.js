/** The few pieces of an SVG chart the page needs: linear scales, round ticks, axes. */
import { s } from './dom.js';

export const WIDTH = 600;
export const HEIGHT = 300;
export const MARGIN = { top: 12, right: 16, bottom: 40, left: 64 };

/** Up to about `count` round tick values from 0 to at least `max` (1, 2 or 5 times a power of ten). */
export function ticks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((f) => f * power).find((candidate) => candidate >= rough);
  const values = [];
  for (let value = 0; value < max + step; value += step) values.push(Number(value.toPrecision(12)));
  return values;
}

/** A linear map from [d0, d1] to [r0, r1]. */
export const scale = (d0, d1, r0, r1) => (value) => (d1 === d0 ? r0 : r0 + ((value - d0) / (d1 - d0)) * (r1 - r0));

/**
 * Grid lines and labels of the y axis at `values` (scaled by `y`), and the labels of the x axis
 * at `xs` ([position, label] pairs), with the axes' titles.
 */
export function axes({ y, values, format, xs, xTitle, yTitle }) {
  const left = MARGIN.left;
  const right = WIDTH - MARGIN.right;
  const bottom = HEIGHT - MARGIN.bottom;
  return s(
    'g',
    { class: 'axis' },
    values.map((value) =>
      s('g', {}, s('line', { x1: left, x2: right, y1: y(value), y2: y(value) }), s('text', { x: left - 6, y: y(value), 'text-anchor': 'end', 'dominant-baseline': 'middle' }, format(value))),
    ),
    xs.map(([x, label]) => s('text', { x, y: bottom + 14, 'text-anchor': 'middle' }, label)),
    s('text', { class: 'axis-title', x: (left + right) / 2, y: HEIGHT - 4, 'text-anchor': 'middle' }, xTitle),
    s('text', { class: 'axis-title', x: 12, y: (MARGIN.top + bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(MARGIN.top + bottom) / 2})` }, yTitle),
  );
}

/** An empty chart canvas with an accessible name. */
export const svgChart = (label) => s('svg', { class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': label });

/** Every n-th of `count` positions, so that about `most` labels fit on an axis. */
export const every = (count, most) => Math.max(1, Math.ceil(count / most));
