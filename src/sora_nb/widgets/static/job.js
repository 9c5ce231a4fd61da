// sora_nb VideoJob view: plain ESM for anywidget, no build step.
// State arrives as traits; the MP4 arrives on request as binary chunks and plays from a Blob URL.

/** @typedef {{ get(k: string): any, on(e: string, f: Function): void, off(e: string, f: Function): void, send(c: any, cb?: any, b?: any[]): void }} Model */

const WORDS = {
  pending: "Starting", queued: "Queued", in_progress: "Rendering", downloading: "Downloading",
  completed: "Done", failed: "Failed", cancelled: "Cancelled",
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

function fmtBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

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

/** @param {{ model: Model, el: HTMLElement }} ctx */
function render({ model, el: root }) {
  const card = el("div", { class: "sora-card", role: "group", "aria-label": "Video generation job" });
  const prompt = el("div", { class: "sora-prompt" });
  const chips = el("div", { class: "sora-chips" });
  const head = el("div", { class: "sora-head" }, prompt, chips);

  const word = el("span", { class: "sora-word" });
  const pct = el("span", { class: "sora-pct" });
  const clock = el("span", { class: "sora-clock" });
  const bytes = el("span", { class: "sora-bytes" });
  const fill = el("div", { class: "sora-fill" });
  const bar = el("div", { class: "sora-bar", role: "progressbar", "aria-label": "Progress", "aria-valuemin": "0",
    "aria-valuemax": "100" }, fill);
  const cancel = el("button", { class: "sora-button", type: "button", "aria-label": "Cancel this job", text: "Cancel" });
  const running = el("div", { class: "sora-running" },
    el("div", { class: "sora-line" }, word, pct, clock, bytes), bar, el("div", { class: "sora-actions" }, cancel));

  const video = el("video", { controls: "", playsinline: "", preload: "metadata", class: "sora-video",
    "aria-label": "Generated video" });
  const note = el("div", { class: "sora-note", role: "status" });
  const download = el("a", { class: "sora-button", role: "button", "aria-label": "Download the MP4",
    text: "Download" });
  const idText = el("code", { class: "sora-id" });
  const copy = el("button", { class: "sora-button", type: "button", "aria-label": "Copy the video ID",
    text: "Copy ID" });
  const remixInput = el("input", { class: "sora-input", type: "text", placeholder: "Remix: describe a change…",
    "aria-label": "Remix prompt" });
  const remixButton = el("button", { class: "sora-button", type: "submit", text: "Remix" });
  const remixForm = el("form", { class: "sora-remix" }, remixInput, remixButton);
  const done = el("div", { class: "sora-done" }, video, note,
    el("div", { class: "sora-actions" }, download, idText, copy), remixForm);

  const errCode = el("strong", { class: "sora-error-code" });
  const errMessage = el("div", { class: "sora-error-message" });
  const errHint = el("div", { class: "sora-error-hint" });
  const retry = el("button", { class: "sora-button", type: "button", "aria-label": "Retry: create a new job",
    text: "Retry" });
  const failed = el("div", { class: "sora-failed", role: "alert" }, errCode, errMessage, errHint,
    el("div", { class: "sora-actions" }, retry));

  card.append(head, running, done, failed);
  root.append(card);

  let blobUrl = null;
  let chunks = [];
  let loadingFor = null;
  let loadTimer = null;

  function setBlob(parts, id) {
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    blobUrl = URL.createObjectURL(new Blob(parts, { type: "video/mp4" }));
    video.src = blobUrl;
    download.href = blobUrl;
    download.setAttribute("download", `${id}.mp4`);
    download.removeAttribute("aria-disabled");
    note.textContent = "";
  }

  function requestVideo() {
    const id = model.get("video_id");
    if (!id || loadingFor === id) return;
    const embedded = model.get("embedded");
    const bytesEmbedded = embedded ? toBytes(embedded) : null;
    if (bytesEmbedded && bytesEmbedded.length) { loadingFor = id; setBlob([bytesEmbedded], id); return; }
    loadingFor = id;
    chunks = [];
    note.textContent = "Loading the video…";
    model.send({ type: "video" });
    clearTimeout(loadTimer);
    loadTimer = setTimeout(() => {
      if (!blobUrl) note.textContent = "The video could not be loaded from the kernel. Run the cell again, or use embed=True for a self-contained output.";
    }, 15000);
  }

  function onMessage(msg, buffers) {
    if (!msg || msg.id !== model.get("video_id")) return;
    if (msg.type === "video-error") {  // the kernel has no file to send: say so now instead of waiting
      clearTimeout(loadTimer);
      chunks = [];
      note.textContent = msg.message || "The video could not be loaded from the kernel.";
      return;
    }
    if (msg.type !== "video-chunk") return;
    chunks[msg.part] = toBytes(buffers && buffers[0]);
    if (chunks.filter(Boolean).length === msg.count) {
      clearTimeout(loadTimer);
      setBlob(chunks, msg.id);
      chunks = [];
    }
  }

  function tick() {
    const status = model.get("status");
    const started = model.get("started_at");
    const finished = model.get("finished_at");
    const now = Date.now();
    const elapsed = ((finished || now) - started) / 1000;
    const etaAt = model.get("eta_at");
    const eta = etaAt ? Math.max(0, (etaAt - now) / 1000) : null;
    let text = fmtSeconds(elapsed);
    if (eta !== null && (status === "queued" || status === "in_progress")) text += ` · ETA ${fmtSeconds(eta)}`;
    clock.textContent = text;
  }

  function update() {
    const status = model.get("status");
    const full = model.get("prompt");
    prompt.textContent = full;
    prompt.title = full;
    chips.replaceChildren(
      ...[model.get("video_model"), model.get("size"), model.get("seconds") ? `${model.get("seconds")} s` : ""]
        .filter(Boolean).map((t) => el("span", { class: "sora-chip", text: t })),
      el("span", { class: `sora-chip sora-backend${model.get("local") ? " sora-local" : ""}`,
        text: model.get("backend") || "…" }),
    );
    card.dataset.status = status;
    const progress = model.get("progress");
    const isRunning = !["completed", "failed", "cancelled"].includes(status);
    running.hidden = !isRunning && status !== "cancelled";
    done.hidden = status !== "completed";
    failed.hidden = status !== "failed";
    cancel.hidden = !isRunning;
    word.textContent = WORDS[status] || status;
    let value = progress;
    if (status === "downloading" && model.get("bytes_total")) {
      value = Math.round((100 * model.get("bytes_done")) / model.get("bytes_total"));
    }
    const known = value !== null && value !== undefined && value >= 0 && status !== "pending";
    bar.classList.toggle("sora-indeterminate", isRunning && !known);
    fill.style.width = known ? `${value}%` : "";
    pct.textContent = known ? `${value}%` : "";
    if (known) bar.setAttribute("aria-valuenow", String(value)); else bar.removeAttribute("aria-valuenow");
    bytes.textContent = status === "downloading" ? `${fmtBytes(model.get("bytes_done"))}` +
      (model.get("bytes_total") ? ` of ${fmtBytes(model.get("bytes_total"))}` : "") : "";
    const w = model.get("width"), h = model.get("height");
    if (w && h) video.style.aspectRatio = `${w} / ${h}`;
    if (model.get("poster")) video.poster = model.get("poster");
    idText.textContent = model.get("video_id") || "";
    errCode.textContent = model.get("error_code") || "error";
    errMessage.textContent = model.get("error_message");
    errHint.textContent = model.get("error_hint");
    if (status === "completed") requestVideo();
    tick();
  }

  cancel.addEventListener("click", () => model.send({ type: "cancel" }));
  retry.addEventListener("click", () => model.send({ type: "retry" }));
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(model.get("video_id")); copy.textContent = "Copied"; }
    catch { copy.textContent = "Copy failed"; }
    setTimeout(() => (copy.textContent = "Copy ID"), 1500);
  });
  download.setAttribute("aria-disabled", "true");
  remixForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = remixInput.value.trim();
    if (!text) return;
    model.send({ type: "remix", prompt: text });
    remixInput.value = "";
  });

  model.on("change", update);
  model.on("msg:custom", onMessage);
  const timer = setInterval(tick, 250);
  update();

  return () => {
    clearInterval(timer);
    clearTimeout(loadTimer);
    model.off("change", update);
    model.off("msg:custom", onMessage);
    if (blobUrl) URL.revokeObjectURL(blobUrl);
  };
}

export default { render };
