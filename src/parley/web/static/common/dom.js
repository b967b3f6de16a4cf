/** Building DOM nodes for the page's views. */

/** A new `tag` element with an optional class and text. */
export function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
}

/**
 * A form of one textarea and two buttons (submit, Cancel): `{form, area, submit}`. Cancel, and Escape in the
 * textarea, call `onCancel`; the caller adds the submit handler.
 */
export function textareaForm({ className, buttonsClass, submitText, onCancel }) {
    const form = element('form', className);
    const area = element('textarea');
    const buttons = element('div', buttonsClass);
    const submit = element('button', 'primary', submitText);
    submit.type = 'submit';
    const cancel = element('button', '', 'Cancel');
    cancel.type = 'button';
    buttons.append(submit, cancel);
    form.append(area, buttons);
    cancel.addEventListener('click', onCancel);
    area.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') {
            event.preventDefault();
            event.stopPropagation();
            onCancel();
        }
    });
    return { form, area, submit };
}
