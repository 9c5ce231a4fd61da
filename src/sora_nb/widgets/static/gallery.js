// sora_nb Gallery view: plain ESM for anywidget, joined after common.js (see there).
// Cards of many videos; posters and videos load on demand, by card index; compare plays in sync.

/** What the views of one gallery share (once per model): the posters and videos of its cards, by index. */
function setup(model) {
  const byIndex = (msg) => msg.index;
  const posters = blobs(model, { ask: (index) => ({ type: "poster", index }), key: byIndex, data: "poster",
    error: "poster-error", mime: "image/jpeg" });
  const videos = blobs(model, { ask: (index) => ({ type: "video", index }), key: byIndex, data: "video-chunk",
    error: "video-error", mime: "video/mp4" });
  return {
    poster: (index) => posters.get(index),
    video: (index) => videos.get(index),
    release() { posters.clear(); videos.clear(); },
    dispose() { posters.dispose(); videos.dispose(); },
  };
}

function showNote(frame, text) {
  frame.replaceChildren(el("div", { class: "sora-g-note", role: "status", text }));
}

/** What a card says of its job. */
function cardStatus(c) {
  if (c.status === "completed") return c.cached ? "Cached" : WORDS.completed;
  if (c.status === "failed") return c.error || WORDS.failed;
  const word = WORDS[c.status] || c.status;
  const eta = c.status === "queued" || c.status === "in_progress" ? etaText({ eta: c.eta >= 0 ? c.eta : null,
    source: c.eta_source, jobs: c.history_jobs, typical: c.history_seconds, unknown: c.progress < 0, short: true }) : "";
  return eta ? `${word} · ${eta}` : word;
}

/** A take's star toggle and note box; `update(card)` shows the kernel's values (a note being typed is kept). */
function takeMarks(model, index) {
  const star = button("☆", LABELS.star, { class: "sora-button sora-g-star", "aria-pressed": "false" });
  const note = el("input", { class: "sora-input sora-g-notebox", type: "text", placeholder: "Note",
    "aria-label": LABELS.note });
  star.addEventListener("click", () => model.send({ type: "star", index, starred: star.getAttribute("aria-pressed") !== "true" }));
  note.addEventListener("change", () => model.send({ type: "note", index, note: note.value }));
  note.addEventListener("keydown", (e) => { if (e.key === "Enter") note.blur(); e.stopPropagation(); });
  function update(c) {
    star.textContent = c.starred ? "★" : "☆";
    star.setAttribute("aria-pressed", String(!!c.starred));
    if (document.activeElement !== note) note.value = c.note || "";
  }
  return { row: el("div", { class: "sora-g-marks" }, star, note), update };
}

