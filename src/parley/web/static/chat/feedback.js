/**
 * Feedback on an answer, sent to `POST /v1/feedback` with the answer's completion id: thumbs up or down, and
 * "suggest a better answer" (a correction, sent with the answer's rating, thumbs down unless the user gave
 * one). The result is shown next to the buttons and kept on the message (`feedback`).
 */

import { sendFeedback } from '../common/api.js';
import { element, textareaForm } from '../common/dom.js';

export class Feedback {
    /** `view`: the MessageList; `onSaved(message)`: the message's feedback changed (to store it). */
    constructor(view, onSaved) {
        this.view = view;
        this.onSaved = onSaved;
    }

    async rate(message, rating, correction) {
        const body = { completion_id: message.completion_id, rating };
        if (correction) body.correction = correction;
        this.#status(message, 'Sending…', 'pending');
        try {
            const stored = await sendFeedback(body);
            message.feedback = { rating: stored.rating ?? rating, correction: stored.correction ?? correction ?? null };
            this.view.refreshState(message);
            this.#status(message, correction ? 'Thanks — your suggestion was saved.' : 'Thanks — your rating was saved.', 'ok');
            this.onSaved(message);
            return true;
        } catch (err) {
            this.#status(message, `Feedback not saved: ${err.message}`, 'error');
            return false;
        }
    }

    /** Open or close the "suggest a better answer" form under the message. */
    toggleForm(message, toggle) {
        const el = this.view.element(message.id);
        const existing = el.querySelector('.suggest-form');
        if (existing) {
            existing.remove();
            toggle.setAttribute('aria-expanded', 'false');
            return;
        }
        const { form, area, submit } = textareaForm({
            className: 'suggest-form', buttonsClass: 'form-buttons', submitText: 'Send suggestion',
            onCancel: () => close(),
        });
        form.id = `suggest-${message.id}`;
        const label = element('label', '', 'Suggest a better answer');
        label.htmlFor = `suggest-text-${message.id}`;
        area.id = label.htmlFor;
        area.rows = 4;
        area.value = message.feedback?.correction ?? '';
        form.prepend(label);
        const close = () => {
            form.remove();
            toggle.setAttribute('aria-expanded', 'false');
            toggle.focus();
        };
        form.addEventListener('submit', async (event) => {
            event.preventDefault();
            const text = area.value.trim();
            if (!text) {
                area.focus();
                return;
            }
            submit.disabled = true;
            const saved = await this.rate(message, message.feedback?.rating ?? 'down', text);
            submit.disabled = false;
            if (saved) close();
        });
        el.querySelector('.msg-panels').prepend(form);
        toggle.setAttribute('aria-expanded', 'true');
        area.focus();
    }

    #status(message, text, kind) {
        const el = this.view.element(message.id);
        if (!el) return;
        let status = el.querySelector('.fb-status');
        if (!status) {
            status = element('span', 'fb-status');
            status.setAttribute('role', 'status');
            el.querySelector('.msg-actions')?.append(status);
        }
        status.dataset.kind = kind;
        status.textContent = text;
    }
}
