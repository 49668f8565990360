// The one way a form on any page is sent: submit -> check the fields -> call the API
// -> say how it went in the form's own status line. Shared by every page, so it
// lives in core/ next to the API client it wraps.

/** A form-status line: kind is "", "ok" or "error"; an empty message hides it. */
export function say(el, message, kind = "") {
  el.className = kind ? `form-status ${kind}` : "form-status";
  el.textContent = message;
}

/** A problem found before anything is sent; wireForm shows its message. */
export function problem(message) {
  const err = new Error(message);
  err.name = "FormProblem";
  return err;
}

/** A number field: undefined when empty, else a number (or a problem). */
function numberField(form, name, label, { integer = true } = {}) {
  const raw = form.elements[name].value.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw problem(`${label} must be ${integer ? "a whole number" : "a number"}.`);
  }
  return value;
}

/** Copy the filled-in number fields, [[name, label, {integer}?], ...], into an object. */
export function putNumbers(target, form, fields) {
  for (const [name, label, options] of fields) {
    const value = numberField(form, name, label, options);
    if (value !== undefined) target[name] = value;
  }
  return target;
}

/** Copy the optional fields that are filled in (text trimmed) into a FormData or object. */
export function putOptional(target, form, names) {
  for (const name of names) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    if (target instanceof FormData) target.append(name, value);
    else target[name] = value;
  }
  return target;
}

/**
 * On submit: disable the button, say "Sending…", await submit(form, progress) and
 * show the message it returns (undefined leaves the line as it is, e.g. while the
 * page reloads), or the error it throws; reset the form after a success if asked.
 * progress(message) updates the status line while the request runs.
 */
export function wireForm(form, submit, { reset = false } = {}) {
  if (!form) return;
  const status = form.querySelector(".form-status");
  const progress = (message) => say(status, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    progress("Sending…");
    try {
      const message = await submit(form, progress);
      if (message !== undefined) {
        say(status, message, "ok");
        if (reset) form.reset();
      }
    } catch (err) {
      say(status, err.message, "error");
    } finally {
      button.disabled = false;
    }
  });
}
