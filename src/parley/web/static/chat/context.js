/**
 * Which messages of a branch to send so the prompt fits the model's context window with room for the answer:
 * the system prompt and as many of the latest messages as fit. Short conversations are sent whole without
 * asking the server; near the limit, `POST /tokenize` counts the candidate prompt exactly (the model's own
 * template and tokenizer) and older messages are dropped until it fits.
 */

import { countTokens } from '../common/api.js';

// A generous guess of tokens per character (prose is nearer 1/4, code and math nearer 1/2): below this share
// of the room, a prompt fits whatever it holds, and the server is not asked.
const CHARS_PER_TOKEN = 3;
const TOKENS_PER_MESSAGE = 8;
const SURE_SHARE = 0.6;
const MAX_COUNTS = 4;

export function estimateTokens(messages) {
    return messages.reduce((sum, m) => sum + Math.ceil(m.content.length / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE, 0);
}

/** The latest messages of `history` whose estimate is within `budget` (at least the last one). */
function latest(history, budget) {
    let first = history.length - 1;
    let used = estimateTokens(history.slice(first));
    while (first > 0) {
        const more = estimateTokens([history[first - 1]]);
        if (used + more > budget) break;
        used += more;
        first -= 1;
    }
    // Start with a question, not with an answer to something not sent.
    if (history[first].role === 'assistant' && first < history.length - 1) first += 1;
    return history.slice(first);
}

/**
 * `{messages, dropped}` to send: `system` (0 or 1 message) then the latest of `history`; `window` the model's
 * context window (null: unknown, everything is sent), `answer` the tokens kept for the answer.
 */
export async function fitToContext({ model, system, history, window, answer }) {
    if (!window) return { messages: [...system, ...history], dropped: 0 };
    const room = window - answer;
    const sure = room * SURE_SHARE;
    if (estimateTokens([...system, ...history]) <= sure) return { messages: [...system, ...history], dropped: 0 };
    const count = (kept) => countTokens(model, [...system, ...kept]).catch(() => null);
    // Without a count (an engine with its own template, a key without the scope) the estimate decides.
    let kept = latest(history, sure - estimateTokens(system));
    let tokens = await count(kept);
    for (let i = 0; tokens !== null && tokens > room && kept.length > 1 && i < MAX_COUNTS; i++) {
        kept = latest(kept, estimateTokens(kept) * (room / tokens) * 0.95);
        tokens = await count(kept);
    }
    // Room to spare: older messages back in, as many as the measured tokens per estimate say fit.
    if (tokens !== null && tokens < room * 0.8 && kept.length < history.length) {
        const perEstimate = tokens / estimateTokens([...system, ...kept]);
        const wider = latest(history, (room * 0.95) / perEstimate - estimateTokens(system));
        const widerTokens = wider.length > kept.length ? await count(wider) : null;
        if (widerTokens !== null && widerTokens <= room) kept = wider;
    }
    return { messages: [...system, ...kept], dropped: history.length - kept.length };
}
