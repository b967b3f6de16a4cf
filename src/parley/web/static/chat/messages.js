/**
 * The message list: the branch on screen, one <article> per message, built so a long conversation stays
 * responsive.
 *
 * - Opening a conversation builds light shells (the raw text, no markdown); an answer's markdown is rendered
 *   only when it comes within a screen or two of the viewport (an IntersectionObserver), from the cache when
 *   it was rendered before, and `content-visibility: auto` (chat.css) lets the browser skip laying out the
 *   messages off screen.
 * - While an answer streams only its own body changes, rendered at most once per animation frame.
 * - A branch switch, an edit or a regeneration rebuilds the path from the message that changed on.
 * - The view follows the end of the conversation (a growing answer, a message that grew once laid out) until
 *   the user scrolls away from the end, and again once they scroll back to it.
 * Buttons carry `data-action`; one click listener hands them to `onAction(action, messageId, button)`.
 */

import { element, textareaForm } from '../common/dom.js';
import { renderDraft, renderMarkdown } from './render.js';

const ROLE_LABEL = { user: 'You', assistant: 'Assistant', system: 'System' };
const ACTIONS = {
    user: [['edit', 'Edit and resend'], ['copy', 'Copy message']],
    assistant: [
        ['copy', 'Copy answer'],
        ['regenerate', 'Regenerate answer'],
        ['rate-up', 'Good answer'],
        ['rate-down', 'Bad answer'],
        ['suggest', 'Suggest a better answer'],
        ['trace', 'Pipeline trace'],
    ],
    system: [['copy', 'Copy message']],
};
const FINISH_NOTES = {
    length: 'Cut at the max tokens limit.',
    content_filter: 'Stopped by the output guard.',
};

function button(action, label, { text, pressed } = {}) {
    const b = element('button', `act act-${action}`, text);
    b.type = 'button';
    b.dataset.action = action;
    if (!text) {
        b.setAttribute('aria-label', label);
        b.title = label;
    }
    if (pressed !== undefined) b.setAttribute('aria-pressed', String(pressed));
    return b;
}

function metaText(message) {
    const parts = [];
    if (message.model) parts.push(message.model);
    if (message.usage?.completion_tokens) parts.push(`${message.usage.completion_tokens} tokens`);
    return parts.join(' · ');
}

