// sora_nb widgets: what the job widget and the gallery share. Plain ESM, no build step: Python joins this file
// before job.js or gallery.js when the widget class is defined (anywidget loads `_esm` from a Blob URL, where a
// relative `import` cannot work), and fills in the tables marked below from Python's.

/** @typedef {{ get(k: string): any, on(e: string, f: Function): void, off(e: string, f: Function): void, send(c: any, cb?: any, b?: any[]): void }} Model */

/** What a person reads for each job status: sora_nb.progress.WORDS, the table the text progress line uses. */
const WORDS = /* WORDS */ {};

/** The job statuses after which a job changes no more: sora_nb.widgets._base.FINISHED. */
const FINISHED = /* FINISHED */ [];

/** The aria labels of both widgets. */
const LABELS = {
  job: "Video generation job",
  progress: "Progress",
  unknownProgress: "Working; the engine reports no real percentage",
  cancel: "Cancel this job",
  video: "Generated video",
  download: "Download the MP4",
  copyId: "Copy the video ID",
  remix: "Remix prompt",
  retry: "Retry: create a new job",
  compare: "Compare the selected videos side by side",
  cancelAll: "Cancel every unfinished job",
  pick: "Select for comparison",
  open: "Open the full player (with remix) below the gallery",
  star: "Star this take",
  note: "Note on this take",
};

/** Normalise a buffer (DataView, ArrayBuffer, typed array or base64 text) to a Uint8Array. */
function toBytes(buffer) {
  if (buffer instanceof DataView) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (typeof buffer === "string") return Uint8Array.from(atob(buffer), (c) => c.charCodeAt(0));
  return new Uint8Array(0);
}

function fmtSeconds(s) {
  if (!isFinite(s) || s < 0) return "";
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/**
 * The ETA label: the trend's ("ETA 12.0 s"), or one drawn from past jobs, said so ("about 1 min 20 s left (from
 * 3 past jobs)", `short`: "~1 min 20 s left (3 past jobs)"); once a job without a real percentage has run longer
 * than they took, what they took.
 * @param {{ eta: number|null, source: string, jobs: number, typical: number, unknown: boolean, short?: boolean }} s
 */
function etaText({ eta, source, jobs, typical, unknown, short = false }) {
  const past = jobs === 1 ? "1 past job" : `${jobs} past jobs`;
  if (eta !== null && source === "history") {
    return short ? `~${fmtSeconds(eta)} left (${past})` : `about ${fmtSeconds(eta)} left (from ${past})`;
  }
  if (eta !== null) return `ETA ${fmtSeconds(eta)}`;
  if (unknown && jobs && typical) return `longer than ${past} took (${fmtSeconds(typical)})`;
  return "";
}

function fmtBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** An element: `class`, `text` and any attributes from `attrs`, then the children that are not null. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A button of the widgets' look, labelled for screen readers. */
function button(text, label, attrs = {}) {
  return el("button", { class: "sora-button", type: "button", text, ...(label ? { "aria-label": label } : {}), ...attrs });
}

/**
 * A progress bar: `set(percent)` fills it, `set(null)` empties it, `set(null, true)` makes it indeterminate: a
 * job running without a real percentage (an animated bar, still under prefers-reduced-motion; `aria-busy` and
 * no `aria-valuenow` for screen readers).
 */
function progressBar() {
  const fill = el("div", { class: "sora-fill" });
  const bar = el("div", { class: "sora-bar", role: "progressbar", "aria-label": LABELS.progress, "aria-valuemin": "0",
    "aria-valuemax": "100" }, fill);
  function set(value, busy = false) {
    const unknown = value === null && busy;
    fill.style.width = value === null ? "" : `${value}%`;
    if (value === null) bar.removeAttribute("aria-valuenow"); else bar.setAttribute("aria-valuenow", String(value));
    bar.classList.toggle("sora-indeterminate", unknown);
    if (unknown) {
      bar.setAttribute("aria-busy", "true");
      bar.setAttribute("aria-valuetext", LABELS.unknownProgress);
    } else {
      bar.removeAttribute("aria-busy");
      bar.removeAttribute("aria-valuetext");
    }
  }
  return { bar, set };
}

/**
 * Files the kernel sends on request, kept as Blob URLs: videos as `video-chunk` parts (`part`, `count`), posters
 * as one `poster` message. One request per key however many callers ask; the kernel answers every request, an
 * error answer (`video-error`, `poster-error`) rejects with its message, and the next ask for that key asks anew.
 * @param {Model} model
 * @param {{ ask: (key: any) => object, key: (msg: any) => any, data: string, error: string, mime: string }} kind
 */
function blobs(model, kind) {
  const urls = new Map();     // key -> Promise of its Blob URL
  const waiting = new Map();  // key -> { parts, resolve, reject } while the kernel is sending
  const blobUrl = (parts) => URL.createObjectURL(new Blob(parts, { type: kind.mime }));

  function receive(msg, buffers) {
    if (!msg || (msg.type !== kind.data && msg.type !== kind.error)) return;
    const key = kind.key(msg);
    const entry = waiting.get(key);
    if (!entry) return;
    if (msg.type === kind.error) {  // the kernel has nothing to send: say so now instead of waiting
      waiting.delete(key);
      urls.delete(key);
      entry.reject(new Error(msg.message || "The kernel had nothing to send."));
      return;
    }
    entry.parts[msg.part || 0] = toBytes(buffers && buffers[0]);
    if (entry.parts.filter(Boolean).length === (msg.count || 1)) {
      waiting.delete(key);
      entry.resolve(blobUrl(entry.parts));
    }
  }

  function revoke(key) {
    const url = urls.get(key);
    urls.delete(key);
    waiting.delete(key);
    if (url) url.then(URL.revokeObjectURL, () => {});
  }

  function clear() {
    for (const key of [...urls.keys()]) revoke(key);
  }

  model.on("msg:custom", receive);
  return {
    /** The Blob URL of `key`'s file; made from `bytes` when given (embedded), else asked of the kernel once. */
    get(key, bytes) {
      if (!urls.has(key)) {
        if (bytes && bytes.length) {
          urls.set(key, Promise.resolve(blobUrl([bytes])));
        } else {
          urls.set(key, new Promise((resolve, reject) => waiting.set(key, { parts: [], resolve, reject })));
          model.send(kind.ask(key));
        }
      }
      return urls.get(key);
    },
    /** Forget (and revoke) every file but `key`'s. */
    keep(key) {
      for (const other of [...urls.keys()]) if (other !== key) revoke(other);
    },
    /** Forget (and revoke) every file. */
    clear,
    dispose() {
      model.off("msg:custom", receive);
      clear();
    },
  };
}

/**
 * The default export of a widget module. `setup(model)` runs once per model, in anywidget's `initialize`: the
 * message handling and the files, which every view of that model shares (a widget shown twice fetches its video
 * once). `view(ctx, shared)` runs once per view, in `render`: it builds DOM, subscribes to the model and asks
 * `shared` for files; it returns its cleanup. When the last view goes, the files are let go (`shared.release()`)
 * as a removed view let its own go before; a view shown again asks anew.
 * (The default export is a function, so each model gets its own `shared`: see anywidget's AFM.)
 */
function widget(setup, view) {
  return () => {
    let shared = null;
    let views = 0;
    return {
      initialize({ model }) {
        shared = setup(model);
        return () => shared.dispose();
      },
      render(ctx) {
        views += 1;
        const cleanup = view(ctx, shared);
        return () => {
          cleanup();
          views -= 1;
          if (!views) shared.release();
        };
      },
    };
  };
}
