/**
 * A conversation as a tree of messages: editing a user message or regenerating an answer adds a sibling (a
 * branch) instead of replacing it, and `current` names the leaf of the branch on screen.
 *
 * This is also the export format (what "Export" downloads and "Import" reads), one JSON object:
 *
 *     {
 *       "format": "parley-conversation", "version": 1,
 *       "id": "c-…", "title": "…", "created": "2026-01-01T12:00:00.000Z", "updated": "…",
 *       "current": "m-…",                       // the leaf of the branch shown; default: the newest leaf
 *       "messages": [                           // a parent before its children; siblings in branch order
 *         {"id": "m-1", "parent": null, "role": "user", "content": "…", "created": "…"},
 *         {"id": "m-2", "parent": "m-1", "role": "assistant", "content": "…", "created": "…",
 *          "model": "…", "completion_id": "chatcmpl-…", "status": "done" | "stopped" | "error",
 *          "finish_reason": "stop", "reasoning": "…", "usage": {…}, "trace": […],
 *          "error": {"message", "status", "type", "code"}, "feedback": {"rating", "correction"}}
 *       ]
 *     }
 *
 * Only `messages[].id`, `parent`, `role` (user, assistant or system) and `content` are required; an import
 * file may also hold a list of such objects, or `{"conversations": [...]}`.
 */

export const FORMAT = 'parley-conversation';
const ROLES = new Set(['user', 'assistant', 'system']);
const ROOT = '';

/** A random id; `crypto.randomUUID` needs a secure context, which a LAN address over http is not. */
export function newId(prefix) {
    const bytes = crypto.getRandomValues(new Uint8Array(10));
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function now() {
    return new Date().toISOString();
}

export class Conversation {
    constructor({ id, title, created, updated, current, messages }) {
        this.id = id;
        this.title = title;
        this.created = created;
        this.updated = updated;
        this.byId = new Map();
        this.kids = new Map();
        // parent id → the child shown under it, so coming back to a branch shows where the user left it
        this.active = new Map();
        for (const message of messages) this.#index(message);
        const leaf = this.byId.has(current) ? current : this.#newestLeaf();
        this.current = null;
        if (leaf) this.select(leaf);
    }

    static create() {
        const at = now();
        return new Conversation({ id: newId('c-'), title: 'New chat', created: at, updated: at, messages: [] });
    }

    /** A conversation from its JSON form (export format), checked; throws an Error saying what is wrong. */
    static fromJSON(data) {
        if (!data || typeof data !== 'object' || !Array.isArray(data.messages)) {
            throw new Error('not a conversation: it has no "messages" list');
        }
        if (data.format !== undefined && data.format !== FORMAT) throw new Error(`unknown format ${data.format}`);
        const seen = new Set();
        const messages = data.messages.map((m, i) => {
            const where = `messages[${i}]`;
            if (!m || typeof m.id !== 'string' || !m.id) throw new Error(`${where} has no id`);
            if (seen.has(m.id)) throw new Error(`${where}: id ${m.id} appears twice`);
            if (!ROLES.has(m.role)) throw new Error(`${where}: role must be user, assistant or system`);
            if (typeof m.content !== 'string') throw new Error(`${where}: content must be a string`);
            const parent = m.parent ?? null;
            if (parent !== null && !seen.has(parent)) throw new Error(`${where}: parent ${parent} is not an earlier message`);
            seen.add(m.id);
            // An answer saved while streaming (the tab closed) ended there.
            const status = m.status === 'streaming' ? 'stopped' : m.status;
            return { ...m, parent, status };
        });
        const at = now();
        return new Conversation({
            id: typeof data.id === 'string' && data.id ? data.id : newId('c-'),
            title: typeof data.title === 'string' && data.title.trim() ? data.title.trim() : 'Imported chat',
            created: data.created || at,
            updated: data.updated || at,
            current: data.current,
            messages,
        });
    }

    toJSON() {
        return {
            format: FORMAT,
            version: 1,
            id: this.id,
            title: this.title,
            created: this.created,
            updated: this.updated,
            current: this.current,
            messages: [...this.byId.values()],
        };
    }

    get size() {
        return this.byId.size;
    }

    get(id) {
        return this.byId.get(id);
    }

    children(parentId) {
        return this.kids.get(parentId ?? ROOT) ?? [];
    }

    /** The message's branch group: its parent's children, itself included. */
    siblings(id) {
        return this.children(this.get(id).parent);
    }

    /** The messages of the branch on screen, first to last. */
    path() {
        const out = [];
        for (let id = this.current; id; id = this.byId.get(id).parent) out.push(this.byId.get(id));
        return out.reverse();
    }

    /** Add a message under `parentId` (null: a first message) and show its branch. */
    add(parentId, fields) {
        const message = { id: newId('m-'), parent: parentId ?? null, created: now(), ...fields };
        this.#index(message);
        this.select(message.id);
        this.touch();
        return message;
    }

    /** Show the branch through `id`, down to the leaf last shown under it. */
    select(id) {
        // Its ancestors lead to it from now on.
        for (let m = this.get(id); m; m = this.byId.get(m.parent)) this.active.set(m.parent ?? ROOT, m.id);
        let leaf = id;
        for (let kids = this.children(leaf); kids.length; kids = this.children(leaf)) {
            leaf = this.active.get(leaf) ?? kids[kids.length - 1];
        }
        this.current = leaf;
    }

    touch() {
        this.updated = now();
    }

    #index(message) {
        this.byId.set(message.id, message);
        const key = message.parent ?? ROOT;
        if (!this.kids.has(key)) this.kids.set(key, []);
        this.kids.get(key).push(message.id);
    }

    #newestLeaf() {
        let newest = null;
        for (const message of this.byId.values()) {
            if (!this.kids.has(message.id)) newest = message.id;
        }
        return newest;
    }
}
