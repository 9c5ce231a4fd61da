// sora_nb VideoJob view: plain ESM for anywidget, joined after common.js (see there).
// State arrives as traits; the MP4 arrives on request as binary chunks and plays from a Blob URL.

/** What the views of one job widget share (once per model): the video of each job it has shown, by ID. */
function setup(model) {
  const videos = blobs(model, { ask: () => ({ type: "video" }), key: (msg) => msg.id, data: "video-chunk",
    error: "video-error", mime: "video/mp4" });
  return {
    /** The video of job `id`: from the notebook itself with embed=True, else asked of the kernel once. */
    video(id) {
      videos.keep(id);  // after Retry, the video of the job before is not needed any more
      const embedded = model.get("embedded");
      return videos.get(id, embedded ? toBytes(embedded) : null);
    },
    release: videos.clear,
    dispose: videos.dispose,
  };
}

/** One view of a job widget; returns its cleanup. @param {{ model: Model, el: HTMLElement }} ctx */
function view({ model, el: root }, files) {
  const card = el("div", { class: "sora-card", role: "group", "aria-label": LABELS.job });
  const prompt = el("div", { class: "sora-prompt" });
  const chips = el("div", { class: "sora-chips" });
  const head = el("div", { class: "sora-head" }, prompt, chips);

  const word = el("span", { class: "sora-word" });
  const pct = el("span", { class: "sora-pct" });
  const elapsedText = el("span");
  const etaLabel = el("span", { class: "sora-eta" });
  const clock = el("span", { class: "sora-clock" }, elapsedText, etaLabel);
  const bytes = el("span", { class: "sora-bytes" });
  const progress = progressBar();
  const bar = progress.bar;
  const cancel = button("Cancel", LABELS.cancel);
  // why a queued job waits (a busy engine): always in the tree, so a screen reader hears each new text
  const waiting = el("div", { class: "sora-waiting", "aria-live": "polite" });
  const running = el("div", { class: "sora-running" },
    el("div", { class: "sora-line" }, word, pct, clock, bytes), waiting, bar,
    el("div", { class: "sora-actions" }, cancel));

  const video = el("video", { controls: "", playsinline: "", preload: "metadata", class: "sora-video",
    "aria-label": LABELS.video });
  const note = el("div", { class: "sora-note", role: "status" });
  const download = el("a", { class: "sora-button", role: "button", "aria-label": LABELS.download, text: "Download" });
  const idText = el("code", { class: "sora-id" });
  const copy = button("Copy ID", LABELS.copyId);
  const remixInput = el("input", { class: "sora-input", type: "text", placeholder: "Remix: describe a change…",
    "aria-label": LABELS.remix });
  const remixButton = button("Remix", null, { type: "submit" });
  const remixForm = el("form", { class: "sora-remix" }, remixInput, remixButton);
  const done = el("div", { class: "sora-done" }, video, note,
    el("div", { class: "sora-actions" }, download, idText, copy), remixForm);

  const errCode = el("strong", { class: "sora-error-code" });
  const errMessage = el("div", { class: "sora-error-message" });
  const errHint = el("div", { class: "sora-error-hint" });
  const retry = button("Retry", LABELS.retry);
  const failed = el("div", { class: "sora-failed", role: "alert" }, errCode, errMessage, errHint,
    el("div", { class: "sora-actions" }, retry));

  card.append(head, running, done, failed);
  root.append(card);

  let shown = null;  // the video ID this view plays (or is loading)
  let loadTimer = null;

  function showVideo() {
    const id = model.get("video_id");
    if (!id || shown === id) return;
    shown = id;
    let loaded = false;
    note.textContent = "Loading the video…";
    clearTimeout(loadTimer);
    loadTimer = setTimeout(() => {
      if (!loaded) note.textContent = "The video could not be loaded from the kernel. Run the cell again, or use embed=True for a self-contained output.";
    }, 15000);
    files.video(id).then((url) => {
      if (shown !== id) return;
      loaded = true;
      clearTimeout(loadTimer);
      video.src = url;
      download.href = url;
      download.setAttribute("download", `${id}.mp4`);
      download.removeAttribute("aria-disabled");
      note.textContent = "";
    }, (error) => {  // the kernel has no file to send: say so now instead of waiting
      if (shown !== id) return;
      clearTimeout(loadTimer);
      note.textContent = error.message;
    });
  }

  function tick() {
    const status = model.get("status");
    const started = model.get("started_at");
    const finished = model.get("finished_at");
    const now = Date.now();
    const elapsed = ((finished || now) - started) / 1000;
    const etaAt = model.get("eta_at");
    const eta = etaAt ? Math.max(0, (etaAt - now) / 1000) : null;
    elapsedText.textContent = fmtSeconds(elapsed);
    const source = model.get("eta_source");
    const jobs = model.get("history_jobs");
    const text = status === "queued" || status === "in_progress" ? etaText({ eta, source, jobs,
      typical: model.get("history_seconds"), unknown: model.get("progress") < 0 }) : "";
    etaLabel.textContent = text ? ` · ${text}` : "";
    etaLabel.dataset.source = text ? (eta !== null ? source : "history") : "";
    etaLabel.title = etaLabel.dataset.source === "history" ? `Estimated from how long this backend took for ${jobs} ` +
      "similar past job(s) (same size, length and steps): the engine reports no real percentage." : "";
  }

  function update() {
    const status = model.get("status");
    const full = model.get("prompt");
    prompt.textContent = full;
    prompt.title = full;
    chips.replaceChildren(
      ...[model.get("video_model"), model.get("size"), model.get("seconds") ? `${model.get("seconds")} s` : "",
        ...(model.get("open_params") || [])]
        .filter(Boolean).map((t) => el("span", { class: "sora-chip", text: t })),
      el("span", { class: `sora-chip sora-backend${model.get("local") ? " sora-local" : ""}`,
        text: model.get("backend") || "…" }),
    );
    card.dataset.status = status;
    const isRunning = !FINISHED.includes(status);
    running.hidden = !isRunning && status !== "cancelled";
    done.hidden = status !== "completed";
    failed.hidden = status !== "failed";
    cancel.hidden = !isRunning;
    word.textContent = WORDS[status] || status;
    waiting.textContent = isRunning ? model.get("waiting") || "" : "";
    let value = model.get("progress");
    if (status === "downloading" && model.get("bytes_total")) {
      value = Math.round((100 * model.get("bytes_done")) / model.get("bytes_total"));
    }
    const known = value !== null && value !== undefined && value >= 0 && status !== "pending";
    progress.set(known ? value : null, isRunning && !known);
    pct.textContent = known ? `${value}%` : "";
    bytes.textContent = status === "downloading" ? `${fmtBytes(model.get("bytes_done"))}` +
      (model.get("bytes_total") ? ` of ${fmtBytes(model.get("bytes_total"))}` : "") : "";
    const w = model.get("width"), h = model.get("height");
    if (w && h) video.style.aspectRatio = `${w} / ${h}`;
    if (model.get("poster")) video.poster = model.get("poster");
    idText.textContent = model.get("video_id") || "";
    errCode.textContent = model.get("error_code") || "error";
    errMessage.textContent = model.get("error_message");
    errHint.textContent = model.get("error_hint");
    errHint.hidden = !model.get("error_hint");
    if (status === "completed") showVideo();
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
  const timer = setInterval(tick, 250);
  update();

  return () => {
    clearInterval(timer);
    clearTimeout(loadTimer);
    model.off("change", update);
  };
}

export default widget(setup, view);
