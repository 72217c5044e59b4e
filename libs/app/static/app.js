// The page of demo/app.py: open a video, paint masks on a canvas, propagate, correct, export.
// Every browser tab asks the server for its own session; labels travel as raw bytes (one a pixel).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  sid: null, config: null, info: { open: false }, t: 0,
  frame: null, base: null, labels: null, hasMask: false, dirty: false,
  undo: [], tool: "brush", size: 12, obj: 1, objects: [1],
  polygon: [], drawing: false, last: null, polling: null,
};
const view = $("view");
const ctx = view.getContext("2d");

function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = text ? (kind || "info") : "";
}

async function api(path, options) {
  const response = await fetch(`/api/${state.sid}/${path}`, options);
  if (!response.ok) {
    let text = `request failed (HTTP ${response.status})`;
    try { text = (await response.json()).error || text; } catch (err) { /* not JSON */ }
    throw new Error(text);
  }
  return response;
}

async function guarded(work) {
  try { return await work(); } catch (err) { say(err.message, "error"); return undefined; }
}

function colour(id) {
  const p = state.config.palette;
  return [p[3 * id], p[3 * id + 1], p[3 * id + 2]];
}

function css(id) { const [r, g, b] = colour(id); return `rgb(${r},${g},${b})`; }

// ---------------------------------------------------------------- video and frames
async function upload(file) {
  // a file over the limit is not sent: the server refuses it from its declared size (and logs it)
  const tooBig = file.size > state.config.max_upload_mb * 1024 * 1024;
  say(`Uploading ${file.name}...`, "info");
  const query = `name=${encodeURIComponent(file.name)}&size=${file.size}`;
  const response = await api(`upload?${query}`, { method: "POST", body: tooBig ? null : file });
  await opened(await response.json());
}

async function openPath() {
  const body = JSON.stringify({ path: $("path").value });
  const response = await api("open", { method: "POST", body, headers: { "Content-Type": "application/json" } });
  await opened(await response.json());
}

async function opened(info) {
  state.info = info;
  state.dirty = false;
  state.objects = [1];
  state.obj = 1;
  $("slider").max = info.frames - 1;
  $("video-info").textContent = `${info.name}: ${info.frames} frames, ${info.width}x${info.height}`;
  await showFrame(0, true);
  drawObjects();
  say(`Opened ${info.name}. Paint each object on a frame, then propagate.`, "info");
}

async function showFrame(t, force) {
  if (!state.info.open) return;
  t = Math.max(0, Math.min(state.info.frames - 1, t));
  if (t === state.t && !force) return;
  if (state.dirty && !(await saveMask())) { $("slider").value = state.t; return; }
  const image = new Image();
  image.src = `/api/${state.sid}/frame/${t}`;
  await image.decode();
  const response = await api(`mask/${t}`);
  const bytes = response.status === 204 ? null : new Uint8Array(await response.arrayBuffer());
  const { width, height } = state.info;
  view.width = width; view.height = height;
  ctx.drawImage(image, 0, 0);
  state.base = ctx.getImageData(0, 0, width, height);
  state.labels = bytes || new Uint8Array(width * height);
  state.hasMask = bytes !== null;
  Object.assign(state, { t, dirty: false, undo: [], polygon: [] });
  for (const id of state.labels) if (id > 0 && id < 255 && !state.objects.includes(id)) state.objects.push(id);
  state.objects.sort((a, b) => a - b);
  drawObjects();
  $("slider").value = t;
  $("frame-label").textContent = `frame ${t} / ${state.info.frames - 1}`;
  render();
  drawMarks();
}

async function saveMask() {
  const ok = await guarded(async () => {
    await api(`mask/${state.t}`, { method: "PUT", body: state.labels,
      headers: { "Content-Type": "application/octet-stream" } });
    return true;
  });
  if (ok) { state.dirty = false; state.hasMask = true; await refresh(); }
  return ok === true;
}