export class MessageList {
    constructor(scroller, list, empty, { onAction }) {
        this.scroller = scroller;
        this.list = list;
        this.empty = empty;
        this.conversation = null;
        this.els = new Map();
        this.dirty = new Map();
        this.frame = 0;
        this.follow = true;
        scroller.addEventListener('scroll', () => { this.follow = this.atEnd(); }, { passive: true });
        // Any change of the list's height (a streamed token, markdown replacing raw text, a message laid out
        // for the first time) runs this after layout and before paint.
        new ResizeObserver(() => {
            if (this.follow) this.scrollToEnd();
        }).observe(list);
        this.io = new IntersectionObserver((entries) => this.#onVisible(entries), {
            root: scroller,
            rootMargin: '1200px 0px',
        });
        list.addEventListener('click', (event) => {
            const b = event.target.closest('button[data-action]');
            if (!b || !list.contains(b)) return;
            onAction(b.dataset.action, b.closest('.msg')?.dataset.id, b);
        });
    }

    /** Show the branch on screen of `conversation` (null: the empty state), scrolled to its end. */
    show(conversation) {
        this.conversation = conversation;
        this.io.disconnect();
        this.els.clear();
        this.dirty.clear();
        this.list.replaceChildren();
        this.showFrom(0);
        this.scrollToEnd();
    }

    /** The branch on screen changed from its `index`-th message on: rebuild from there. */
    showFrom(index) {
        const path = this.conversation ? this.conversation.path() : [];
        for (const el of [...this.list.children].slice(index)) this.#drop(el);
        const fragment = document.createDocumentFragment();
        for (const message of path.slice(index)) fragment.append(this.#build(message));
        this.list.append(fragment);
        this.empty.hidden = path.length > 0;
    }

    element(id) {
        return this.els.get(id);
    }

    /** A streamed token arrived for `message`: redraw its body on the next frame. */
    update(message) {
        this.dirty.set(message.id, message);
        this.frame ||= requestAnimationFrame(() => this.#flush());
    }

    /** `message` finished (done, stopped or failed): rebuild it with its actions and notes. */
    finish(message, { announceError = false } = {}) {
        this.dirty.delete(message.id);
        const old = this.els.get(message.id);
        if (!old) return;
        const fresh = this.#build(message, { live: announceError });
        this.#drop(old, fresh);
        this.#upgrade(fresh);
    }

    /** Refresh the parts of a message that reflect its state (ratings, meta) without rebuilding it. */
    refreshState(message) {
        const el = this.els.get(message.id);
        if (!el) return;
        for (const rating of ['up', 'down']) {
            el.querySelector(`[data-action="rate-${rating}"]`)
                ?.setAttribute('aria-pressed', String(message.feedback?.rating === rating));
        }
    }

    /** Put the focus on a button of a message (after a rebuild took the one that had it). */
    focusAction(id, ...actions) {
        const el = this.els.get(id);
        for (const action of actions) {
            const b = el?.querySelector(`button[data-action="${action}"]:not(:disabled)`);
            if (b) return b.focus();
        }
        return el?.querySelector('button')?.focus();
    }

    atEnd() {
        const s = this.scroller;
        return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
    }

    scrollToEnd() {
        this.follow = true;
        this.scroller.scrollTop = this.scroller.scrollHeight;
    }

    /** Replace a user message's text with an editor; `onSubmit(text)` when sent, the text back on cancel. */
    openEditor(id, onSubmit) {
        const el = this.els.get(id);
        const message = this.conversation.get(id);
        if (!el || el.querySelector('.edit-form')) return;
        const body = el.querySelector('.msg-body');
        const { form, area } = textareaForm({
            className: 'edit-form', buttonsClass: 'edit-buttons', submitText: 'Send', onCancel: () => close(),
        });
        area.value = message.content;
        area.rows = Math.min(12, message.content.split('\n').length + 1);
        area.setAttribute('aria-label', 'Edit message');
        const close = () => {
            form.remove();
            body.hidden = false;
            this.focusAction(id, 'edit');
        };
        area.addEventListener('keydown', (event) => {
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                form.requestSubmit();
            }
        });
        form.addEventListener('submit', (event) => {
            event.preventDefault();
            const text = area.value.trim();
            if (text) onSubmit(text);
        });
        body.hidden = true;
        body.after(form);
        area.focus();
    }

    #build(message, { live = false } = {}) {
        const conversation = this.conversation;
        const el = element('article', `msg msg-${message.role}`);
        el.dataset.id = message.id;
        el.dataset.role = message.role;
        el.dataset.status = message.status ?? 'done';
        el.dataset.raw = message.content;
        if (message.completion_id) el.dataset.completionId = message.completion_id;
        el.setAttribute('aria-label', ROLE_LABEL[message.role]);

        const head = el.appendChild(element('div', 'msg-head'));
        head.append(element('span', 'msg-role', ROLE_LABEL[message.role]), element('span', 'msg-meta', metaText(message)));
        const siblings = conversation.siblings(message.id);
        if (siblings.length > 1) head.append(branchNav(siblings.indexOf(message.id) + 1, siblings.length));

        if (message.reasoning) {
            const details = el.appendChild(element('details', 'reasoning'));
            details.append(element('summary', '', 'Reasoning'), element('div', 'reasoning-text', message.reasoning));
        }
        const body = el.appendChild(element('div', 'msg-body'));
        body.textContent = message.content;
        if (message.role !== 'user' && message.status !== 'streaming') {
            el.classList.add('pending');
            this.io.observe(el);
        }
        const note = noteFor(message);
        if (note) {
            if (live) note.setAttribute('role', 'alert');
            el.append(note);
        }
        if (message.status !== 'streaming') el.append(this.#actions(message));
        el.append(element('div', 'msg-panels'));
        this.els.set(message.id, el);
        return el;
    }

    #actions(message) {
        const bar = element('div', 'msg-actions');
        bar.setAttribute('role', 'group');
        bar.setAttribute('aria-label', 'Message actions');
        for (const [action, label] of ACTIONS[message.role]) {
            if (action.startsWith('rate-') || action === 'suggest') {
                if (!message.completion_id) continue;
            }
            if (action === 'trace' && !message.trace) continue;
            const rating = action.startsWith('rate-') ? action.slice(5) : null;
            const b = button(action, label, rating ? { pressed: message.feedback?.rating === rating } : {});
            if (action === 'trace' || action === 'suggest') {
                b.setAttribute('aria-expanded', 'false');
                b.setAttribute('aria-controls', `${action}-${message.id}`);
            }
            bar.append(b);
        }
        return bar;
    }

    #drop(el, replacement) {
        this.io.unobserve(el);
        if (this.els.get(el.dataset.id) === el) this.els.delete(el.dataset.id);
        if (replacement) el.replaceWith(replacement);
        else el.remove();
    }

    #upgrade(el) {
        if (!el.classList.contains('pending')) return;
        this.io.unobserve(el);
        const message = this.conversation?.get(el.dataset.id);
        if (!message) return;
        el.querySelector('.msg-body').innerHTML = renderMarkdown(message.content);
        el.classList.remove('pending');
    }

    #onVisible(entries) {
        for (const entry of entries) {
            if (entry.isIntersecting) this.#upgrade(entry.target);
        }
    }

    #flush() {
        this.frame = 0;
        for (const message of this.dirty.values()) {
            const el = this.els.get(message.id);
            if (!el) continue;
            el.querySelector('.msg-body').innerHTML = renderDraft(message.content);
            el.dataset.raw = message.content;
            if (message.completion_id) el.dataset.completionId = message.completion_id;
            if (message.reasoning) {
                let details = el.querySelector('.reasoning');
                if (!details) {
                    details = element('details', 'reasoning');
                    details.append(element('summary', '', 'Reasoning'), element('div', 'reasoning-text'));
                    el.querySelector('.msg-body').before(details);
                }
                details.querySelector('.reasoning-text').textContent = message.reasoning;
            }
        }
        this.dirty.clear();
    }
}

function branchNav(position, count) {
    const nav = element('div', 'branch-nav');
    nav.setAttribute('role', 'group');
    nav.setAttribute('aria-label', 'Versions');
    const prev = button('branch-prev', 'Previous version');
    prev.disabled = position === 1;
    const next = button('branch-next', 'Next version');
    next.disabled = position === count;
    const where = element('span', 'branch-pos');
    where.append(element('span', 'visually-hidden', 'Version '), `${position}/${count}`);
    nav.append(prev, where, next);
    return nav;
}

function noteFor(message) {
    if (message.status === 'error' && message.error) {
        const note = element('div', 'msg-note msg-error');
        note.append(element('span', '', message.error.message));
        if (message.error.status === 401) {
            note.append(' ', button('open-key', 'Enter an API key', { text: 'Enter an API key' }));
        }
        return note;
    }
    const notes = [];
    if (message.context_note) notes.push(message.context_note);
    if (message.status === 'stopped') notes.push('Stopped.');
    else if (FINISH_NOTES[message.finish_reason]) notes.push(FINISH_NOTES[message.finish_reason]);
    if (!notes.length) return null;
    return element('div', `msg-note${message.status === 'stopped' ? ' msg-stopped' : ''}`, notes.join(' '));
}
