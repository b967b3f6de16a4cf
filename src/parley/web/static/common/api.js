/**
 * The Parley API as the page uses it: every request same-origin (relative URLs, so the page also works behind
 * a path prefix), with the key the user entered as a Bearer token, and errors as `ApiError` carrying the
 * server's `{"error": {...}}` envelope. `streamChat` yields the parsed SSE chunks of a streamed completion.
 */

const KEY_STORAGE = 'parley.apiKey';

/** An error answer of the API (`status` 0 when the server could not be reached). */
export class ApiError extends Error {
    constructor(status, error = {}) {
        super(error.message || (status ? `The server answered ${status}.` : 'The server could not be reached.'));
        this.name = 'ApiError';
        this.status = status;
        this.type = error.type ?? null;
        this.code = error.code ?? null;
        this.param = error.param ?? null;
    }

    /** What the page keeps of it (in the conversation, for an answer that failed). */
    toJSON() {
        return { message: this.message, status: this.status, type: this.type, code: this.code };
    }
}

export function apiKey() {
    return localStorage.getItem(KEY_STORAGE) || '';
}

export function setApiKey(key) {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
    const out = { Accept: 'application/json', ...extra };
    const key = apiKey();
    if (key) out.Authorization = `Bearer ${key}`;
    return out;
}

async function errorOf(response) {
    let envelope = null;
    try {
        envelope = await response.json();
    } catch {
        // not JSON (a proxy's page, say): the status says enough
    }
    return new ApiError(response.status, envelope?.error ?? {});
}

async function send(path, { method = 'GET', body, extraHeaders, signal } = {}) {
    const init = { method, headers: headers(extraHeaders), signal };
    if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers['Content-Type'] = 'application/json';
    }
    let response;
    try {
        response = await fetch(path, init);
    } catch (err) {
        if (err.name === 'AbortError') throw err;
        throw new ApiError(0);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
}

/** GET `path` (relative to the page) as JSON; an error answer throws `ApiError`. */
export async function getJSON(path) {
    const response = await send(path);
    return response.json();
}

/** The served models and adapters: `[{id, context_window, root, parent}]`. */
export async function listModels() {
    return (await getJSON('v1/models')).data;
}

/**
 * The profiles the key may choose (`GET /v1/profiles`, admin scope): `[{name, description?}]`; empty when the
 * server has no such route or the key may not list them, so the picker quietly offers only the default.
 */
export async function listProfiles() {
    try {
        const response = await send('v1/profiles');
        return (await response.json()).data ?? [];
    } catch (err) {
        if (err instanceof ApiError && [401, 403, 404, 405].includes(err.status)) return [];
        throw err;
    }
}

/** How many tokens `messages` make as `model`'s prompt (`POST /tokenize`: its template, the same pipeline). */
export async function countTokens(model, messages) {
    const response = await send('tokenize', { method: 'POST', body: { model, messages } });
    return (await response.json()).count;
}

/** Rate a completion: `{completion_id, rating, correction?}`; the stored feedback. */
export async function sendFeedback(feedback) {
    const response = await send('v1/feedback', { method: 'POST', body: feedback });
    return response.json();
}

/**
 * Stream a chat completion: yields each `data:` chunk as an object until `[DONE]`. An error before the stream
 * starts, or an `{"error": ...}` event in it, is thrown as `ApiError`; aborting `signal` closes the connection
 * (the server then cancels the generation) and throws an `AbortError`.
 */
export async function* streamChat(body, { profile, signal } = {}) {
    const extraHeaders = { Accept: 'text/event-stream', 'X-Parley-Trace': '1' };
    if (profile) extraHeaders['X-Parley-Profile'] = profile;
    const response = await send('v1/chat/completions', {
        method: 'POST',
        body: { ...body, stream: true, stream_options: { include_usage: true } },
        extraHeaders,
        signal,
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
        for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            buffer += value;
            let end;
            // Events end with a blank line; a `data:` field may span several lines.
            while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
                const event = buffer.slice(0, end);
                buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
                const data = dataOf(event);
                if (data === null) continue;
                if (data === '[DONE]') return;
                const chunk = JSON.parse(data);
                if (chunk.error) throw new ApiError(response.status, chunk.error);
                yield chunk;
            }
        }
    } finally {
        reader.cancel().catch(() => {});
    }
}

function dataOf(event) {
    const lines = event.split(/\r?\n/).filter((line) => line.startsWith('data:'));
    if (!lines.length) return null;
    return lines.map((line) => line.slice(5).replace(/^ /, '')).join('\n');
}