// ---------------------------------------------------------------- drawing the frame and its mask
function render() {
  if (!state.base) return;
  const out = new ImageData(new Uint8ClampedArray(state.base.data), state.base.width, state.base.height);
  const lut = state.config.palette;
  const d = out.data, labels = state.labels, w = out.width, n = labels.length;
  for (let i = 0; i < n; i++) {
    const id = labels[i];
    if (id === 0 || id === 255) continue;
    const x = i % w, j = 4 * i;
    const edge = (x > 0 && labels[i - 1] !== id) || (x < w - 1 && labels[i + 1] !== id) ||
      (i >= w && labels[i - w] !== id) || (i + w < n && labels[i + w] !== id);
    for (let c = 0; c < 3; c++) d[j + c] = edge ? lut[3 * id + c] : (d[j + c] + lut[3 * id + c]) >> 1;
  }
  ctx.putImageData(out, 0, 0);
  drawPolygon();
}

function drawPolygon() {
  const pts = state.polygon;
  if (!pts.length) return;
  ctx.save();
  ctx.strokeStyle = css(state.obj);
  ctx.fillStyle = css(state.obj);
  ctx.lineWidth = Math.max(1, view.width / 400);
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.stroke();
  for (const [x, y] of pts) ctx.fillRect(x - 2, y - 2, 4, 4);
  ctx.restore();
}

function drawMarks() {
  const canvas = $("marks"), c = canvas.getContext("2d");
  const marks = state.info.marks || "";
  c.clearRect(0, 0, canvas.width, canvas.height);
  const w = canvas.width / Math.max(1, marks.length);
  for (let i = 0; i < marks.length; i++) {
    if (marks[i] === ".") continue;
    c.fillStyle = marks[i] === "g" ? "#ef6c00" : "#1e88e5";
    c.fillRect(i * w, 0, Math.ceil(w), canvas.height);
  }
  c.fillStyle = "#1d2330";
  c.fillRect(state.t * w, 0, Math.max(2, w / 3), canvas.height);
}

function drawObjects() {
  const box = $("objects");
  box.textContent = "";
  for (const id of state.objects) {
    const button = document.createElement("button");
    button.className = "object" + (id === state.obj ? " active" : "");
    button.dataset.object = id;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = css(id);
    button.append(swatch, `Object ${id}`);
    button.onclick = () => { state.obj = id; drawObjects(); };
    box.append(button);
  }
}

// ---------------------------------------------------------------- painting
function pixel(event) {
  const r = view.getBoundingClientRect();
  const scale = Math.min(r.width / view.width, r.height / view.height);     // object-fit: contain
  const left = r.left + (r.width - view.width * scale) / 2, top = r.top + (r.height - view.height * scale) / 2;
  return [(event.clientX - left) / scale, (event.clientY - top) / scale];
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
  state.dirty = true;
  render();
}

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
  remember();
  state.drawing = true;
  state.last = [x, y];
  stamp(x, y);
  state.dirty = true;
  render();
}

function onMove(event) {
  if (!state.drawing) return;
  const [x, y] = pixel(event);
  strokeTo(x, y);
  render();
}

function onUp() { state.drawing = false; }

function undo() {
  if (state.polygon.length) { state.polygon.pop(); render(); return; }
  const previous = state.undo.pop();
  if (!previous) { say("Nothing to undo on this frame.", "info"); return; }
  state.labels = previous;
  state.dirty = true;
  render();
}

function setTool(tool) {
  state.tool = tool;
  state.polygon = [];
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
  render();
}

// ---------------------------------------------------------------- propagation and export
async function propagate() {
  if (state.dirty && !(await saveMask())) return;
  const body = JSON.stringify({ start: state.t });
  await api("propagate", { method: "POST", body, headers: { "Content-Type": "application/json" } });
  say(`Propagating from frame ${state.t}...`, "info");
  running(true);
  poll();
}

function running(on) {
  $("stop").disabled = !on;
  $("propagate").disabled = on;
}

