// CopyButton (widgets/_code.py): the "Copy as code" button.
//
// A click first makes the notebook cell this button is shown in the active cell (a button inside
// an output does not do that by itself), so JupyterLab's "insert cell below" puts the code right
// below it; then it asks Python for the code.

function activateOwnCell(el) {
  const cell = el.closest(".jp-Cell");
  const prompt = cell && cell.querySelector(".jp-InputPrompt");
  if (!prompt) return false; // not in a JupyterLab notebook
  for (const type of ["mousedown", "mouseup"]) {
    prompt.dispatchEvent(new MouseEvent(type, { bubbles: true, cancelable: true, button: 0 }));
  }
  return true;
}

function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button";
  button.style.width = "auto"; // the label decides: "Copy record code" does not fit the default 148 px
  const icon = document.createElement("i");
  icon.className = "fa fa-code";
  const label = document.createElement("span");
  button.append(icon, label);
  const show = () => {
    label.textContent = ` ${model.get("description")}`;
    button.title = model.get("tooltip");
    button.disabled = model.get("disabled");
  };
  button.addEventListener("click", () => {
    const inNotebook = activateOwnCell(el);
    model.send({ type: "click", in_notebook: inNotebook });
  });
  model.on("change:description", show);
  model.on("change:tooltip", show);
  model.on("change:disabled", show);
  show();
  el.append(button);
  return () => {
    model.off("change:description", show);
    model.off("change:tooltip", show);
    model.off("change:disabled", show);
  };
}

export default { render };
