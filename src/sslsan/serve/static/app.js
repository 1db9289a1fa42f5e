// The page of `sslsan serve`: no framework, no build step, nothing fetched from outside this server.
// The server computes every map (upsampled to 224 x 224 as in scoring); this script only colours them,
// with the rule of sslsan.evaluation.figures.thresholded, so the threshold slider needs no round trip.
"use strict";

const $ = (id) => document.getElementById(id);
const SLOTS = ["image", "audio", "video"];
const STEPS = 1000; // slider resolution
const state = { files: {}, result: null, threshold: null, lo: 0, hi: 1, limitMB: 50, last: null };
const POLL_MS = 250; // how often the page asks how far an overlay video is

function fmt(x, digits = 4) {
  return x === null || x === undefined ? "none" : Number(x).toFixed(digits);
}

// matplotlib's "jet" (piecewise linear in r, g, b) as a 256-entry lookup table
const JET = (() => {
  const seg = {
    r: [[0, 0], [0.35, 0], [0.66, 1], [0.89, 1], [1, 0.5]],
    g: [[0, 0], [0.125, 0], [0.375, 1], [0.64, 1], [0.91, 0], [1, 0]],
    b: [[0, 0.5], [0.11, 1], [0.34, 1], [0.65, 0], [1, 0]],
  };
  const at = (pts, x) => {
    for (let i = 1; i < pts.length; i++) {
      if (x <= pts[i][0]) {
        const [x0, y0] = pts[i - 1], [x1, y1] = pts[i];
        return y0 + ((y1 - y0) * (x - x0)) / (x1 - x0);
      }
    }
    return pts[pts.length - 1][1];
  };
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    lut[3 * i] = Math.round(255 * at(seg.r, x));
    lut[3 * i + 1] = Math.round(255 * at(seg.g, x));
    lut[3 * i + 2] = Math.round(255 * at(seg.b, x));
  }
  return lut;
})();

function decodeFloats(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

// ------------------------------------------------------------------------------------------ inputs

function setFile(slot, file) {
  state.files[slot] = file || null;
  if (file && slot === "video") { state.files.image = null; state.files.audio = null; }
  if (file && slot !== "video") state.files.video = null;
  for (const s of SLOTS) {
    const f = state.files[s];
    $(`${s}-name`).textContent = f ? `${f.name} (${(f.size / 1048576).toFixed(1)} MB)` : "drop or click";
    $(`drop-${s}`).classList.toggle("filled", !!f);
  }
  $("video-overlay").disabled = !state.files.video;
}

function slotFor(file) {
  const type = file.type || "";
  if (type.startsWith("image/")) return "image";
  if (type.startsWith("audio/")) return "audio";
  if (type.startsWith("video/")) return "video";
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  if (["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif"].includes(ext)) return "image";
  if (["mp4", "mkv", "webm", "mov", "avi", "m4v"].includes(ext)) return "video";
  return "audio";
}

function setupInputs() {
  for (const slot of SLOTS) {
    const input = $(`${slot}-input`);
    input.addEventListener("change", () => setFile(slot, input.files[0]));
    const zone = $(`drop-${slot}`);
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      zone.classList.remove("over");
      if (e.dataTransfer.files.length) setFile(slot, e.dataTransfer.files[0]);
    });
  }
  // files dropped anywhere else go to the slot their type says
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    for (const f of e.dataTransfer.files) setFile(slotFor(f), f);
  });
  $("form").addEventListener("submit", (e) => { e.preventDefault(); localizeUpload(); });
  $("threshold").addEventListener("input", () => {
    state.threshold = state.lo + ((state.hi - state.lo) * Number($("threshold").value)) / STEPS;
    draw();
  });
  $("reset").addEventListener("click", () => { setThreshold(state.result.threshold); draw(); });
  $("download").addEventListener("click", downloadFigure);
  $("video-overlay").addEventListener("click", overlayVideo);
}

// --------------------------------------------------------------------------------------- requests

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// the one line of a failed request: the server's {"error": ...}, else its status
async function errorOf(response) {
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: a proxy or a dead server */ }
  return (data && data.error) || `the server answered ${response.status} ${response.statusText}`;
}

function failed(err) {
  return err instanceof TypeError ? `cannot reach the server (${err.message}); is sslsan serve still running?` : err.message;
}

