/**
 * Conversations kept in the browser (IndexedDB `parley-chat`): `conversations` holds each whole conversation
 * (its export form, see tree.js) and `summaries` the few fields the list shows, so listing never reads the
 * messages.
 */

const DB_NAME = 'parley-chat';
const VERSION = 1;
let opening = null;

function done(request) {
    return new Promise((resolve, reject) => {
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
}

function committed(tx) {
    return new Promise((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
    });
}

function db() {
    opening ??= new Promise((resolve, reject) => {
        const request = indexedDB.open(DB_NAME, VERSION);
        request.onupgradeneeded = () => {
            request.result.createObjectStore('conversations', { keyPath: 'id' });
            request.result.createObjectStore('summaries', { keyPath: 'id' });
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    return opening;
}

function summaryOf(record) {
    return { id: record.id, title: record.title, created: record.created, updated: record.updated };
}

/** The conversations, most recently updated first: `[{id, title, created, updated}]`. */
export async function listSummaries() {
    const tx = (await db()).transaction('summaries');
    const all = await done(tx.objectStore('summaries').getAll());
    return all.sort((a, b) => (a.updated < b.updated ? 1 : a.updated > b.updated ? -1 : 0));
}

/** One conversation's record (export form), or undefined. */
export async function load(id) {
    const tx = (await db()).transaction('conversations');
    return done(tx.objectStore('conversations').get(id));
}

export async function has(id) {
    const tx = (await db()).transaction('summaries');
    return (await done(tx.objectStore('summaries').getKey(id))) !== undefined;
}

/** Write a conversation's record (export form) and its summary in one transaction. */
export async function save(record) {
    const tx = (await db()).transaction(['conversations', 'summaries'], 'readwrite');
    tx.objectStore('conversations').put(record);
    tx.objectStore('summaries').put(summaryOf(record));
    await committed(tx);
}

export async function rename(id, title) {
    const tx = (await db()).transaction(['conversations', 'summaries'], 'readwrite');
    const record = await done(tx.objectStore('conversations').get(id));
    if (!record) return;
    record.title = title;
    tx.objectStore('conversations').put(record);
    tx.objectStore('summaries').put(summaryOf(record));
    await committed(tx);
}

export async function remove(id) {
    const tx = (await db()).transaction(['conversations', 'summaries'], 'readwrite');
    tx.objectStore('conversations').delete(id);
    tx.objectStore('summaries').delete(id);
    await committed(tx);
}

/** The ids of the conversations whose title or any message contains `query` (case-insensitive). */
export async function search(query) {
    const needle = query.toLowerCase();
    const tx = (await db()).transaction('conversations');
    const ids = new Set();
    await new Promise((resolve, reject) => {
        const request = tx.objectStore('conversations').openCursor();
        request.onerror = () => reject(request.error);
        request.onsuccess = () => {
            const cursor = request.result;
            if (!cursor) return resolve();
            const record = cursor.value;
            if (record.title.toLowerCase().includes(needle)
                || record.messages.some((m) => m.content.toLowerCase().includes(needle))) {
                ids.add(record.id);
            }
            cursor.continue();
        };
    });
    return ids;
}
