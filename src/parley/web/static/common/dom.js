/** Building DOM nodes for the page's views. */

/** A new `tag` element with an optional class and text. */
export function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
}
