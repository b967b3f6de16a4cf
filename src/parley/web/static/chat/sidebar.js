/**
 * The conversation list: open, new, rename (inline), delete, search over titles and message text, export of
 * the open conversation and import of JSON files. At phone width the list is a drawer behind the header's
 * toggle; on wider screens the toggle hides or shows it.
 */

import { element } from '../common/dom.js';
import * as store from './store.js';

const PHONE = window.matchMedia('(max-width: 800px)');

export class Sidebar {
    /** Callbacks: `onOpen(id)`, `onNew()`, `onDelete(id)`, `onRename(id, title)`, `onExport()`, `onImport(files)`. */
    constructor(handlers) {
        this.handlers = handlers;
        this.currentId = null;
        this.summaries = [];
        this.matches = null;
        this.nav = document.getElementById('sidebar');
        this.toggle = document.getElementById('sidebar-toggle');
        this.list = document.getElementById('conversation-list');
        this.search = document.getElementById('conversation-search');
        this.emptyNote = document.getElementById('conversation-empty');
        const file = document.getElementById('import-file');

        this.toggle.addEventListener('click', () => this.setOpen(this.toggle.getAttribute('aria-expanded') !== 'true'));
        PHONE.addEventListener('change', () => this.setOpen(!PHONE.matches));
        this.setOpen(!PHONE.matches);
        // At phone width the drawer covers the chat: a click beside it closes it.
        document.addEventListener('click', (event) => {
            if (PHONE.matches && document.body.classList.contains('sidebar-open')
                && !this.nav.contains(event.target) && !this.toggle.contains(event.target)) {
                this.setOpen(false);
            }
        });
        document.addEventListener('keydown', (event) => {
            if (event.key === 'Escape' && PHONE.matches && document.body.classList.contains('sidebar-open')
                && !event.target.closest?.('dialog')) {
                this.setOpen(false);
                this.toggle.focus();
            }
        });
        document.getElementById('new-chat').addEventListener('click', () => this.#closeOnPhone(handlers.onNew()));
        document.getElementById('export-chat').addEventListener('click', () => handlers.onExport());
        document.getElementById('import-chat').addEventListener('click', () => file.click());
        file.addEventListener('change', () => {
            if (file.files.length) handlers.onImport([...file.files]);
            file.value = '';
        });
        let timer = 0;
        this.search.addEventListener('input', () => {
            clearTimeout(timer);
            timer = setTimeout(() => this.#runSearch(), 150);
        });
        this.list.addEventListener('click', (event) => this.#onClick(event));
    }

    setOpen(open) {
        this.toggle.setAttribute('aria-expanded', String(open));
        document.body.classList.toggle('sidebar-open', open);
    }

    /** Show these summaries (`store.listSummaries()`), `currentId` marked. */
    render(summaries, currentId) {
        this.summaries = summaries;
        this.currentId = currentId;
        const shown = this.matches ? summaries.filter((s) => this.matches.has(s.id)) : summaries;
        this.list.replaceChildren(...shown.map((s) => this.#item(s)));
        this.emptyNote.hidden = shown.length > 0;
        this.emptyNote.textContent = this.matches ? 'No conversation matches.' : 'No conversations yet.';
    }

    async refresh(currentId = this.currentId) {
        this.render(await store.listSummaries(), currentId);
    }

    #item(summary) {
        const li = element('li', 'conversation');
        li.dataset.id = summary.id;
        const open = li.appendChild(element('button', 'conversation-open', summary.title));
        open.type = 'button';
        open.dataset.action = 'open';
        if (summary.id === this.currentId) open.setAttribute('aria-current', 'page');
        for (const [action, label] of [['rename', 'Rename'], ['delete', 'Delete']]) {
            const b = li.appendChild(element('button', `act act-${action}`));
            b.type = 'button';
            b.dataset.action = action;
            b.setAttribute('aria-label', `${label} “${summary.title}”`);
            b.title = label;
        }
        return li;
    }

    #onClick(event) {
        const b = event.target.closest('button[data-action]');
        if (!b) return;
        const id = b.closest('.conversation').dataset.id;
        const summary = this.summaries.find((s) => s.id === id);
        if (b.dataset.action === 'open') this.#closeOnPhone(this.handlers.onOpen(id));
        else if (b.dataset.action === 'delete') {
            if (window.confirm(`Delete “${summary.title}”? This cannot be undone.`)) this.handlers.onDelete(id);
        } else if (b.dataset.action === 'rename') this.#rename(b.closest('.conversation'), summary);
    }

    #rename(li, summary) {
        const input = element('input', 'rename-input');
        input.value = summary.title;
        input.setAttribute('aria-label', 'Conversation title');
        const open = li.querySelector('.conversation-open');
        open.hidden = true;
        li.prepend(input);
        input.select();
        let finished = false;
        const finish = (commit) => {
            if (finished) return;
            finished = true;
            const title = input.value.trim();
            input.remove();
            open.hidden = false;
            if (commit && title && title !== summary.title) this.handlers.onRename(summary.id, title);
            open.focus();
        };
        input.addEventListener('keydown', (event) => {
            if (event.key === 'Enter') finish(true);
            else if (event.key === 'Escape') {
                event.stopPropagation();
                finish(false);
            }
        });
        input.addEventListener('blur', () => finish(true));
    }

    async #runSearch() {
        const query = this.search.value.trim();
        this.matches = query ? await store.search(query) : null;
        this.render(this.summaries, this.currentId);
    }

    async #closeOnPhone(pending) {
        await pending;
        if (PHONE.matches) this.setOpen(false);
    }
}
