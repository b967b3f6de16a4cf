/**
 * The chat page's wiring: builds the parts (settings, sidebar, message list, chat, feedback), routes the
 * message buttons and the composer's keys, and starts by loading the models, profiles and conversations.
 * Keys: Enter sends, Shift+Enter is a new line, Escape stops an answer.
 */

import { ApiError } from '../common/api.js';
import { Chat } from './chat.js';
import { Feedback } from './feedback.js';
import { MessageList } from './messages.js';
import { Settings } from './settings.js';
import { Sidebar } from './sidebar.js';
import * as store from './store.js';
import { Conversation } from './tree.js';
import { traceView } from '../common/trace.js';

const $ = (id) => document.getElementById(id);
const prompt = $('prompt');
const sendButton = $('send');
const stopButton = $('stop');
const announcer = $('announcer');
const notice = $('notice');

function announce(text) {
    announcer.textContent = text;
}

/** A problem outside any message (loading the models, an import): a line above the composer. */
function report(problem) {
    const text = typeof problem === 'string' ? problem : problem.message;
    notice.replaceChildren(text);
    if (problem instanceof ApiError && problem.status === 401) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = 'Enter an API key';
        b.addEventListener('click', () => settings.open({ focusKey: true }));
        notice.append(' ', b);
    }
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'act act-close';
    close.setAttribute('aria-label', 'Dismiss');
    close.addEventListener('click', () => {
        notice.hidden = true;
        prompt.focus();
    });
    notice.append(close);
    notice.hidden = false;
}

async function copyText(text, button) {
    try {
        if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
        else {
            // No Clipboard API over plain http on a LAN address: the old way.
            const area = Object.assign(document.createElement('textarea'), { value: text, readOnly: true });
            area.className = 'offscreen';
            document.body.append(area);
            area.select();
            document.execCommand('copy');
            area.remove();
        }
        announce('Copied.');
        if (button.classList.contains('code-copy')) {
            button.textContent = 'Copied';
            setTimeout(() => { button.textContent = 'Copy code'; }, 1500);
        }
    } catch {
        announce('Could not copy.');
    }
}

function toggleTrace(message, button) {
    const el = view.element(message.id);
    const existing = el.querySelector('.trace-panel');
    if (existing) existing.remove();
    else el.querySelector('.msg-panels').append(traceView(message.trace, `trace-${message.id}`));
    button.setAttribute('aria-expanded', String(!existing));
}

async function onAction(action, id, button) {
    const message = id ? chat.conversation?.get(id) : null;
    const busy = () => {
        if (chat.streaming) announce('Stop the answer being written first.');
        return chat.streaming;
    };
    switch (action) {
        case 'copy': return copyText(message.content, button);
        case 'copy-code': return copyText(button.closest('.code-block').querySelector('code').textContent.replace(/\n$/, ''), button);
        case 'edit': return busy() || view.openEditor(id, (text) => chat.edit(id, text));
        case 'regenerate': return busy() || chat.regenerate(id);
        case 'branch-prev':
        case 'branch-next': {
            if (busy()) return undefined;
            const shown = chat.select(id, action === 'branch-prev' ? -1 : 1);
            return shown && view.focusAction(shown, action, action === 'branch-prev' ? 'branch-next' : 'branch-prev');
        }
        case 'rate-up':
        case 'rate-down': return feedback.rate(message, action.slice(5));
        case 'suggest': return feedback.toggleForm(message, button);
        case 'trace': return toggleTrace(message, button);
        case 'open-key': return settings.open({ focusKey: true });
        default: return undefined;
    }
}

function onStreaming(busy) {
    const hadFocus = document.activeElement === (busy ? sendButton : stopButton);
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    document.body.classList.toggle('streaming', busy);
    if (hadFocus) (busy ? stopButton : prompt).focus();
}

async function importFiles(files) {
    let first = null;
    for (const file of files) {
        try {
            const data = JSON.parse(await file.text());
            const items = Array.isArray(data) ? data : Array.isArray(data.conversations) ? data.conversations : [data];
            for (const item of items) {
                const conversation = Conversation.fromJSON(item);
                if (await store.has(conversation.id)) conversation.id = Conversation.create().id;
                await store.save(conversation.toJSON());
                first ??= conversation.id;
            }
        } catch (err) {
            report(`Could not import ${file.name}: ${err.message}`);
        }
    }
    await sidebar.refresh();
    if (first) {
        await chat.open(first);
        announce('Conversation imported.');
    }
}

function exportConversation() {
    const conversation = chat.conversation;
    if (!conversation) return report('Open a conversation to export it.');
    const blob = new Blob([JSON.stringify(conversation.toJSON(), null, 2)], { type: 'application/json' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `${conversation.title.replace(/[^\w-]+/g, '_').slice(0, 40) || 'conversation'}.json`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    return undefined;
}

const settings = new Settings({
    onKeyChange: () => Promise.all([settings.loadModels(), settings.loadProfiles()]),
    report,
});
const view = new MessageList($('messages'), $('message-list'), $('empty-state'), { onAction });
const sidebar = new Sidebar({
    onOpen: (id) => chat.open(id),
    onNew: () => {
        chat.newChat();
        prompt.focus();
    },
    onDelete: (id) => chat.remove(id),
    onRename: (id, title) => chat.rename(id, title),
    onExport: exportConversation,
    onImport: importFiles,
});
const chat = new Chat({ view, settings, sidebar, announce, onStreaming });
const feedback = new Feedback(view, () => chat.save());

$('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || chat.streaming) return;
    prompt.value = '';
    fitPrompt();
    chat.send(text);
});
prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $('composer').requestSubmit();
    }
});
function fitPrompt() {
    prompt.style.height = 'auto';
    prompt.style.height = `${prompt.scrollHeight}px`;
}
prompt.addEventListener('input', fitPrompt);
stopButton.addEventListener('click', () => chat.stop());
document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && chat.streaming && !event.target.closest?.('dialog')) {
        event.preventDefault();
        chat.stop();
    }
});
$('settings-open').addEventListener('click', () => settings.open());

// Whatever slipped through the handlers reaches the user as a line, not only the console.
window.addEventListener('unhandledrejection', (event) => report(event.reason?.message ?? String(event.reason)));

await Promise.all([settings.loadModels(), settings.loadProfiles(), sidebar.refresh()]);
view.show(null);
document.body.dataset.ready = 'true';
