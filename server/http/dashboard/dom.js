// Small DOM helpers. Text goes in as text nodes, never as HTML, so nothing
// a job carries (args, log lines, error messages) can become markup.

// h("button", {class: "danger", onclick: fn, disabled: true}, "Cancel")
// Props: `class`, `text`, `on<event>` handlers, booleans (set when true),
// everything else as an attribute. Children: nodes, strings, arrays, null.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// Replaces the element's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Rows of a table kept by key across refreshes, so that focus, open
// <details> and typed input survive a live update. `create(item)` returns
// {el, update(item)}; sync() adds, updates, reorders and removes rows.
export class KeyedRows {
  constructor(tbody, keyOf, create) {
    this.tbody = tbody;
    this.keyOf = keyOf;
    this.create = create;
    this.rows = new Map();
  }

  sync(items) {
    const seen = new Set();
    let before = this.tbody.firstChild;
    for (const item of items) {
      const key = this.keyOf(item);
      seen.add(key);
      let row = this.rows.get(key);
      if (!row) {
        row = this.create(item);
        this.rows.set(key, row);
      }
      row.update(item);
      if (row.el !== before) this.tbody.insertBefore(row.el, before);
      else before = before.nextSibling;
    }
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.el.remove();
        this.rows.delete(key);
      }
    }
  }

  get(key) {
    return this.rows.get(key);
  }

  keys() {
    return [...this.rows.keys()];
  }
}

// A cell with the label that the phone layout shows before its value.
export function cell(label, ...children) {
  return h("td", {"data-label": label}, ...children);
}

// Runs `fn` now and then every `ms` after it settles, skipping turns while
// the tab is hidden; a slow `fn` (a busy server) is run less often: at
// least 4 times its own duration apart. Returns {stop(), now()}: now()
// runs it at once.
export function poll(ms, fn) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;  // now() was called during a run
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    let took = 0;
    if (!document.hidden) {
      running = true;
      const start = performance.now();
      try {
        await fn();
      } catch (err) {
        // fn shows its own errors; a poll goes on.
      } finally {
        running = false;
        took = performance.now() - start;
      }
    }
    if (stopped) return;
    if (again) {
      again = false;
      run();
    } else {
      timer = setTimeout(run, Math.max(ms, 4 * took));
    }
  };
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    now: run,
  };
}

// A status line for the outcome of an action: say(el, "Paused", "ok").
export function say(el, text, kind = "ok") {
  el.textContent = text;
  el.dataset.kind = kind;
}