/** One view of a gallery; returns its cleanup. */
function view({ model, el: root }, files) {
  const title = el("div", { class: "sora-g-title" });
  const stats = el("div", { class: "sora-g-stats", role: "status" });
  const compare = button("Compare selected", LABELS.compare);
  const cancelAll = button("Cancel all", LABELS.cancelAll);
  const head = el("div", { class: "sora-g-head" }, title, stats, el("div", { class: "sora-g-tools" }, compare, cancelAll));
  const grid = el("div", { class: "sora-g-grid" });
  const viewer = el("div", { class: "sora-g-compare", hidden: "" });
  const shell = el("div", { class: "sora-gallery" }, head, grid, viewer);
  root.append(shell);

  const selected = new Set();
  const nodes = [];

  // Asked once per card and view; the kernel answers every request (a poster, or "poster-error": no poster).
  function askPoster(index) {
    const n = nodes[index];
    if (!n || n.card.dataset.asked) return;
    n.card.dataset.asked = "1";
    files.poster(index).then((url) => { n.img.src = url; }, () => {
      if (!n.frame.querySelector("video")) showNote(n.frame, "no poster");
    });
  }

  const seen = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const index = Number(entry.target.dataset.index);
      const card = model.get("cards")[index];
      if (card && card.status === "completed") askPoster(index);
    }
  });

  function makeCard(index) {
    const img = el("img", { class: "sora-g-poster", alt: "" });
    const frame = el("div", { class: "sora-g-frame" }, img);
    const labelText = el("div", { class: "sora-g-label" });
    const status = el("div", { class: "sora-g-status" });
    const waiting = el("div", { class: "sora-g-waiting", "aria-live": "polite" });  // why a queued job waits
    const progress = progressBar();
    const pick = el("input", { type: "checkbox", "aria-label": LABELS.pick });
    const open = button("Open", LABELS.open, { class: "sora-button sora-g-open" });
    open.addEventListener("click", () => model.send({ type: "open", index }));
    const marks = model.get("notes") ? takeMarks(model, index) : null;  // a playground's takes: star and note
    const card = el("div", { class: "sora-g-card", "data-index": String(index), tabindex: "0" },
      frame, el("label", { class: "sora-g-pick" }, pick, labelText), status, waiting, progress.bar,
      marks && marks.row, open);
    pick.addEventListener("change", () => { if (pick.checked) selected.add(index); else selected.delete(index); update(); });
    const play = async () => {
      if (model.get("cards")[index].status !== "completed" || frame.querySelector("video")) return;
      const video = el("video", { muted: "", loop: "", autoplay: "", playsinline: "", class: "sora-g-video" });
      video.muted = true;
      try {
        video.src = await files.video(index);
      } catch (error) {
        card.dataset.video = "error";
        showNote(frame, error.message);  // instead of a player that waits forever
        return;
      }
      delete card.dataset.video;
      frame.replaceChildren(video);
    };
    frame.addEventListener("click", play);
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") play(); });
    seen.observe(card);
    return { card, frame, img, labelText, status, waiting, progress, pick, open, play, marks };
  }

  function update() {
    const cards = model.get("cards") || [];
    while (nodes.length < cards.length) { const node = makeCard(nodes.length); nodes.push(node); grid.append(node.card); }
    cards.forEach((c, i) => {
      const n = nodes[i];
      n.card.dataset.status = c.status;
      n.labelText.textContent = c.label || c.prompt;
      n.card.title = c.prompt;
      n.status.textContent = n.status.title = cardStatus(c);  // the title: the whole text where it is cut
      n.waiting.textContent = n.waiting.title = FINISHED.includes(c.status) ? "" : c.waiting || "";
      if (n.marks) n.marks.update(c);
      if (model.get("newest_first")) n.card.style.order = String(-i);
      n.progress.bar.hidden = FINISHED.includes(c.status);
      n.open.hidden = c.status !== "completed";
      n.progress.set(c.progress >= 0 && c.status !== "completed" ? c.progress : null,
        ["pending", "queued", "in_progress", "downloading"].includes(c.status) && c.progress < 0);
      if (c.width && c.height) n.card.style.setProperty("--ratio", `${c.width} / ${c.height}`);
      if (c.status === "completed" && model.get("autoplay") && !n.card.dataset.playing) {
        n.card.dataset.playing = "1";  // a sweep card becomes a muted looping preview when its job is done
        n.play();
      }
      if (c.status === "completed" && !n.card.dataset.asked && n.card.isConnected) {
        const r = n.card.getBoundingClientRect();
        if (r.bottom > 0 && r.top < window.innerHeight) askPoster(i);
      }
    });
    const k = model.get("counts") || {};
    title.textContent = model.get("title");
    const money = model.get("local") ? "local preview: $0" :
      `estimated $${(model.get("estimated_usd") || 0).toFixed(2)} · spent $${(model.get("spent_usd") || 0).toFixed(2)}`;
    stats.textContent = `${k.queued || 0} queued · ${k.running || 0} running · ${k.done || 0} done · ${k.failed || 0} failed · ${money}`;
    compare.disabled = selected.size < 2;
    cancelAll.disabled = !((k.queued || 0) + (k.running || 0));  // nothing left to cancel
  }

  async function openCompare() {
    const chosen = [...selected].filter((i) => model.get("cards")[i].status === "completed");
    if (chosen.length < 2) return;
    const close = button("Close");
    const playAll = button("Play / pause");
    const row = el("div", { class: "sora-g-row" });
    const videos = [];
    for (const i of chosen) {
      const c = model.get("cards")[i];
      const caption = el("figcaption", { text: c.label || c.prompt });
      const video = el("video", { controls: "", playsinline: "", muted: "", class: "sora-g-big" });
      video.muted = true;
      try {
        video.src = await files.video(i);
      } catch (error) {
        row.append(el("figure", {}, caption, el("div", { class: "sora-g-note", role: "status", text: error.message })));
        continue;
      }
      videos.push(video);
      row.append(el("figure", {}, caption, video));
    }
    let syncing = false;
    const mirror = (source, action) => {
      if (syncing) return;
      syncing = true;
      for (const v of videos) if (v !== source) action(v);
      syncing = false;
    };
    for (const v of videos) {
      v.addEventListener("play", () => mirror(v, (o) => o.play()));
      v.addEventListener("pause", () => mirror(v, (o) => o.pause()));
      v.addEventListener("seeked", () => mirror(v, (o) => { if (Math.abs(o.currentTime - v.currentTime) > 0.05) o.currentTime = v.currentTime; }));
    }
    playAll.addEventListener("click", () => { const v = videos[0]; if (v) v.paused ? v.play() : v.pause(); });
    close.addEventListener("click", () => { viewer.hidden = true; viewer.replaceChildren(); });
    viewer.replaceChildren(el("div", { class: "sora-g-tools" }, playAll, close), row);
    viewer.hidden = false;
  }

  compare.addEventListener("click", openCompare);
  cancelAll.addEventListener("click", () => model.send({ type: "cancel-all" }));
  model.on("change", update);
  update();
  return () => {
    seen.disconnect();
    model.off("change", update);
  };
}

export default widget(setup, view);