async function post(url, body) {
  showError("");
  $("localize").disabled = true;
  const t0 = performance.now();
  const tick = setInterval(() => { $("status").textContent = `localizing… ${((performance.now() - t0) / 1000).toFixed(1)} s`; }, 100);
  try {
    const response = await fetch(url, { method: "POST", body });
    if (!response.ok) throw new Error(await errorOf(response));
    const data = await response.json();
    state.last = { url, body };
    $("status").textContent = `done in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
    show(data);
  } catch (err) {
    $("status").textContent = "";
    $("result").hidden = true;
    showError(failed(err));
  } finally {
    clearInterval(tick);
    $("localize").disabled = false;
  }
}

function tooLarge(bytes) {
  if (bytes <= state.limitMB * 1048576) return false;
  showError(`the files add up to ${(bytes / 1048576).toFixed(1)} MB; the limit is ${state.limitMB} MB per upload`);
  return true;
}

function localizeUpload() {
  const body = new FormData();
  const chosen = state.files.video ? ["video"] : ["image", "audio"].filter((s) => state.files[s]);
  if (!state.files.video && chosen.length < 2) {
    showError("choose an image and an audio file, or one video file");
    return;
  }
  let bytes = 0;
  for (const s of chosen) { body.append(s, state.files[s], state.files[s].name); bytes += state.files[s].size; }
  if (tooLarge(bytes)) return;
  post("/api/localize", body);
}

// ------------------------------------------------------------------------------------ overlay video

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// upload the video, then follow its job until the overlay video is ready (or failed)
async function overlayVideo() {
  const file = state.files.video;
  if (!file || tooLarge(file.size)) return;
  showError("");
  const body = new FormData();
  body.append("video", file, file.name);
  const video = $("overlay-video");
  video.removeAttribute("src");
  video.hidden = true;
  $("video-links").hidden = true;
  $("video-progress").removeAttribute("value"); // indeterminate until the first frames are done
  $("video-title").textContent = `${file.name}: every frame`;
  $("video-status").textContent = "uploading…";
  $("video-result").hidden = false;
  $("video-overlay").disabled = true;
  try {
    const panels = $("video-panels").checked ? "?panels=silence,noise" : "";
    const response = await fetch(`/api/video${panels}`, { method: "POST", body });
    if (!response.ok) throw new Error(await errorOf(response));
    showVideo(await follow((await response.json()).status));
  } catch (err) {
    $("video-result").hidden = true;
    showError(failed(err));
  } finally {
    $("video-overlay").disabled = !state.files.video;
  }
}

async function follow(url) {
  for (;;) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(await errorOf(response));
    const job = await response.json();
    if (job.state === "error") throw new Error(job.error);
    if (job.total) {
      $("video-progress").max = job.total;
      $("video-progress").value = job.done;
    }
    const rate = job.rate ? ` · ${job.rate.toFixed(1)} frames/s` : "";
    $("video-status").textContent = job.state === "queued" ? "waiting for the video before it…"
      : `frame ${job.done} of ${job.total || "…"}${rate}`;
    if (job.state === "done") return job;
    await sleep(POLL_MS);
  }
}

function showVideo(job) {
  const above = job.above_threshold_frames === null ? ""
    : ` · the map is above U_th in ${job.above_threshold_frames} of ${job.done} frames`;
  $("video-status").textContent = `done: ${job.done} frames, ${Number(job.seconds).toFixed(2)} s${above}`;
  $("video-download").href = job.video;
  $("video-frames").href = job.frames;
  $("video-links").hidden = false;
  const video = $("overlay-video");
  video.src = job.video;
  video.hidden = false;
}

async function downloadFigure() {
  if (!state.last) return;
  const sep = state.last.url.includes("?") ? "&" : "?";
  const response = await fetch(`${state.last.url}.png${sep}threshold=${state.threshold}`, { method: "POST", body: state.last.body });
  if (!response.ok) { showError(`cannot render the figure (${response.status})`); return; }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await response.blob());
  a.download = "sslsan_overlay.png";
  a.click();
}

// ---------------------------------------------------------------------------------------- results

function setThreshold(value) {
  state.threshold = value;
  const pos = state.hi > state.lo ? Math.round((STEPS * (value - state.lo)) / (state.hi - state.lo)) : 0;
  $("threshold").value = String(pos);
}

function show(data) {
  const image = new Image();
  image.onload = () => {
    state.result = data;
    state.image = image;
    for (const m of data.maps) {
      m.up = decodeFloats(m.values);
      m.upMax = m.up.reduce((a, b) => Math.max(a, b), -Infinity);
    }
    const values = data.maps.flatMap((m) => [m.min, m.max]);
    if (data.threshold !== null) values.push(data.threshold);
    state.lo = Math.min(...values);
    state.hi = Math.max(...values);
    setThreshold(data.threshold !== null ? data.threshold : state.lo);
    $("reset").hidden = data.threshold === null;
    $("no-threshold").hidden = data.threshold !== null;
    buildPanels(data);
    $("result-name").textContent = data.name;
    $("result").hidden = false;
    draw();
  };
  image.src = data.image;
}

function buildPanels(data) {
  const panels = $("panels");
  panels.replaceChildren();
  for (const m of data.maps) {
    const fig = document.createElement("figure");
    fig.className = "panel";
    fig.innerHTML = `<canvas id="overlay-${m.name}" width="${data.size}" height="${data.size}"></canvas>
      <figcaption><span class="label"></span><br>
      <span class="minmax">min <span id="min-${m.name}"></span> · max <span id="max-${m.name}"></span></span><br>
      <span class="verdict" id="verdict-${m.name}"></span></figcaption>`;
    fig.querySelector(".label").textContent = m.label;
    fig.querySelector(`#min-${m.name}`).textContent = fmt(m.min);
    fig.querySelector(`#max-${m.name}`).textContent = fmt(m.max);
    panels.appendChild(fig);
  }
}

