// SubjectTreeView (widgets/subject_tree.py): a virtualized tree of subjects.
//
// Only the rows in view exist in the DOM; the scroller tells Python which rows it shows (with some
// overscan) and Python sends just those rows, and of them only the ones that changed, with the total
// row count. Relative times tick here, once a second.
//
// What a person does goes to Python as messages (model.send), not as traitlet changes: ipywidgets
// holds back traitlet updates while an earlier one awaits the kernel's "idle", which can stall them.

const ROW_HEIGHT = 22;
const OVERSCAN = 20;
const FLASH_MS = 600;
const SORTS = [
  ["name", "Subject"],
  ["count", "Messages"],
  ["rate", "Rate"],
  ["last_seen", "Last seen"],
];

const CSS = `
.fastiot-subject-tree { font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 13px); border: 1px solid var(--jp-border-color2, #ddd);
  position: relative; }
.fastiot-subject-tree .fst-head, .fastiot-subject-tree .fst-row { display: grid;
  grid-template-columns: minmax(14em, 2.2fr) 6.5em 6.5em 6.5em minmax(6em, 1.6fr);
  column-gap: 8px; align-items: center; padding: 0 6px; white-space: nowrap; }
.fastiot-subject-tree .fst-head { height: 24px; background: var(--jp-layout-color2, #f3f3f3);
  border-bottom: 1px solid var(--jp-border-color2, #ddd); font-weight: 600; user-select: none; }
.fastiot-subject-tree .fst-head span { cursor: pointer; overflow: hidden; text-overflow: ellipsis; }
.fastiot-subject-tree .fst-head span.fst-sorted { color: var(--jp-brand-color1, #1565c0); }
.fastiot-subject-tree .fst-scroller { overflow-y: auto; position: relative; }
.fastiot-subject-tree .fst-row { position: absolute; left: 0; right: 0; height: ${ROW_HEIGHT}px;
  cursor: pointer; box-sizing: border-box; }
.fastiot-subject-tree .fst-row:hover { background: var(--jp-layout-color2, #f5f5f5); }
.fastiot-subject-tree .fst-row.fst-selected { background: var(--jp-brand-color3, #bbdefb);
  box-shadow: inset 3px 0 0 var(--jp-brand-color1, #1565c0); }
.fastiot-subject-tree .fst-row.fst-flash > .fst-count,
.fastiot-subject-tree .fst-row.fst-flash > .fst-value { animation: fst-flash ${FLASH_MS}ms ease-out; }
@keyframes fst-flash { from { background: #fff9c4; } to { background: transparent; } }
.fastiot-subject-tree .fst-name, .fastiot-subject-tree .fst-value { overflow: hidden;
  text-overflow: ellipsis; }
.fastiot-subject-tree .fst-caret { display: inline-block; width: 1.1em; color: var(--jp-ui-font-color2, #757575); }
.fastiot-subject-tree .fst-num { text-align: right; }
.fastiot-subject-tree .fst-value { color: var(--jp-ui-font-color2, #616161); }
.fastiot-subject-tree .fst-folder .fst-token { font-weight: 600; }
.fastiot-subject-tree .fst-note { position: absolute; top: 30px; left: 12px;
  color: var(--jp-ui-font-color2, #757575); pointer-events: none; }
.fastiot-subject-tree .fst-paused { position: absolute; top: 2px; right: 8px; font-weight: 600;
  color: #ef6c00; pointer-events: none; }
`;

