/**
 * The conversation on screen and what the user does to it: send, stop, regenerate (a new sibling answer),
 * edit and resend (a new sibling user message), switch branches; each answer streamed into the tree and the
 * conversation saved when it ends.
 */

import { streamChat } from '../common/api.js';
import { fitToContext } from './context.js';
import * as store from './store.js';
import { Conversation } from './tree.js';

function titleOf(text) {
    const line = text.trim().split('\n')[0];
    return line.length > 60 ? `${line.slice(0, 57)}…` : line || 'New chat';
}

export class Chat {
    /** `announce(text)`: a screen-reader status line; `onStreaming(busy)`: an answer started or ended. */
    constructor({ view, settings, sidebar, announce, onStreaming }) {
        Object.assign(this, { view, settings, sidebar, announce, onStreaming });
        this.conversation = null;
        this.controller = null;
        this.finished = Promise.resolve(); // settles once the answer being written is saved
    }

    get streaming() {
        return this.controller !== null;
    }

    async open(id) {
        this.stop();
        const record = await store.load(id);
        if (!record) return;
        this.conversation = Conversation.fromJSON(record);
        this.view.show(this.conversation);
        this.sidebar.render(this.sidebar.summaries, id);
        document.title = `${this.conversation.title} · Parley`;
    }

    newChat() {
        this.stop();
        this.conversation = null;
        this.view.show(null);
        this.sidebar.render(this.sidebar.summaries, null);
        document.title = 'Parley';
    }

    async send(text) {
        if (this.streaming) return;
        if (!this.conversation) {
            this.conversation = Conversation.create();
            this.conversation.title = titleOf(text);
            document.title = `${this.conversation.title} · Parley`;
            this.view.show(this.conversation);
        }
        const conversation = this.conversation;
        const index = conversation.path().length;
        const user = conversation.add(conversation.current, { role: 'user', content: text });
        await this.#answer(user, index);
    }

    /** A new answer to the same question, as a sibling of `id`. */
    async regenerate(id) {
        if (this.streaming) return;
        const conversation = this.conversation;
        const index = conversation.path().findIndex((m) => m.id === id);
        await this.#answer(conversation.get(conversation.get(id).parent), index);
    }

    /** The user message `id` rewritten: a sibling user message, then its answer. */
    async edit(id, text) {
        if (this.streaming) return;
        const conversation = this.conversation;
        const index = conversation.path().findIndex((m) => m.id === id);
        const user = conversation.add(conversation.get(id).parent, { role: 'user', content: text });
        await this.#answer(user, index);
    }

    /** Show the sibling `step` places from `id` (-1: previous version); its id, or null. */
    select(id, step) {
        if (this.streaming) return null;
        const conversation = this.conversation;
        const siblings = conversation.siblings(id);
        const target = siblings[siblings.indexOf(id) + step];
        if (!target) return null;
        const index = conversation.path().findIndex((m) => m.id === id);
        conversation.select(target);
        this.view.showFrom(index);
        this.save();
        return target;
    }

    stop() {
        this.controller?.abort();
    }

    async save(conversation = this.conversation) {
        if (!conversation) return;
        await store.save(conversation.toJSON());
        await this.sidebar.refresh(this.conversation?.id ?? null);
    }

    async rename(id, title) {
        if (this.conversation?.id === id) {
            this.conversation.title = title;
            document.title = `${title} · Parley`;
        }
        await store.rename(id, title);
        await this.sidebar.refresh();
    }

    async remove(id) {
        if (this.conversation?.id === id) {
            this.newChat();
            await this.finished; // else the stopped answer's last save would bring it back
        }
        await store.remove(id);
        await this.sidebar.refresh();
    }

    async #answer(user, index) {
        const conversation = this.conversation;
        const message = conversation.add(user.id, {
            role: 'assistant', content: '', status: 'streaming', model: this.settings.model,
        });
        this.view.showFrom(index);
        this.view.scrollToEnd();
        const controller = new AbortController();
        this.controller = controller;
        let settle;
        this.finished = new Promise((resolve) => { settle = resolve; });
        this.onStreaming(true);
        this.announce('Generating an answer…');
        await this.save(conversation);
        let failed = false;
        try {
            await this.#stream(message, user, controller.signal);
            message.status = 'done';
            this.announce('Answer complete.');
        } catch (err) {
            if (controller.signal.aborted) {
                message.status = 'stopped';
                this.announce('Stopped.');
            } else {
                failed = true;
                message.status = 'error';
                message.error = typeof err.toJSON === 'function' ? err.toJSON() : { message: String(err.message ?? err) };
            }
        } finally {
            this.controller = null;
            conversation.touch();
            this.view.finish(message, { announceError: failed });
            this.onStreaming(false);
            await this.save(conversation).finally(settle);
        }
    }

    async #stream(message, user, signal) {
        const { model, profile } = this.settings;
        const { messages, dropped } = await this.#requestMessages(user);
        message.context_note = dropped
            ? `Sent the last ${messages.length} messages: the ${dropped} before them do not fit the model's context window.`
            : undefined;
        const body = { model, messages, ...this.settings.sampling() };
        for await (const chunk of streamChat(body, { profile, signal })) this.#apply(message, chunk);
    }

    #apply(message, chunk) {
        if (chunk.id) message.completion_id = chunk.id;
        if (chunk.model) message.model = chunk.model;
        for (const choice of chunk.choices ?? []) {
            const delta = choice.delta ?? {};
            if (delta.content) message.content += delta.content;
            if (delta.reasoning_content) message.reasoning = (message.reasoning ?? '') + delta.reasoning_content;
            if (choice.finish_reason) message.finish_reason = choice.finish_reason;
        }
        if (chunk.usage) message.usage = chunk.usage;
        if (chunk.parley_trace) message.trace = chunk.parley_trace;
        this.view.update(message);
    }

    /**
     * The messages to send for an answer to `user`: the system prompt, then the branch up to `user` (failed
     * answers left out), as many of the latest as fit the model's context window with room for the answer.
     */
    #requestMessages(user) {
        const path = this.conversation.path();
        const history = path.slice(0, path.findIndex((m) => m.id === user.id) + 1)
            .filter((m) => m.content && m.status !== 'error')
            .map((m) => ({ role: m.role, content: m.content }));
        const system = this.settings.systemPrompt ? [{ role: 'system', content: this.settings.systemPrompt }] : [];
        const window = this.settings.contextWindow;
        const answer = this.settings.sampling().max_tokens ?? Math.min(512, Math.floor((window ?? 0) / 4));
        return fitToContext({ model: this.settings.model, system, history, window, answer });
    }
}
