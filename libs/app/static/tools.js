// The page's painting tools: brush and eraser (with a cursor showing their size), polygon, and a box
// (GrabCut on the server gives the object's mask) refined by + / - hint strokes. Loaded before app.js.
"use strict";

function pixel(event) {
  const r = view.getBoundingClientRect();
  const scale = Math.min(r.width / view.width, r.height / view.height);     // object-fit: contain
  const left = r.left + (r.width - view.width * scale) / 2, top = r.top + (r.height - view.height * scale) / 2;
  return [(event.clientX - left) / scale, (event.clientY - top) / scale, scale];
}

function remember() {
  state.undo.push(state.labels.slice());
  if (state.undo.length > 30) state.undo.shift();
}

function stamp(x, y) {
  const { width, height } = state.info;
  const r = state.size / 2, value = state.tool === "eraser" ? 0 : state.obj;
  for (let yy = Math.max(0, Math.floor(y - r)); yy <= Math.min(height - 1, Math.ceil(y + r)); yy++) {
    for (let xx = Math.max(0, Math.floor(x - r)); xx <= Math.min(width - 1, Math.ceil(x + r)); xx++) {
      if ((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= r * r) state.labels[yy * width + xx] = value;
    }
  }
}

function strokeTo(x, y) {
  const [x0, y0] = state.last;
  const steps = Math.max(1, Math.ceil(Math.hypot(x - x0, y - y0) / Math.max(1, state.size / 4)));
  for (let i = 1; i <= steps; i++) stamp(x0 + (x - x0) * i / steps, y0 + (y - y0) * i / steps);
  state.last = [x, y];
}

function fillPolygon() {
  const pts = state.polygon;
  state.polygon = [];
  if (pts.length < 3) { render(); return; }
  const { width, height } = state.info;
  const off = document.createElement("canvas");
  off.width = width; off.height = height;
  const c = off.getContext("2d");
  c.beginPath();
  pts.forEach(([x, y], i) => (i ? c.lineTo(x, y) : c.moveTo(x, y)));
  c.closePath();
  c.fill();
  const alpha = c.getImageData(0, 0, width, height).data;
  remember();
  for (let i = 0; i < state.labels.length; i++) if (alpha[4 * i + 3] >= 128) state.labels[i] = state.obj;
  painted();
}

function painted() {
  state.dirty = true;
  clearError();
  render();
}

// ---------------------------------------------------------------- box + hints -> GrabCut
async function grabcut() {
  if (!state.box) { say("Draw a box around the object first (Box tool), then add + / - hints.", "error"); return; }
  const body = JSON.stringify({ t: state.t, box: state.box, fg: state.hints.fg, bg: state.hints.bg,
    radius: Math.max(2, state.size / 2) });
  say("Finding the object in the box...", "info");
  const response = await api("grabcut", { method: "POST", body, headers: { "Content-Type": "application/json" } });
  const inside = new Uint8Array(await response.arrayBuffer());
  remember();
  const labels = state.labels, obj = state.obj;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === obj) labels[i] = 0;
    if (inside[i] && labels[i] === 0) labels[i] = obj;
  }
  painted();
  say(`Object ${obj} from the box. Refine it with the brush or + / - hints, then propagate.`, "info");
}

function drawGuides() {
  ctx.save();
  ctx.lineWidth = Math.max(1, view.width / 400);
  if (state.box && (state.tool === "box" || state.tool === "fg" || state.tool === "bg")) {
    const [x0, y0, x1, y1] = state.box;
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = "#ffeb3b";
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.setLineDash([]);
  }
  for (const [kind, colour] of [["fg", "#00e676"], ["bg", "#ff1744"]]) {
    ctx.fillStyle = colour;
    for (const [x, y] of state.hints[kind]) ctx.fillRect(x - 1, y - 1, 3, 3);
  }
  const pts = state.polygon;
  if (pts.length) {
    ctx.strokeStyle = css(state.obj);
    ctx.fillStyle = css(state.obj);
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    for (const [x, y] of pts) ctx.fillRect(x - 2, y - 2, 4, 4);
  }
  ctx.restore();
}

// ---------------------------------------------------------------- pointer
function onDown(event) {
  if (!state.base || state.info.running) return;
  const [x, y] = pixel(event);
  if (state.tool === "polygon") {
    const first = state.polygon[0];
    const near = first && Math.hypot(x - first[0], y - first[1]) < Math.max(4, view.width / 80);
    if (near && state.polygon.length >= 3) fillPolygon();
    else { state.polygon.push([x, y]); render(); }
    return;
  }
  view.setPointerCapture(event.pointerId);
  state.drawing = true;
  state.last = [x, y];
  if (state.tool === "box") { state.box = [x, y, x, y]; state.hints = { fg: [], bg: [] }; render(); return; }
  if (state.tool === "fg" || state.tool === "bg") { state.hints[state.tool].push([x, y]); render(); return; }
  remember();
  stamp(x, y);
  painted();
}

function onMove(event) {
  const [x, y, scale] = pixel(event);
  moveCursor(event, scale);
  if (!state.drawing) return;
  if (state.tool === "box") state.box = [state.box[0], state.box[1], x, y];
  else if (state.tool === "fg" || state.tool === "bg") state.hints[state.tool].push([Math.round(x), Math.round(y)]);
  else strokeTo(x, y);
  render();
}

function onUp() {
  if (!state.drawing) return;
  state.drawing = false;
  if (state.tool === "box" || state.tool === "fg" || state.tool === "bg") guarded(grabcut);
}

function moveCursor(event, scale) {
  const cursor = $("cursor");
  const shown = ["brush", "eraser"].includes(state.tool) && state.base;
  cursor.hidden = !shown;
  if (!shown) return;
  const d = state.size * scale, stage = $("stage").getBoundingClientRect();
  Object.assign(cursor.style, { width: `${d}px`, height: `${d}px`,
    left: `${event.clientX - stage.left - d / 2}px`, top: `${event.clientY - stage.top - d / 2}px` });
}

function undo() {
  if (state.polygon.length) { state.polygon.pop(); render(); return; }
  const previous = state.undo.pop();
  if (!previous) { say("Nothing to undo on this frame.", "info"); return; }
  state.labels = previous;
  painted();
}

function setTool(tool) {
  state.tool = tool;
  state.polygon = [];
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
  render();
}

function wireTools() {
  document.querySelectorAll(".tool").forEach((b) => { b.onclick = () => setTool(b.dataset.tool); });
  view.addEventListener("pointerdown", onDown);
  view.addEventListener("pointermove", onMove);
  view.addEventListener("pointerup", onUp);
  view.addEventListener("pointerleave", () => { $("cursor").hidden = true; });
  view.addEventListener("dblclick", () => { if (state.tool === "polygon") fillPolygon(); });
}
