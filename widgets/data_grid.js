// DataGrid's view (anywidget ES module, no build step): a virtualized grid whose rows come from the kernel.
//
// The view draws only the rows on screen. It asks the kernel for a window of row positions
// ({type: "window"}); the kernel answers ({type: "rows"}) with the ids of the rows in that window and
// the cells of the ids this view does not have yet, and pushes the same when the data changes.
// Sorting, filtering and column widths are traitlets the view sets; the kernel sorts and filters.

const OVERSCAN = 20; // rows asked for beyond the screen, so short scrolls need no round trip
const MAX_SPACE_PX = 8000000; // browsers cap element heights; taller grids scroll proportionally
const FILTER_DELAY_MS = 300;
const DEFAULT_WIDTHS = { number: 90, time: 110, bool: 64, text: 150 };
const WIDE_COLUMNS = { subject: 260, error: 260, raw: 220 };

function div(className) {
  const element = document.createElement("div");
  element.className = className;
  return element;
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

function render({ model, el }) {
  const viewId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const root = div("fastiot-grid");
  const scroller = div("fg-scroll");
  const head = div("fg-head");
  const labels = div("fg-row fg-labels");
  const filterRow = div("fg-row fg-filters");
  const space = div("fg-space");
  const body = div("fg-body");
  const empty = div("fg-empty");
  const foot = div("fg-foot");
  head.append(labels, filterRow);
  space.append(body);
  scroller.append(head, space, empty);
  root.append(scroller, foot);
  el.append(root);

  let cache = new Map(); // row id -> cell texts
  let ids = []; // the ids of rows start .. start + ids.length
  let start = 0;
  let count = model.get("row_count");
  let layout = -1;
  let requested = null; // [start, stop) last asked for
  let ratio = 1;
  const filterTimers = new Map();
  let rowElements = [];

  const columns = () => model.get("columns");

  function widthOf(name) {
    const set = model.get("column_widths")[name];
    if (typeof set === "number" && set > 0) return set;
    return WIDE_COLUMNS[name] ?? DEFAULT_WIDTHS[model.get("column_kinds")[name]] ?? DEFAULT_WIDTHS.text;
  }

  function applyWidths() {
    let total = 0;
    columns().forEach((name, i) => {
      const width = widthOf(name);
      root.style.setProperty(`--fg-w${i}`, `${width}px`);
      total += width;
    });
    root.style.setProperty("--fg-total", `${total}px`);
  }

  function cellClass(name) {
    return `fg-cell fg-${model.get("column_kinds")[name] ?? "text"}`;
  }

  function buildHead() {
    labels.replaceChildren();
    filterRow.replaceChildren();
    const filters = model.get("filters");
    columns().forEach((name, i) => {
      const label = div(`${cellClass(name)} fg-label`);
      label.style.width = `var(--fg-w${i})`;
      const text = document.createElement("span");
      text.className = "fg-name";
      text.textContent = name;
      text.title = `${name}: click to sort`;
      const arrow = document.createElement("span");
      arrow.className = "fg-sort";
      const handle = div("fg-resize");
      handle.title = "drag to resize";
      label.append(text, arrow, handle);
      text.addEventListener("click", () => cycleSort(name));
      arrow.addEventListener("click", () => cycleSort(name));
      handle.addEventListener("pointerdown", (event) => startResize(event, name, i, handle));
      labels.append(label);

      const cell = div("fg-cell fg-filter");
      cell.style.width = `var(--fg-w${i})`;
      const input = document.createElement("input");
      input.type = "text";
      input.placeholder = model.get("column_kinds")[name] === "number" ? ">20, 1..5" : "filter";
      input.value = filters[name] ?? "";
      input.dataset.column = name;
      input.addEventListener("input", () => {
        clearTimeout(filterTimers.get(name));
        filterTimers.set(
          name,
          setTimeout(() => {
            model.set("filters", { ...model.get("filters"), [name]: input.value });
            model.save_changes();
          }, FILTER_DELAY_MS),
        );
      });
      cell.append(input);
      filterRow.append(cell);
    });
    showSort();
  }

  function showSort() {
    const by = model.get("sort_column");
    const arrow = model.get("sort_descending") ? " \u25bc" : " \u25b2";
    labels.querySelectorAll(".fg-label").forEach((label, i) => {
      const on = columns()[i] === by;
      label.classList.toggle("fg-sorted", on);
      label.querySelector(".fg-sort").textContent = on ? arrow : "";
    });
  }

  function cycleSort(name) {
    if (model.get("sort_column") !== name) {
      model.set("sort_column", name);
      model.set("sort_descending", false);
    } else if (!model.get("sort_descending")) {
      model.set("sort_descending", true);
    } else {
      model.set("sort_column", "");
      model.set("sort_descending", false);
    }
    model.save_changes();
  }

  function startResize(event, name, i, handle) {
    event.preventDefault();
    event.stopPropagation();
    const startX = event.clientX;
    const startWidth = widthOf(name);
    handle.setPointerCapture(event.pointerId);
    let width = startWidth;
    const move = (e) => {
      width = Math.max(32, Math.round(startWidth + e.clientX - startX));
      root.style.setProperty(`--fg-w${i}`, `${width}px`);
    };
    const up = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      model.set("column_widths", { ...model.get("column_widths"), [name]: width });
      model.save_changes();
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
  }

  function geometry() {
    const rowHeight = model.get("row_height");
    const bodyHeight = Math.max(rowHeight, scroller.clientHeight - head.offsetHeight);
    const total = count * rowHeight;
    const height = Math.min(total, MAX_SPACE_PX);
    ratio = total > bodyHeight && height > bodyHeight ? (total - bodyHeight) / (height - bodyHeight) : 1;
    return { rowHeight, bodyHeight, height };
  }

  function rowElement() {
    const row = div("fg-row fg-data");
    row.addEventListener("click", () => {
      const id = Number(row.dataset.id);
      if (!Number.isNaN(id)) {
        model.set("selected_id", id);
        model.save_changes();
      }
    });
    return row;
  }

  function draw() {
    const { rowHeight, bodyHeight, height } = geometry();
    space.style.height = `${height}px`;
    const scrolled = scroller.scrollTop;
    const exact = (scrolled * ratio) / rowHeight;
    const first = Math.max(0, Math.floor(exact));
    const visible = Math.min(Math.ceil(bodyHeight / rowHeight) + 1, Math.max(0, count - first));
    body.style.transform = `translateY(${scrolled - (exact - first) * rowHeight}px)`;
    const names = columns();
    while (rowElements.length < visible) rowElements.push(rowElement());
    rowElements.length = Math.max(visible, 0);
    const selected = model.get("selected_id");
    rowElements.forEach((row, k) => {
      const position = first + k;
      const id = position >= start && position < start + ids.length ? ids[position - start] : undefined;
      const values = id === undefined ? undefined : cache.get(id);
      row.dataset.id = id === undefined ? "" : String(id);
      if (row.style.height !== `${rowHeight}px`) {
        row.style.height = `${rowHeight}px`;
        row.style.lineHeight = `${rowHeight}px`;
      }
      row.classList.toggle("fg-loading", values === undefined);
      row.classList.toggle("fg-selected", id !== undefined && id === selected);
      row.classList.toggle("fg-odd", position % 2 === 1);
      if (row.childElementCount !== names.length) {
        row.replaceChildren(
          ...names.map((name, i) => {
            const cell = div(cellClass(name));
            cell.style.width = `var(--fg-w${i})`;
            return cell;
          }),
        );
      }
      names.forEach((_name, i) => {
        const text = values === undefined ? "" : values[i] ?? "";
        const cell = row.children[i];
        if (cell.textContent !== text) {
          cell.textContent = text;
          cell.title = text.length > 12 ? text : "";
        }
      });
    });
    body.replaceChildren(...rowElements);
    empty.textContent = count === 0 ? model.get("placeholder") : "";
    empty.style.display = count === 0 ? "" : "none";
    const total = model.get("total_rows");
    let text = count === total ? plural(total, "row") : `${count.toLocaleString()} of ${plural(total, "row")}`;
    const by = model.get("sort_column");
    if (by) text += `, sorted by ${by}${model.get("sort_descending") ? " (descending)" : ""}`;
    foot.textContent = text;
    const problem = model.get("filter_error");
    if (problem) {
      const error = document.createElement("span");
      error.className = "fg-error";
      error.textContent = ` \u2014 ${problem}`;
      foot.append(error);
    }
    ask(first, visible);
  }

  function ask(first, visible, reset = false) {
    const have = requested !== null && first >= requested[0] && first + visible <= requested[1];
    if (have && !reset) return;
    const from = Math.max(0, first - OVERSCAN);
    requested = [from, first + visible + OVERSCAN];
    model.send({ type: "window", view: viewId, start: requested[0], stop: requested[1], reset });
  }

  let drawQueued = false;
  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      draw();
    });
  }

  function onMessage(msg) {
    if (!msg || msg.type !== "rows" || msg.view !== viewId) return;
    if (msg.reset || msg.layout !== layout) {
      cache = new Map();
      layout = msg.layout;
    }
    for (const [id, ...values] of msg.rows) cache.set(id, values);
    const keep = new Set(msg.ids);
    for (const id of cache.keys()) if (!keep.has(id)) cache.delete(id);
    ids = msg.ids;
    start = msg.start;
    count = msg.count;
    if (msg.shift) {
      // Rows arrived above the ones shown: scroll with them, so what the person reads stays put.
      geometry();
      if (requested !== null) requested = [requested[0] + msg.shift, requested[1] + msg.shift];
      scroller.scrollTop += (msg.shift * model.get("row_height")) / ratio;
    }
    queueDraw();
  }

  function onOrder() {
    showSort();
    scroller.scrollTop = 0;
    requested = [0, 0];
    queueDraw();
  }

  function onColumns() {
    applyWidths();
    buildHead();
    queueDraw();
  }

  model.on("msg:custom", onMessage);
  model.on("change:columns", onColumns);
  model.on("change:column_kinds", onColumns);
  model.on("change:column_widths", applyWidths);
  model.on("change:sort_column", onOrder);
  model.on("change:sort_descending", onOrder);
  model.on("change:filters", () => {
    for (const input of filterRow.querySelectorAll("input")) {
      const value = model.get("filters")[input.dataset.column] ?? "";
      if (document.activeElement !== input && input.value !== value) input.value = value;
    }
    onOrder();
  });
  model.on("change:row_count", () => {
    count = model.get("row_count");
    queueDraw();
  });
  for (const name of ["change:total_rows", "change:filter_error", "change:selected_id", "change:row_height"]) {
    model.on(name, queueDraw);
  }
  const setHeight = () => {
    scroller.style.height = model.get("height");
  };
  model.on("change:height", () => {
    setHeight();
    queueDraw();
  });
  scroller.addEventListener("scroll", queueDraw, { passive: true });
  const resized = new ResizeObserver(queueDraw);
  resized.observe(scroller);

  setHeight();
  onColumns();
  requestAnimationFrame(() => {
    const { rowHeight, bodyHeight } = geometry();
    ask(0, Math.ceil(bodyHeight / rowHeight) + 1, true);
  });

  return () => {
    resized.disconnect();
    for (const timer of filterTimers.values()) clearTimeout(timer);
    model.off("msg:custom", onMessage);
    model.send({ type: "bye", view: viewId });
  };
}

export default { render };
