/**
 * What the user chose for the next requests: the model or adapter and the profile (pickers in the header),
 * and in the settings dialog the API key (localStorage, sent as a Bearer token), temperature, max tokens and
 * a system prompt (localStorage `parley.settings`).
 */

import { apiKey, listModels, listProfiles, setApiKey } from '../common/api.js';

const STORAGE = { settings: 'parley.settings', model: 'parley.model', profile: 'parley.profile' };

function stored(key, fallback) {
    try {
        return JSON.parse(localStorage.getItem(key)) ?? fallback;
    } catch {
        return fallback;
    }
}

function option(value, text) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
}

function numberOrNull(input) {
    const text = input.value.trim();
    if (!text) return null;
    const value = Number(text);
    return Number.isFinite(value) ? value : null;
}

export class Settings {
    /** `onChange()`: the key changed (the pickers were reloaded); `report(error)`: a load failed. */
    constructor({ onKeyChange = () => {}, report = () => {} } = {}) {
        this.onKeyChange = onKeyChange;
        this.report = report;
        this.models = [];
        this.values = { temperature: null, max_tokens: null, system_prompt: '', ...stored(STORAGE.settings, {}) };
        this.modelSelect = document.getElementById('model-select');
        this.profileSelect = document.getElementById('profile-select');
        this.dialog = document.getElementById('settings-dialog');
        this.form = document.getElementById('settings-form');
        this.fields = {
            key: document.getElementById('api-key'),
            temperature: document.getElementById('temperature'),
            max_tokens: document.getElementById('max-tokens'),
            system_prompt: document.getElementById('system-prompt'),
        };
        this.modelSelect.addEventListener('change', () => localStorage.setItem(STORAGE.model, this.modelSelect.value));
        this.profileSelect.addEventListener('change', () => localStorage.setItem(STORAGE.profile, this.profileSelect.value));
        this.form.addEventListener('submit', (event) => {
            event.preventDefault();
            this.#save();
        });
        document.getElementById('settings-cancel').addEventListener('click', () => this.dialog.close());
    }

    get model() {
        return this.modelSelect.value || null;
    }

    get contextWindow() {
        return this.models.find((m) => m.id === this.model)?.context_window ?? null;
    }

    get profile() {
        return this.profileSelect.value;
    }

    get systemPrompt() {
        return this.values.system_prompt.trim();
    }

    /** The sampling fields of a request: only those the user set (else the server's defaults). */
    sampling() {
        const out = {};
        if (this.values.temperature !== null) out.temperature = this.values.temperature;
        if (this.values.max_tokens !== null) out.max_tokens = this.values.max_tokens;
        return out;
    }

    async loadModels() {
        const select = this.modelSelect;
        try {
            this.models = await listModels();
        } catch (err) {
            this.models = [];
            select.replaceChildren(option('', 'No models'));
            this.report(err);
            return;
        }
        // Each base model, then its adapters under it.
        const bases = this.models.filter((m) => !m.parent);
        const orphans = this.models.filter((m) => m.parent && !bases.some((b) => b.id === m.parent));
        const children = [];
        for (const base of [...bases, ...orphans]) {
            const adapters = this.models.filter((m) => m.parent === base.id);
            if (!adapters.length) {
                children.push(option(base.id, base.id));
                continue;
            }
            const group = document.createElement('optgroup');
            group.label = base.id;
            group.append(option(base.id, `${base.id} (base)`), ...adapters.map((a) => option(a.id, `${a.id} (adapter)`)));
            children.push(group);
        }
        select.replaceChildren(...children);
        const wanted = localStorage.getItem(STORAGE.model);
        if (wanted && this.models.some((m) => m.id === wanted)) select.value = wanted;
    }

    async loadProfiles() {
        let profiles = [];
        try {
            profiles = await listProfiles();
        } catch (err) {
            this.report(err);
        }
        const select = this.profileSelect;
        select.replaceChildren(option('', 'default'), ...profiles.map((p) => {
            const o = option(p.name, p.name);
            if (p.description) o.title = p.description;
            return o;
        }));
        const wanted = localStorage.getItem(STORAGE.profile);
        if (wanted && profiles.some((p) => p.name === wanted)) select.value = wanted;
    }

    /** Open the dialog; `focusKey` puts the cursor in the API key field (after a 401). */
    open({ focusKey = false } = {}) {
        this.fields.key.value = apiKey();
        this.fields.temperature.value = this.values.temperature ?? '';
        this.fields.max_tokens.value = this.values.max_tokens ?? '';
        this.fields.system_prompt.value = this.values.system_prompt;
        this.dialog.showModal();
        (focusKey ? this.fields.key : this.fields.temperature).focus();
    }

    #save() {
        if (!this.form.reportValidity()) return;
        this.values = {
            temperature: numberOrNull(this.fields.temperature),
            max_tokens: numberOrNull(this.fields.max_tokens),
            system_prompt: this.fields.system_prompt.value,
        };
        localStorage.setItem(STORAGE.settings, JSON.stringify(this.values));
        const key = this.fields.key.value.trim();
        const keyChanged = key !== apiKey();
        setApiKey(key);
        this.dialog.close();
        if (keyChanged) this.onKeyChange();
    }
}