// the overlay of one map: values above the threshold, normalised to [0, 1] up to the map's maximum
function overlay(m, size, threshold) {
  const px = new ImageData(size, size);
  const thr = Math.fround(threshold);
  const span = m.upMax - threshold;
  let active = 0;
  for (let i = 0; i < m.up.length; i++) {
    const v = m.up[i];
    const heat = (v - threshold) / span;
    if (!(v > thr) || !(span > 0) || !(heat > 0)) continue;
    const k = 3 * Math.min(255, Math.floor(256 * heat));
    px.data[4 * i] = JET[k];
    px.data[4 * i + 1] = JET[k + 1];
    px.data[4 * i + 2] = JET[k + 2];
    px.data[4 * i + 3] = 128; // alpha 0.5, as in the Fig. 2 rendering
    active++;
  }
  return { px, active };
}

function draw() {
  const data = state.result;
  if (!data) return;
  $("threshold-value").textContent = fmt(state.threshold);
  for (const m of data.maps) {
    const canvas = $(`overlay-${m.name}`);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(state.image, 0, 0, data.size, data.size);
    const { px, active } = overlay(m, data.size, state.threshold);
    const layer = document.createElement("canvas");
    layer.width = layer.height = data.size;
    layer.getContext("2d").putImageData(px, 0, 0);
    ctx.drawImage(layer, 0, 0);
    ctx.strokeStyle = "lime";
    ctx.lineWidth = 2;
    for (const [x0, y0, x1, y1] of data.boxes || []) {
      ctx.strokeRect(x0 * data.size, y0 * data.size, (x1 - x0) * data.size, (y1 - y0) * data.size);
    }
    canvas.dataset.active = String(active);
    canvas.dataset.threshold = String(state.threshold);
    const above = m.max > Math.fround(state.threshold);
    const verdict = $(`verdict-${m.name}`);
    verdict.className = `verdict ${above ? "on" : "off"}`;
    verdict.textContent = m.name === "positive"
      ? (above ? "above the threshold: a sounding object is found" : "below the threshold: nothing visible sounds")
      : (above ? "above the threshold: a false alarm" : "stays below the threshold, as it should");
  }
}

// ------------------------------------------------------------------------------------ model, examples

async function loadInfo() {
  try {
    const info = await (await fetch("/api/info")).json();
    state.limitMB = info.max_upload_mb;
    $("limit").textContent = String(info.max_upload_mb);
    $("video-limit").textContent = String(info.max_video_seconds);
    $("model").textContent = `model ${info.checkpoint} · universal threshold U_th ${fmt(info.threshold)} · ${info.device}`;
    const list = $("example-list");
    for (const ex of info.examples) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "example";
      b.id = `example-${ex.index}`;
      b.title = ex.id;
      b.innerHTML = `<img alt="" src="${ex.image}"><span></span>`;
      b.querySelector("span").textContent = ex.category || ex.id;
      b.addEventListener("click", () => post(`/api/examples/${ex.index}`, null));
      list.appendChild(b);
    }
    $("examples").hidden = info.examples.length === 0;
  } catch (err) {
    showError(`cannot reach the server (${err.message})`);
  }
}

setupInputs();
loadInfo();
