// TimelineAxis (widgets/timeline.py): the time axis of a recording, its density strip, and the cursor.
//
// Python sends the range (ms since the epoch), the counts per bin (one row per subject group) and the
// cursor; a click or a drag on the axis moves the cursor here at once and sends it to Python at most
// every 50 ms (the kernel answers with the state there), and once more when the drag ends.

const SEND_EVERY_MS = 50;
const SNAP_PX = 4;
const COLORS = ["#1976d2", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f"];

function utc(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return "";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function render({ model, el }) {
  el.classList.add("fastiot-timeline-axis");
  const box = document.createElement("div");
  box.style.cssText = "position:relative;height:64px;border:1px solid #ccc;cursor:ew-resize;user-select:none;";
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.style.cssText = "position:absolute;left:0;top:0;width:100%;height:48px;";
  const cursor = document.createElement("div");
  cursor.className = "fastiot-timeline-cursor";
  cursor.style.cssText = "position:absolute;top:0;bottom:0;width:2px;background:#d32f2f;pointer-events:none;";
  const labels = document.createElement("div");
  labels.style.cssText =
    "position:absolute;left:4px;right:4px;bottom:1px;font:11px monospace;color:#555;display:flex;justify-content:space-between;";
  const first = document.createElement("span");
  const here = document.createElement("span");
  here.className = "fastiot-timeline-cursor-label";
  here.style.color = "#d32f2f";
  const last = document.createElement("span");
  labels.append(first, here, last);
  box.append(svg, cursor, labels);
  el.append(box);

  const span = () => Math.max(1, model.get("end_ms") - model.get("start_ms"));

  const drawStrip = () => {
    const rows = model.get("density") || [];
    svg.replaceChildren();
    const bins = rows.length ? rows[0].length : 0;
    if (!bins) return;
    svg.setAttribute("viewBox", `0 0 ${bins} ${rows.length}`);
    let top = 1;
    for (const row of rows) for (const c of row) top = Math.max(top, c);
    rows.forEach((row, g) => {
      row.forEach((count, i) => {
        if (!count) return;
        const h = Math.max(0.08, count / top);
        const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        bar.setAttribute("x", i);
        bar.setAttribute("y", g + 1 - h);
        bar.setAttribute("width", 1);
        bar.setAttribute("height", h);
        bar.setAttribute("fill", COLORS[g % COLORS.length]);
        svg.append(bar);
      });
    });
  };

  const place = () => {
    const x = (model.get("cursor_ms") - model.get("start_ms")) / span();
    cursor.style.left = `calc(${Math.min(1, Math.max(0, x)) * 100}% - 1px)`;
    first.textContent = utc(model.get("start_ms"));
    here.textContent = utc(model.get("cursor_ms"));
    last.textContent = utc(model.get("end_ms"));
  };

  let lastSent = 0;
  let timer = null;
  const send = () => {
    timer = null;
    lastSent = Date.now();
    model.save_changes();
  };
  const moveTo = (clientX, final) => {
    const rect = box.getBoundingClientRect();
    const px = Math.min(rect.width, Math.max(0, clientX - rect.left));
    // Within a few pixels of an end: the end itself (the first or the last message).
    const x = px <= SNAP_PX ? 0 : px >= rect.width - SNAP_PX ? 1 : px / Math.max(1, rect.width);
    model.set("cursor_ms", model.get("start_ms") + x * span());
    place();
    if (final || Date.now() - lastSent >= SEND_EVERY_MS) {
      if (timer) clearTimeout(timer);
      send();
    } else if (!timer) {
      timer = setTimeout(send, SEND_EVERY_MS);
    }
  };
  let dragging = false;
  const down = (e) => {
    dragging = true;
    box.setPointerCapture?.(e.pointerId);
    moveTo(e.clientX, false);
  };
  const move = (e) => dragging && moveTo(e.clientX, false);
  const up = (e) => {
    if (!dragging) return;
    dragging = false;
    moveTo(e.clientX, true);
  };
  box.addEventListener("pointerdown", down);
  box.addEventListener("pointermove", move);
  box.addEventListener("pointerup", up);

  model.on("change:density", drawStrip);
  model.on("change:cursor_ms", place);
  model.on("change:start_ms", () => (drawStrip(), place()));
  model.on("change:end_ms", () => (drawStrip(), place()));
  drawStrip();
  place();
  return () => {
    if (timer) clearTimeout(timer);
    model.off("change:density", drawStrip);
    model.off("change:cursor_ms", place);
  };
}

export default { render };
