// sora_nb Playground form: plain ESM for anywidget, joined after common.js (see there). The takes strip below it is
// a Gallery widget of its own (gallery.js); this file is the form: fields, the cost line, the buttons, the image.

/** The form's fields: trait, label, kind; extras show only where the backend takes them (options.extras). */
const PG_FIELDS = [
  { name: "model", trait: "video_model", label: "Model", kind: "select" },
  { name: "size", trait: "size", label: "Size", kind: "select" },
  { name: "seconds", trait: "seconds", label: "Seconds", kind: "select", number: true },
  { name: "seed", trait: "seed", label: "Seed", kind: "number", min: 0, placeholder: "any" },
  { name: "variations", trait: "variations", label: "Variations count", kind: "number", min: 1, max: 8 },
  { name: "negative_prompt", trait: "negative_prompt", label: "Negative prompt", kind: "text", extra: true },
  { name: "steps", trait: "steps", label: "Steps", kind: "number", min: 1, max: 200, extra: true, placeholder: "default" },
  { name: "guidance", trait: "guidance", label: "Guidance", kind: "number", min: 0, max: 30, step: 0.5, extra: true,
    placeholder: "default", float: true },
];

const money = (usd) => (usd === null || usd === undefined ? "price unknown" : `$${usd.toFixed(2)}`);

/** The cost line: what one take and the variations cost, and what is left of the budget. */
function costText(model) {
  const c = model.get("cost") || {};
  if (c.local) return "Local preview: every take is $0.";
  const take = c.reattach ? "$0 (this form is a take already: it re-attaches)" : money(c.take_usd);
  const left = c.left_usd === null || c.left_usd === undefined ? "no budget set" :
    `${money(c.left_usd)} of ${money(c.limit_usd)} left`;
  return `This take: ${take} · ${c.count} variations: ${money(c.variations_usd)} · ${left}`;
}

/** What the views of one playground share: nothing but the model (the strip below loads the videos). */
function setup() {
  return { release() {}, dispose() {} };
}

function control(spec, id) {
  const attrs = { class: "sora-input sora-pg-field", id, "aria-label": spec.label };  // not "Model fixed"
  if (spec.kind === "select") return el("select", attrs);
  const input = el("input", { ...attrs, type: spec.kind === "number" ? "number" : "text" });
  for (const key of ["min", "max", "step", "placeholder"]) if (spec[key] !== undefined) input.setAttribute(key, String(spec[key]));
  return input;
}

