// The page of demo/app.py: open a video, paint masks on a canvas, propagate both ways, correct, export.
// Each tab has its own session; its id is in the page's address (?session=...), so reopening the address
// (after a server restart too) brings the video and its masks back. Labels travel as raw bytes.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  sid: null, config: null, info: { open: false }, t: 0,
  frame: null, base: null, labels: null, hasMask: false, dirty: false,
  undo: [], tool: "brush", size: 12, obj: 1, objects: [1], opacity: 0.5,
  polygon: [], box: null, hints: { fg: [], bg: [] }, drawing: false, last: null, polling: null, playing: null,
};
const view = $("view");
const ctx = view.getContext("2d");

function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = text ? (kind || "info") : "";
}

function clearError() {
  if ($("message").className === "error") say("", "");
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

function post(path, data) {
  return api(path, { method: "POST", body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });
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
  const response = await post("open", { path: $("path").value });
  await opened(await response.json());
}

async function opened(info, restored) {
  pause();
  Object.assign(state, { info, dirty: false, objects: [1], obj: 1, box: null, hints: { fg: [], bg: [] } });
  $("slider").max = info.frames - 1;
  $("video-info").textContent = `${info.name}: ${info.frames} frames, ${info.width}x${info.height}`;
  await showFrame(0, true);
  await refresh();
  running(info.running);
  if (info.running) poll();
  const painted = (info.marks.match(/[gp]/g) || []).length;
  say(restored ? `Restored ${info.name}: ${painted} frames with masks.` :
    `Opened ${info.name}. Draw a box around an object (or paint it), then propagate.`, "info");
}

async function showFrame(t, force) {
  if (!state.info.open) return;
  t = Math.max(0, Math.min(state.info.frames - 1, t));
  if (t === state.t && !force) return;
  if (state.dirty && !(await saveMask())) { $("slider").value = state.t; return; }
  const image = new Image();
  image.src = `/api/${state.sid}/v${state.info.version}/frame/${t}`;      // the address names the video
  await image.decode();
  const response = await api(`mask/${t}`);
  const bytes = response.status === 204 ? null : new Uint8Array(await response.arrayBuffer());
  const { width, height } = state.info;
  view.width = width; view.height = height;
  ctx.drawImage(image, 0, 0);
  state.base = ctx.getImageData(0, 0, width, height);
  state.labels = bytes || new Uint8Array(width * height);
  state.hasMask = bytes !== null;
  Object.assign(state, { t, dirty: false, undo: [], polygon: [], box: null, hints: { fg: [], bg: [] } });
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
  const lut = state.config.palette, a = state.opacity;
  const d = out.data, labels = state.labels, w = out.width, n = labels.length;
  for (let i = 0; i < n; i++) {
    const id = labels[i];
    if (id === 0 || id === 255) continue;
    const x = i % w, j = 4 * i;
    const edge = (x > 0 && labels[i - 1] !== id) || (x < w - 1 && labels[i + 1] !== id) ||
      (i >= w && labels[i - w] !== id) || (i + w < n && labels[i + w] !== id);
    for (let c = 0; c < 3; c++) d[j + c] = edge ? lut[3 * id + c] : d[j + c] * (1 - a) + lut[3 * id + c] * a;
  }
  ctx.putImageData(out, 0, 0);
  drawGuides();
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
  $("delete-object").textContent = `Delete object ${state.obj}`;
}

async function deleteObject() {
  if (state.dirty && !(await saveMask())) return;
  const obj = state.obj;
  const info = await (await api(`object/${obj}`, { method: "DELETE" })).json();
  state.objects = state.objects.filter((id) => id !== obj);
  if (!state.objects.length) state.objects = [1];
  state.obj = state.objects[0];
  state.info = info;
  await showFrame(state.t, true);
  say(`Deleted object ${obj} from ${info.deleted} frames.`, "info");
}

// ---------------------------------------------------------------- play
function play() {
  if (state.playing) { pause(); return; }
  let next = state.t >= state.info.frames - 1 ? 0 : state.t + 1;
  $("play").textContent = "Pause";
  const step = async () => {
    await guarded(() => showFrame(next, true));
    if (!state.playing) return;
    if (state.t >= state.info.frames - 1) { pause(); return; }
    next = state.t + 1;
    state.playing = setTimeout(step, 80);
  };
  state.playing = setTimeout(step, 0);
}

function pause() {
  clearTimeout(state.playing);
  state.playing = null;
  $("play").textContent = "Play";
}

// ---------------------------------------------------------------- propagation and export
async function propagate(reverse) {
  if (state.dirty && !(await saveMask())) return;
  pause();
  state.info = await (await post("propagate", { start: state.t, reverse })).json();
  clearError();
  say(`Propagating from frame ${state.t} ${reverse ? "back to frame 0" : "to the end"}...`, "info");
  running(true);
  poll();
}

function running(on) {
  $("stop").disabled = !on;
  $("propagate").disabled = on;
  $("propagate-back").disabled = on;
}

function poll() {
  clearTimeout(state.polling);
  state.polling = setTimeout(async () => {
    const info = await guarded(refresh);
    if (info && info.running) { poll(); return; }
    running(false);
    if (info && info.error) say(info.error, "error");
    else if (info && info.stopped) {
      say(`Stopped at frame ${info.last}: ${info.done} of ${info.total} frames propagated.`, "info");
    }
    else if (info) {
      say(`Done: ${info.done} of ${info.total} frames propagated. ` +
        "Scrub to check, correct a frame and propagate again.", "info");
    }
    await showFrame(state.t, true);
  }, 250);
}

function progressText(info) {
  if (info.running) return `Frame ${info.done} of ${info.total}` + (info.reverse ? " (backward)" : "");
  if (info.stopped) return `Stopped at frame ${info.last}`;
  return info.total ? `Last run: ${info.done} of ${info.total} frames` : "Idle.";
}

async function refresh() {
  const info = await (await api("status")).json();
  state.info = info;
  const share = info.total ? info.done / info.total : 0;
  $("progress-bar").style.width = `${Math.round(100 * share)}%`;
  $("progress-text").textContent = progressText(info);
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
  $("delete-object").onclick = needVideo(deleteObject);
  $("size").oninput = () => { state.size = +$("size").value; $("size-value").textContent = state.size; };
  $("opacity").oninput = () => { state.opacity = $("opacity").value / 100; render(); };
  $("undo").onclick = undo;
  $("clear").onclick = needVideo(async () => { remember(); state.labels.fill(0); painted(); });
  $("propagate").onclick = needVideo(() => propagate(false));
  $("propagate-back").onclick = needVideo(() => propagate(true));
  $("stop").onclick = () => guarded(() => api("stop", { method: "POST" }));
  $("download-zip").onclick = needVideo(() => download("masks.zip"));
  $("download-mp4").onclick = needVideo(() => download("overlay.mp4"));
  $("download-coco").onclick = needVideo(() => download("coco.json"));
  $("play").onclick = needVideo(async () => play());
  $("slider").oninput = () => guarded(() => showFrame(+$("slider").value));
  $("prev").onclick = () => guarded(() => showFrame(state.t - 1));
  $("next").onclick = () => guarded(() => showFrame(state.t + 1));
  wireTools();
  document.addEventListener("keydown", onKey);
}

function onKey(event) {
  if (event.target.tagName === "INPUT" && event.target.type === "text") return;
  const keys = { ArrowLeft: () => showFrame(state.t - 1), ArrowRight: () => showFrame(state.t + 1),
    b: () => setTool("brush"), e: () => setTool("eraser"), p: () => setTool("polygon"), x: () => setTool("box"),
    " ": () => play(), Enter: () => fillPolygon(), Escape: () => { state.polygon = []; render(); } };
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); return; }
  const action = keys[event.key];
  if (action && state.info.open) { event.preventDefault(); guarded(async () => action()); }
}

async function resume(sid) {
  // the session named in the address: restored by the server from its folder when needed
  const response = await fetch(`/api/${sid}/status`);
  if (!response.ok) return false;
  state.sid = sid;
  const info = await response.json();
  if (info.open) await opened(info, true);
  return true;
}

async function start() {
  wire();
  state.config = await (await fetch("/api/config")).json();
  if (!state.config.server_paths) {
    $("server-open").title = "Start the app with `allowed_dir FOLDER` to open videos on the server";
  }
  drawObjects();
  const wanted = new URLSearchParams(location.search).get("session");
  if (!(wanted && (await resume(wanted)))) {
    const response = await fetch("/api/session", { method: "POST" });
    if (!response.ok) { say((await response.json()).error, "error"); return; }
    state.sid = (await response.json()).id;
    say(wanted ? "That session is gone from the server; this is a new one. Upload a video to start." :
      "Upload a video (mp4, mov, avi) or a zip of frames to start.", wanted ? "error" : "info");
  }
  history.replaceState(null, "", `/?session=${state.sid}`);
}

start();
