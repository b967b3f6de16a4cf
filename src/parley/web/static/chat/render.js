/**
 * Markdown to safe HTML: markdown-it (CommonMark, raw HTML off) with KaTeX math (`$…$`, `$$…$$`, `\(…\)`,
 * `\[…\]`; code spans and blocks are never read as math), highlight.js for fenced code, and DOMPurify over
 * the result, since the model's output is untrusted. Finished messages are cached by their text, so opening a
 * conversation again or switching branches does not parse them again.
 */

import { DOMPurify, hljs, katex, markdownit, texmath } from './vendor.js';

const md = markdownit({ html: false, linkify: true, breaks: false });
md.use(texmath, {
    engine: katex,
    delimiters: ['dollars', 'brackets'],
    katexOptions: { throwOnError: false, output: 'htmlAndMathml', maxSize: 20, maxExpand: 200 },
});

// A fenced block: its language, a copy button (app.js handles `data-action`) and the highlighted code; the
// <pre> takes focus so a keyboard can scroll a wide block.
md.renderer.rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const lang = token.info.trim().split(/\s+/)[0].toLowerCase();
    const known = lang && hljs.getLanguage(lang);
    const code = known
        ? hljs.highlight(token.content, { language: lang, ignoreIllegals: true }).value
        : md.utils.escapeHtml(token.content);
    const label = md.utils.escapeHtml(lang || 'text');
    return '<div class="code-block"><div class="code-head">'
        + `<span class="code-lang">${label}</span>`
        + '<button type="button" class="code-copy" data-action="copy-code">Copy code</button></div>'
        + `<pre tabindex="0"><code class="hljs${known ? ` language-${label}` : ''}">${code}</code></pre></div>\n`;
};

const PURIFY = {
    USE_PROFILES: { html: true, mathMl: true, svg: true },
    // KaTeX keeps the TeX source in <annotation> (text only) for screen readers and copying.
    ADD_TAGS: ['semantics', 'annotation'],
    ADD_ATTR: ['encoding', 'target'],
    FORBID_TAGS: ['style', 'form', 'input', 'textarea', 'select'],
    FORBID_ATTR: ['id', 'name'],
};

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A' && node.hasAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer nofollow');
    }
});

/** HTML for `text`, uncached: for a message still streaming. */
export function renderDraft(text) {
    return DOMPurify.sanitize(md.render(text), PURIFY);
}

const cache = new Map();
const CACHE_LIMIT = 2000;

/** HTML for the finished message `text`, from the cache when it was rendered before. */
export function renderMarkdown(text) {
    let html = cache.get(text);
    if (html !== undefined) {
        cache.delete(text); // most recently used last
    } else {
        html = renderDraft(text);
        if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value);
    }
    cache.set(text, html);
    return html;
}