/** One view of a playground's form; returns its cleanup. */
function view({ model, el: root }) {
  const uid = `sora-pg-${Math.random().toString(36).slice(2, 9)}`;
  const prompt = el("textarea", { class: "sora-input sora-pg-prompt", rows: "3", "aria-label": "Prompt",
    placeholder: "Describe the video… (Ctrl+Enter generates)" });
  const fields = {};
  const row = el("div", { class: "sora-pg-row" });
  const extraRow = el("div", { class: "sora-pg-row" });
  for (const spec of PG_FIELDS) {
    const input = control(spec, `${uid}-${spec.name}`);
    const lock = el("span", { class: "sora-pg-lock", text: "locked for this lesson", hidden: "" });
    const wrap = el("label", { class: "sora-pg-label", for: input.id }, el("span", { text: spec.label }), input, lock);
    fields[spec.name] = { spec, input, wrap, lock };
    (spec.extra ? extraRow : row).append(wrap);
    input.addEventListener("change", () => {
      let value = input.value;
      if (spec.number || spec.kind === "number") value = value === "" ? null : (spec.float ? Number(value) : Math.round(Number(value)));
      if (spec.name === "variations" && value === null) value = 1;
      model.set(spec.trait, value);
      model.save_changes();
    });
  }
  const file = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp", class: "sora-pg-file",
    "aria-label": "Choose an image to start from" });
  const choose = button("Choose image…", "Choose an image to start from (image-to-video)");
  const imageName = el("span", { class: "sora-pg-image-name" });
  const clearImage = button("Remove image", "Remove the image");
  const drop = el("div", { class: "sora-pg-drop", role: "group", "aria-label": "Image to start from" },
    el("span", { text: "Drop an image here, or " }), choose, file, imageName, clearImage);
  const cost = el("div", { class: "sora-pg-cost", role: "status", "aria-live": "polite" });
  const generate = button("Generate", "Generate", { class: "sora-button sora-pg-go" });
  const variations = button("Variations", "Variations");
  const exportButton = button("Export", "Export the session as a contact sheet (HTML)");
  const reason = el("div", { class: "sora-pg-reason", id: `${uid}-reason` });
  const notice = el("div", { class: "sora-pg-notice", role: "status", "aria-live": "polite" });
  generate.setAttribute("aria-describedby", reason.id);
  variations.setAttribute("aria-describedby", reason.id);
  const actions = el("div", { class: "sora-pg-actions" }, generate, variations, exportButton, reason);
  const shell = el("div", { class: "sora-pg", role: "form", "aria-label": "Video playground",
    "data-lm-suppress-shortcuts": "true" },  // Ctrl+Enter and typed letters are the form's, not the notebook's
  prompt, row, extraRow, drop, cost, actions, notice);
  root.append(shell);

  const press = (type) => { model.set("prompt", prompt.value); model.save_changes(); model.send({ type }); };
  prompt.addEventListener("input", () => { model.set("prompt", prompt.value); model.save_changes(); });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      if (!generate.disabled) press("generate");
    }
  });
  generate.addEventListener("click", () => press("generate"));
  variations.addEventListener("click", () => press("variations"));
  exportButton.addEventListener("click", () => model.send({ type: "export" }));

  async function sendImage(picked) {
    if (!picked) return;
    const bytes = await picked.arrayBuffer();  // over the comm as a binary buffer, never into widget state
    model.send({ type: "image", name: picked.name }, undefined, [bytes]);
  }
  choose.addEventListener("click", () => file.click());
  file.addEventListener("change", () => sendImage(file.files && file.files[0]));
  clearImage.addEventListener("click", () => { file.value = ""; model.send({ type: "image-clear" }); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.dataset.over = "1"; });
  drop.addEventListener("dragleave", () => { delete drop.dataset.over; });
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    delete drop.dataset.over;
    sendImage(e.dataTransfer && e.dataTransfer.files[0]);
  });

  function setOptions(select, values, current) {
    const wanted = values.map(String);
    const have = [...select.options].map((o) => o.value);
    if (wanted.join("\n") !== have.join("\n")) {
      select.replaceChildren(...wanted.map((v) => el("option", { value: v, text: v })));
    }
    select.value = String(current);
  }

  function update() {
    const options = model.get("options") || { models: [], sizes: {}, seconds: {}, extras: [] };
    const locked = model.get("locked") || [];
    const chosen = model.get("video_model");
    if (document.activeElement !== prompt && prompt.value !== model.get("prompt")) prompt.value = model.get("prompt");
    setOptions(fields.model.input, options.models, chosen);
    setOptions(fields.size.input, options.sizes[chosen] || [], model.get("size"));
    setOptions(fields.seconds.input, options.seconds[chosen] || [], model.get("seconds"));
    for (const { spec, input, wrap, lock } of Object.values(fields)) {
      if (spec.kind !== "select" && document.activeElement !== input) {
        const value = model.get(spec.trait);
        input.value = value === null || value === undefined ? "" : String(value);
      }
      wrap.hidden = !!spec.extra && !options.extras.includes(spec.name);
      const fixed = locked.includes(spec.name);
      input.disabled = fixed;  // read-only for a lesson: shown, not changeable
      input.setAttribute("aria-readonly", String(fixed));
      lock.hidden = !fixed;
    }
    prompt.readOnly = locked.includes("prompt");
    extraRow.hidden = !options.extras.length;
    const name = model.get("image_name");
    imageName.textContent = name ? `Starts from ${name}` : "";
    clearImage.hidden = !name;
    cost.textContent = costText(model);
    const why = model.get("blocked");
    const whyMore = model.get("blocked_variations");
    generate.disabled = !!why;
    variations.disabled = !!whyMore;
    generate.title = why;
    variations.title = whyMore;
    reason.textContent = why || (whyMore ? `Variations: ${whyMore}` : "");
    notice.textContent = model.get("notice");
    shell.dataset.blocked = why ? "1" : "";
  }

  function flash(msg) {
    if (msg && msg.type === "reattached") notice.dataset.flash = String(Date.now());
  }
  model.on("change", update);
  model.on("msg:custom", flash);
  update();
  return () => {
    model.off("change", update);
    model.off("msg:custom", flash);
  };
}

export default widget(setup, view);
