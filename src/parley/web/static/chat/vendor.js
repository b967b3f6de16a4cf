/**
 * The vendored libraries (static/vendor, see VENDOR.md). index.html loads their UMD builds as classic
 * deferred scripts, which run before this module; each sets one global, re-exported here so the other
 * modules import them like any module.
 */
const { markdownit, DOMPurify, hljs, katex, texmath } = globalThis;

export { DOMPurify, hljs, katex, markdownit, texmath };
