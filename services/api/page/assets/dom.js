/** Building DOM nodes without markup strings, for the views that are small. */

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Fills `element` with attributes (`class`, `data-*`, …; undefined and false ones left out) and
 * children (null, undefined and false ones left out).
 */
function fill(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** An HTML element. @param {string} tag @param {Record<string, unknown>} [attributes] @param {...unknown} children */
export const h = (tag, attributes = {}, ...children) => fill(document.createElement(tag), attributes, children);

/** An SVG element. @param {string} tag @param {Record<string, unknown>} [attributes] @param {...unknown} children */
export const s = (tag, attributes = {}, ...children) => fill(document.createElementNS(SVG_NS, tag), attributes, children);

/** Replaces what `container` shows. */
export const show = (container, ...nodes) => container.replaceChildren(...nodes);

/** A failure, shown where its view would be. @param {Error} error */
export const errorNode = (error) => h('p', { class: 'error', role: 'alert' }, error.message);

/** What a view says when there is nothing to show. @param {string} text */
export const emptyNode = (text) => h('p', { class: 'empty' }, text);
