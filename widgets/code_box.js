// CodeBox (widgets/_code.py): generated code in a read-only text box, with a Copy button.
// New code is also put on the clipboard at once where the browser allows it (shortly after the click
// that asked for it); `copied` tells Python whether that worked.

async function writeClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_e) {
    return false; // no permission, no focus, or not a secure context: the Copy button remains
  }
}

function render({ model, el }) {
  el.classList.add("fastiot-code-box");
  const area = document.createElement("textarea");
  area.readOnly = true;
  area.spellcheck = false;
  area.style.cssText =
    "width:100%;box-sizing:border-box;font-family:var(--jp-code-font-family,monospace);" +
    "font-size:var(--jp-code-font-size,13px);background:var(--jp-layout-color2,#f5f5f5);" +
    "color:var(--jp-content-font-color1,#212121);border:1px solid var(--jp-border-color2,#ccc);padding:4px";
  const bar = document.createElement("div");
  bar.style.cssText = "display:flex;gap:8px;align-items:center;margin-top:2px;font-size:90%";
  const button = document.createElement("button");
  button.className = "jupyter-button";
  button.textContent = "Copy";
  const note = document.createElement("span");
  note.style.color = "var(--jp-ui-font-color2,#757575)";
  bar.append(button, note);
  el.append(area, bar);

  const setCopied = (ok) => {
    note.textContent = ok
      ? "copied to the clipboard: paste it into a cell"
      : "no notebook answered: copy this into a cell";
    if (model.get("copied") !== ok) {
      model.set("copied", ok);
      model.save_changes();
    }
  };
  const show = async () => {
    const code = model.get("code");
    area.value = code;
    area.rows = Math.min(20, Math.max(2, code.split("\n").length));
    if (code) setCopied(await writeClipboard(code));
  };
  button.addEventListener("click", async () => {
    area.select();
    setCopied(await writeClipboard(area.value));
  });
  model.on("change:code", show);
  show();
  return () => model.off("change:code", show);
}

export default { render };