// The Python twin is describe_age() in widgets/subject_tree.py.
function describeAge(seconds) {
  if (seconds < 1) return "now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function render({ model, el }) {
  if (!document.getElementById("fastiot-subject-tree-css")) {
    const style = document.createElement("style");
    style.id = "fastiot-subject-tree-css";
    style.textContent = CSS;
    document.head.append(style);
  }
  el.classList.add("fastiot-subject-tree");
  const head = document.createElement("div");
  head.className = "fst-head";
  const scroller = document.createElement("div");
  scroller.className = "fst-scroller";
  const spacer = document.createElement("div");
  const note = document.createElement("div");
  note.className = "fst-note";
  const pausedMark = document.createElement("div");
  pausedMark.className = "fst-paused";
  pausedMark.textContent = "paused";
  scroller.append(spacer);
  el.append(head, scroller, note, pausedMark);

  const rows = new Map(); // row index -> wire row [path, token, depth, flags, count, rate, seenMs, value, subjects]
  const drawn = new Map(); // row index -> element
  const flashes = new Map(); // path -> time the flash started
  let total = 0;
  let clockOffset = 0; // kernel clock minus browser clock, in ms
  let requested = [-1, -1];

  for (const [key, label] of SORTS.concat([["", "Last value"]])) {
    const span = document.createElement("span");
    span.textContent = label;
    span.dataset.sort = key;
    if (key) {
      span.title = key === "name" ? "Sort by subject" : `Sort by ${label.toLowerCase()}, highest first`;
      span.addEventListener("click", () => model.send({ type: "sort", key }));
    }
    if (key && key !== "name") span.classList.add("fst-num");
    head.append(span);
  }
  const showSort = () => {
    for (const span of head.children) {
      span.classList.toggle("fst-sorted", span.dataset.sort === model.get("sort_by"));
    }
  };

  const fill = (elem, i, row) => {
    const [path, token, depth, flags, count, rate, seenMs, value] = row;
    const folder = (flags & 1) !== 0;
    const open = (flags & 4) !== 0;
    elem.dataset.path = path;
    elem.dataset.index = String(i);
    elem.style.top = `${i * ROW_HEIGHT}px`;
    elem.classList.toggle("fst-folder", folder);
    elem.classList.toggle("fst-selected", path === model.get("selected"));
    const [name, countCell, rateCell, seenCell, valueCell] = elem.children;
    name.style.paddingLeft = `${depth * 14}px`;
    name.firstChild.textContent = folder ? (open ? "▾" : "▸") : "·";
    name.lastChild.textContent = token;
    name.title = path;
    countCell.textContent = count.toLocaleString();
    rateCell.textContent = rate;
    seenCell.dataset.seen = String(seenMs);
    seenCell.textContent = seenMs ? describeAge((Date.now() + clockOffset - seenMs) / 1000) : "";
    valueCell.textContent = value;
    valueCell.title = value;
    const flashed = flashes.get(path);
    if (flashed !== undefined && Date.now() - flashed < FLASH_MS) {
      elem.classList.remove("fst-flash");
      void elem.offsetWidth; // restart the animation
      elem.classList.add("fst-flash");
    }
  };

  const makeRow = () => {
    const elem = document.createElement("div");
    elem.className = "fst-row";
    const name = document.createElement("span");
    name.className = "fst-name";
    const caret = document.createElement("span");
    caret.className = "fst-caret";
    const tokenSpan = document.createElement("span");
    tokenSpan.className = "fst-token";
    name.append(caret, tokenSpan);
    const cells = ["fst-num fst-count", "fst-num", "fst-num", "fst-value"].map((cls) => {
      const span = document.createElement("span");
      span.className = cls;
      return span;
    });
    elem.append(name, ...cells);
    caret.addEventListener("click", (event) => {
      event.stopPropagation();
      model.send({ type: "toggle", path: elem.dataset.path });
    });
    elem.addEventListener("click", () => model.send({ type: "select", path: elem.dataset.path }));
    elem.addEventListener("dblclick", () => model.send({ type: "toggle", path: elem.dataset.path }));
    return elem;
  };

  // The rows in view, by the scroll position and the tree's height (known before it is attached).
  const inView = () => {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_HEIGHT));
    const height = scroller.clientHeight || model.get("height");
    return [first, first + Math.ceil(height / ROW_HEIGHT) + 1];
  };
  const visibleRange = () => {
    const [first, stop] = inView();
    return [first, Math.min(total, stop)];
  };

  const askForRows = () => {
    const [first, stop] = inView();
    // Ask again only when the rows in view leave what was asked for (overscan absorbs small scrolls).
    if (first >= requested[0] && stop <= requested[1]) return;
    const start = Math.max(0, first - OVERSCAN);
    const end = stop + OVERSCAN;
    requested = [start, end];
    model.send({ type: "viewport", start, stop: end });
  };

  const draw = () => {
    const [first, stop] = visibleRange();
    for (const [i, elem] of drawn) {
      if (i < first || i >= stop || !rows.has(i)) {
        elem.remove();
        drawn.delete(i);
      }
    }
    for (let i = first; i < stop; i++) {
      const row = rows.get(i);
      if (row === undefined) continue;
      let elem = drawn.get(i);
      if (elem === undefined) {
        elem = makeRow();
        drawn.set(i, elem);
        scroller.append(elem);
      }
      fill(elem, i, row);
    }
    note.textContent = total === 0 ? model.get("empty_text") : "";
  };

  let scheduled = false;
  const onScroll = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      draw();
      askForRows();
    });
  };
  scroller.addEventListener("scroll", onScroll);

  const onMessage = (msg) => {
    if (msg.type === "rows") {
      if (msg.reset) rows.clear();
      total = msg.total;
      clockOffset = msg.now - Date.now();
      spacer.style.height = `${total * ROW_HEIGHT}px`;
      for (const [i, row] of msg.rows) rows.set(i, row);
      const [start, end] = requested;
      for (const i of rows.keys()) if (i < start || i >= end || i >= total) rows.delete(i);
      const now = Date.now();
      for (const path of msg.flash) flashes.set(path, now);
      for (const [path, at] of flashes) if (now - at > FLASH_MS) flashes.delete(path);
      draw();
      askForRows();
    } else if (msg.type === "scroll") {
      const top = msg.index * ROW_HEIGHT;
      if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) {
        scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 3);
      }
    }
  };
  model.on("msg:custom", onMessage);

  const onHeight = () => {
    scroller.style.height = `${model.get("height")}px`;
    onScroll();
  };
  const onSelected = () => {
    for (const elem of drawn.values()) {
      elem.classList.toggle("fst-selected", elem.dataset.path === model.get("selected"));
    }
  };
  const onPaused = () => {
    pausedMark.style.display = model.get("paused") ? "" : "none";
  };
  model.on("change:height", onHeight);
  model.on("change:selected", onSelected);
  model.on("change:sort_by", showSort);
  model.on("change:paused", onPaused);
  onHeight();
  showSort();
  onPaused();

  // Relative times age here, without any message.
  const ticker = setInterval(() => {
    const now = Date.now() + clockOffset;
    for (const elem of drawn.values()) {
      const cell = elem.children[3];
      const seen = Number(cell.dataset.seen);
      if (seen) cell.textContent = describeAge((now - seen) / 1000);
    }
  }, 1000);

  // A new view (a reload, a second output of the same widget) needs every row of its window.
  requested = [-1, -1];
  askForRows();
  model.send({ type: "hello" });

  return () => {
    clearInterval(ticker);
    scroller.removeEventListener("scroll", onScroll);
    model.off("msg:custom", onMessage);
    model.off("change:height", onHeight);
    model.off("change:selected", onSelected);
    model.off("change:sort_by", showSort);
    model.off("change:paused", onPaused);
  };
}

export default { render };
