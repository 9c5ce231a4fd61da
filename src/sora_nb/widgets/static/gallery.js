// sora_nb Gallery view: cards of many videos; posters and videos load on demand; compare plays in sync.

function toBytes(buffer) {
  if (buffer instanceof DataView) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (typeof buffer === "string") return Uint8Array.from(atob(buffer), (c) => c.charCodeAt(0));
  return new Uint8Array(0);
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

function render({ model, el: root }) {
  const title = el("div", { class: "sora-g-title" });
  const stats = el("div", { class: "sora-g-stats", role: "status" });
  const compare = el("button", { class: "sora-button", type: "button", text: "Compare selected",
    "aria-label": "Compare the selected videos side by side" });
  const cancelAll = el("button", { class: "sora-button", type: "button", text: "Cancel all",
    "aria-label": "Cancel every unfinished job" });
  const head = el("div", { class: "sora-g-head" }, title, stats, el("div", { class: "sora-g-tools" }, compare, cancelAll));
  const grid = el("div", { class: "sora-g-grid" });
  const viewer = el("div", { class: "sora-g-compare", hidden: "" });
  const shell = el("div", { class: "sora-gallery" }, head, grid, viewer);
  root.append(shell);

  const urls = new Map();      // index -> blob URL of the video
  const posters = new Map();   // index -> blob URL of the poster
  const parts = new Map();     // index -> received chunks
  const waiting = new Map();   // index -> {resolve, reject} of the callers waiting for the video
  const selected = new Set();
  const nodes = [];

  // The kernel answers every request: the video's chunks, or a "video-error" that rejects (asked anew next time).
  function videoUrl(index) {
    if (urls.has(index)) return Promise.resolve(urls.get(index));
    return new Promise((resolve, reject) => {
      if (!waiting.has(index)) { waiting.set(index, []); model.send({ type: "video", index }); }
      waiting.get(index).push({ resolve, reject });
    });
  }

  function showNote(frame, text) {
    frame.replaceChildren(el("div", { class: "sora-g-note", role: "status", text }));
  }

  function onMessage(msg, buffers) {
    if (!msg) return;
    if (msg.type === "poster-error") {
      const node = nodes[msg.index];
      if (node && !node.frame.querySelector("video")) showNote(node.frame, "no poster");  // answered: none will come
    } else if (msg.type === "poster") {
      const bytes = toBytes(buffers && buffers[0]);
      if (!bytes.length) return;
      const url = URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" }));
      posters.set(msg.index, url);
      const node = nodes[msg.index];
      if (node) node.img.src = url;
    } else if (msg.type === "video-chunk") {
      const got = parts.get(msg.index) || [];
      got[msg.part] = toBytes(buffers && buffers[0]);
      parts.set(msg.index, got);
      if (got.filter(Boolean).length === msg.count) {
        const url = URL.createObjectURL(new Blob(got, { type: "video/mp4" }));
        urls.set(msg.index, url);
        parts.delete(msg.index);
        for (const { resolve } of waiting.get(msg.index) || []) resolve(url);
        waiting.delete(msg.index);
      }
    } else if (msg.type === "video-error") {
      parts.delete(msg.index);
      for (const { reject } of waiting.get(msg.index) || []) reject(new Error(msg.message || "no video"));
      waiting.delete(msg.index);
    }
  }

  const seen = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const index = Number(entry.target.dataset.index);
      const card = model.get("cards")[index];
      if (card && card.status === "completed" && !posters.has(index) && !entry.target.dataset.asked) {
        entry.target.dataset.asked = "1";
        model.send({ type: "poster", index });
      }
    }
  });

  function makeCard(index) {
    const img = el("img", { class: "sora-g-poster", alt: "" });
    const frame = el("div", { class: "sora-g-frame" }, img);
    const labelText = el("div", { class: "sora-g-label" });
    const status = el("div", { class: "sora-g-status" });
    const fill = el("div", { class: "sora-fill" });
    const bar = el("div", { class: "sora-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
    const pick = el("input", { type: "checkbox", "aria-label": "Select for comparison" });
    const open = el("button", { class: "sora-button sora-g-open", type: "button", text: "Open",
      "aria-label": "Open the full player (with remix) below the gallery" });
    open.addEventListener("click", () => model.send({ type: "open", index }));
    const card = el("div", { class: "sora-g-card", "data-index": String(index), tabindex: "0" },
      frame, el("label", { class: "sora-g-pick" }, pick, labelText), status, bar, open);
    pick.addEventListener("change", () => { if (pick.checked) selected.add(index); else selected.delete(index); update(); });
    const play = async () => {
      if (model.get("cards")[index].status !== "completed" || frame.querySelector("video")) return;
      const video = el("video", { muted: "", loop: "", autoplay: "", playsinline: "", class: "sora-g-video" });
      video.muted = true;
      try {
        video.src = await videoUrl(index);
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
    return { card, frame, img, labelText, status, bar, fill, pick, open, play };
  }

  function update() {
    const cards = model.get("cards") || [];
    while (nodes.length < cards.length) { const node = makeCard(nodes.length); nodes.push(node); grid.append(node.card); }
    cards.forEach((c, i) => {
      const n = nodes[i];
      n.card.dataset.status = c.status;
      n.labelText.textContent = c.label || c.prompt;
      n.card.title = c.prompt;
      n.status.textContent = c.status === "completed" ? (c.cached ? "cached" : "done") : c.status === "failed" ? (c.error || "failed") : c.status.replace("_", " ");
      const known = c.progress >= 0 && c.status !== "completed";
      n.bar.hidden = ["completed", "failed", "cancelled"].includes(c.status);
      n.open.hidden = c.status !== "completed";
      n.fill.style.width = known ? `${c.progress}%` : "0";
      if (known) n.bar.setAttribute("aria-valuenow", String(c.progress)); else n.bar.removeAttribute("aria-valuenow");
      if (c.width && c.height) n.card.style.setProperty("--ratio", `${c.width} / ${c.height}`);
      if (c.status === "completed" && model.get("autoplay") && !n.card.dataset.playing) {
        n.card.dataset.playing = "1";  // a sweep card becomes a muted looping preview when its job is done
        n.play();
      }
      if (c.status === "completed" && !posters.has(i) && !n.card.dataset.asked && n.card.isConnected) {
        const r = n.card.getBoundingClientRect();
        if (r.bottom > 0 && r.top < window.innerHeight) { n.card.dataset.asked = "1"; model.send({ type: "poster", index: i }); }
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
    const close = el("button", { class: "sora-button", type: "button", text: "Close" });
    const playAll = el("button", { class: "sora-button", type: "button", text: "Play / pause" });
    const row = el("div", { class: "sora-g-row" });
    const videos = [];
    for (const i of chosen) {
      const c = model.get("cards")[i];
      const caption = el("figcaption", { text: c.label || c.prompt });
      const video = el("video", { controls: "", playsinline: "", muted: "", class: "sora-g-big" });
      video.muted = true;
      try {
        video.src = await videoUrl(i);
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
  model.on("msg:custom", onMessage);
  update();
  return () => {
    seen.disconnect();
    model.off("change", update);
    model.off("msg:custom", onMessage);
    for (const url of [...urls.values(), ...posters.values()]) URL.revokeObjectURL(url);
  };
}

export default { render };