function poll() {
  clearTimeout(state.polling);
  state.polling = setTimeout(async () => {
    const info = await guarded(refresh);
    if (info && info.running) { poll(); return; }
    running(false);
    if (info && info.error) say(info.error, "error");
    else if (info) {
      say(`Done: ${info.done} of ${info.total} frames propagated. ` +
        "Scrub to check, correct a frame and propagate again.", "info");
    }
    await showFrame(state.t, true);
  }, 250);
}

async function refresh() {
  const info = await (await api("status")).json();
  state.info = info;
  const share = info.total ? info.done / info.total : 0;
  $("progress-bar").style.width = `${Math.round(100 * share)}%`;
  $("progress-text").textContent = info.running ? `Frame ${info.done} of ${info.total}` :
    (info.total ? `Last run: ${info.done} of ${info.total} frames` : "Idle.");
  drawMarks();
  return info;
}

async function download(path) {
  if (state.dirty && !(await saveMask())) return;
  say("Preparing the download...", "info");
  const response = await api(path);
  const name = (response.headers.get("Content-Disposition") || "").match(/filename="?([^"]+)"?/);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name ? name[1] : path;
  document.body.append(link);
  link.click();
  link.remove();
  say(`Downloaded ${link.download}.`, "info");
}

// ---------------------------------------------------------------- wiring
function needVideo(work) {
  return () => guarded(async () => {
    if (!state.info.open) throw new Error("Open a video first: upload one or give a path on the server.");
    await work();
  });
}

function wire() {
  $("file").onchange = () => { const f = $("file").files[0]; $("file").value = ""; if (f) guarded(() => upload(f)); };
  $("open-path").onclick = () => guarded(openPath);
  $("add-object").onclick = () => {
    state.obj = Math.max(0, ...state.objects) + 1;
    state.objects.push(state.obj);
    drawObjects();
  };
  document.querySelectorAll(".tool").forEach((b) => { b.onclick = () => setTool(b.dataset.tool); });
  $("size").oninput = () => { state.size = +$("size").value; $("size-value").textContent = state.size; };
  $("undo").onclick = undo;
  $("clear").onclick = needVideo(async () => { remember(); state.labels.fill(0); state.dirty = true; render(); });
  $("propagate").onclick = needVideo(propagate);
  $("stop").onclick = () => guarded(() => api("stop", { method: "POST" }));
  $("download-zip").onclick = needVideo(() => download("masks.zip"));
  $("download-mp4").onclick = needVideo(() => download("overlay.mp4"));
  $("slider").oninput = () => guarded(() => showFrame(+$("slider").value));
  $("prev").onclick = () => guarded(() => showFrame(state.t - 1));
  $("next").onclick = () => guarded(() => showFrame(state.t + 1));
  view.addEventListener("pointerdown", onDown);
  view.addEventListener("pointermove", onMove);
  view.addEventListener("pointerup", onUp);
  view.addEventListener("dblclick", () => { if (state.tool === "polygon") fillPolygon(); });
  document.addEventListener("keydown", onKey);
}

function onKey(event) {
  if (event.target.tagName === "INPUT" && event.target.type === "text") return;
  const keys = { ArrowLeft: () => showFrame(state.t - 1), ArrowRight: () => showFrame(state.t + 1),
    b: () => setTool("brush"), e: () => setTool("eraser"), p: () => setTool("polygon"),
    Enter: () => fillPolygon(), Escape: () => { state.polygon = []; render(); } };
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); return; }
  const action = keys[event.key];
  if (action) { event.preventDefault(); guarded(async () => action()); }
}

async function start() {
  wire();
  state.config = await (await fetch("/api/config")).json();
  if (!state.config.server_paths) {
    $("server-open").title = "Start the app with `allowed_dir FOLDER` to open videos on the server";
  }
  const response = await fetch("/api/session", { method: "POST" });
  state.sid = (await response.json()).id;
  drawObjects();
  say("Upload a video (mp4, mov, avi) or a zip of frames to start.", "info");
}

start();
