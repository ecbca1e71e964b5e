// SubjectDetailView (widgets/subject_detail.py): the selected subject's statistics, headers, model,
// newest fields (changed ones marked, numeric ones with a plot button), a diff of two messages, and
// the recent messages decoded. Everything comes in the `detail` traitlet as plain data.

function node(tag, attrs = {}, ...children) {
  const elem = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") elem.className = value;
    else if (key === "title") elem.title = value;
    else elem.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    elem.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return elem;
}

const clock = (ms) => new Date(ms).toLocaleTimeString(undefined, { hour12: false }) + `.${String(ms % 1000).padStart(3, "0")}`;

function headersTable(headers) {
  const rows = Object.entries(headers || {}).map(([k, v]) => node("tr", {}, node("td", {}, k), node("td", {}, String(v))));
  return rows.length ? node("table", { class: "fsd-headers" }, ...rows) : node("div", { class: "fsd-muted" }, "no headers");
}

function render({ model, el }) {
  el.classList.add("fastiot-subject-detail");

  const draw = () => {
    const d = model.get("detail");
    el.replaceChildren();
    if (!d || !d.path) {
      el.append(node("div", { class: "fsd-muted" }, "Select a subject to see its messages, headers and what changed."));
      return;
    }
    const s = d.summary || {};
    if (d.kind === "folder") {
      el.append(
        node("h4", {}, `${d.path}.>`),
        node("div", { class: "fsd-muted" }, `${s.subjects} subjects · ${s.count.toLocaleString()} messages · ${s.rate}`),
      );
      return;
    }
    const seen = s.last_seen ? clock(s.last_seen) : "";
    el.append(
      node("h4", {}, d.mqtt ? d.mqtt.topic : d.path),
      ...(d.mqtt ? [node("div", { class: "fsd-muted" }, `MQTT · QoS ${d.mqtt.qos}${d.mqtt.retained ? " · retained" : ""} · NATS subject ${d.path}`)] : []),
      node("div", { class: "fsd-muted" }, `${s.count.toLocaleString()} messages · ${s.rate} · ${s.bytes.toLocaleString()} bytes · last at ${seen}`),
    );
    if (d.model) {
      el.append(
        node(
          "details",
          {},
          node("summary", {}, `Model ${d.model.name}: JSON schema`),
          node("pre", { class: "fsd-schema" }, d.model.schema),
        ),
      );
    }
    if (d.services && d.services.length) {
      el.append(node("div", { class: "fsd-muted" }, `Used by services: ${d.services.join(", ")}`));
    }
    el.append(node("details", { open: "" }, node("summary", {}, "NATS headers"), headersTable(d.headers)));

    if (d.fields && d.fields.length) {
      const rows = d.fields.map((f) => {
        let plot = null;
        if (f.numeric) {
          plot = node("button", { title: `Plot ${f.path} live` }, "plot");
          plot.addEventListener("click", () => model.send({ type: "plot", field: f.path }));
        }
        return node("tr", { class: f.changed ? "fsd-changed" : "" }, node("td", {}, f.path), node("td", {}, f.value), node("td", {}, plot));
      });
      el.append(node("details", { open: "" }, node("summary", {}, "Newest fields (changed ones marked)"), node("table", { class: "fsd-fields" }, ...rows)));
    }

    if (d.diff) {
      const rows = d.diff.changes.map((c) =>
        node("tr", { class: `fsd-${c.change}` }, node("td", {}, c.path), node("td", {}, c.old), node("td", {}, c.new)),
      );
      const head = node("tr", {}, node("th", {}, "field"), node("th", {}, `#${d.diff.a} ${clock(d.diff.a_time)}`), node("th", {}, `#${d.diff.b} ${clock(d.diff.b_time)}`));
      el.append(
        node(
          "details",
          { open: "" },
          node("summary", {}, `Diff #${d.diff.a} → #${d.diff.b}: ${d.diff.changes.length} changed`),
          d.diff.changes.length ? node("table", { class: "fsd-diff" }, head, ...rows) : node("div", { class: "fsd-muted" }, "no field changed"),
        ),
      );
    }

    const pair = model.get("diff_pair");
    const pick = (slot, index) => {
      const next = pair.slice();
      next[slot] = index;
      model.send({ type: "diff", pair: next });
    };
    const items = (d.messages || []).map((m) => {
      const a = node("button", { title: "Diff from this message" }, pair[0] === m.index ? "● A" : "A");
      const b = node("button", { title: "Diff to this message" }, pair[1] === m.index ? "● B" : "B");
      a.addEventListener("click", () => pick(0, m.index));
      b.addEventListener("click", () => pick(1, m.index));
      return node(
        "div",
        { class: "fsd-message" },
        node(
          "div",
          { class: "fsd-muted" },
          `#${m.index} ${clock(m.time)} · ${m.size.toLocaleString()} bytes `,
          node("span", { class: "fsd-kind" }, m.decoder),
          " ",
          a,
          b,
        ),
        m.note ? node("div", { class: "fsd-muted" }, m.note) : null,
        m.headers ? headersTable(m.headers) : null,
        node("pre", { class: m.error ? "fsd-error" : "" }, m.text),
        m.hex ? node("pre", { class: "fsd-muted" }, m.hex) : null,
      );
    });
    el.append(node("details", { open: "" }, node("summary", {}, `Last ${items.length} messages, newest first`), ...items));
  };

  model.on("change:detail", draw);
  model.on("change:diff_pair", draw);
  draw();
  return () => {
    model.off("change:detail", draw);
    model.off("change:diff_pair", draw);
  };
}

export default { render };
