// The page: a session, uploads one file at a time, polling for progress, one selected result shown.
import { FaceViewer } from '/static/viewer.js';

const $ = (id) => document.getElementById(id);
const state = { sid: null, limits: null, jobs: new Map(), local: [], selected: null, shown: null, viewer: null };
window.facerecon = state;  // for debugging and the browser test

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function mb(bytes) { return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`; }

async function api(method, path, body) {
  const r = await fetch(path, { method, body });
  const doc = r.status === 204 ? {} : await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(doc.error || `HTTP ${r.status}`);
  return doc;
}

async function start() {
  try {
    const s = await api('POST', '/api/sessions');
    state.sid = s.id;
    state.limits = s.limits;
  } catch (e) {
    $('worker-status').textContent = e.message;
    $('worker-status').className = 'pill failed';
    return;
  }
  const L = state.limits;
  $('limits').textContent = `Up to ${L.max_files} files, photos up to ${mb(L.max_photo_bytes)}, videos up to ` +
    `${mb(L.max_video_bytes)} (up to ${L.video_frames} frames of each are fitted). Files stay on this computer ` +
    `and are deleted when this page closes.`;
  window.addEventListener('pagehide', () => navigator.sendBeacon(`/api/sessions/${state.sid}/end`));
  poll();
}

// --- uploads --------------------------------------------------------------------------------
function localFailure(name, message) {
  state.local.push({ id: `local-${state.local.length}`, name, state: 'failed', stage: 'not uploaded', error: message });
  render();
}

async function upload(files) {
  if (!state.sid) return;
  const L = state.limits;
  for (const file of files) {
    const dot = file.name.lastIndexOf('.');
    const suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : '';
    const kind = L.photo_suffixes.includes(suffix) ? 'photo' : L.video_suffixes.includes(suffix) ? 'video' : null;
    if (!kind) { localFailure(file.name, 'not a photo or video'); continue; }
    const limit = kind === 'photo' ? L.max_photo_bytes : L.max_video_bytes;
    if (file.size > limit) { localFailure(file.name, `larger than the ${mb(limit)} limit for a ${kind}`); continue; }
    const pending = { id: `up-${Math.random()}`, name: file.name, state: 'queued', stage: 'uploading…', progress: 0 };
    state.local.push(pending);
    render();
    try {
      const doc = await api('POST', `/api/sessions/${state.sid}/uploads?name=${encodeURIComponent(file.name)}`, file);
      state.local.splice(state.local.indexOf(pending), 1);
      for (const j of doc.jobs) state.jobs.set(j.id, j);
    } catch (e) {
      Object.assign(pending, { state: 'failed', stage: 'not uploaded', error: e.message });
    }
    render();
  }
}

function setupDrop() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload([...e.dataTransfer.files]);
  });
  $('file-input').addEventListener('change', (e) => { upload([...e.target.files]); e.target.value = ''; });
}

// --- polling ---------------------------------------------------------------------------------
async function poll() {
  let busy = false;
  try {
    const doc = await api('GET', `/api/sessions/${state.sid}`);
    for (const j of doc.jobs) state.jobs.set(j.id, j);
    busy = doc.jobs.some((j) => j.state === 'queued' || j.state === 'running');
    const w = $('worker-status');
    w.textContent = doc.worker === 'ready' ? 'ready' : doc.worker;
    w.className = 'pill ' + (doc.worker === 'ready' ? 'ready' : doc.worker.startsWith('failed') ? 'failed' : '');
    render();
  } catch (e) {
    $('worker-status').textContent = e.message;
    $('worker-status').className = 'pill failed';
    return;  // the session is gone: stop polling
  }
  setTimeout(poll, busy ? 500 : 2000);
}

// --- rendering -------------------------------------------------------------------------------
function stageText(j) {
  if (j.state === 'queued' && j.queue_position) return `waiting (${j.queue_position} in the queue)`;
  if (j.state === 'done' && j.figures) return `done in ${j.figures.total_seconds} s — click to view`;
  return j.stage;
}

function render() {
  const list = $('jobs');
  const all = [...state.jobs.values(), ...state.local];
  list.replaceChildren(...all.map((j) => {
    const li = el('li', `job ${j.state}${j.id === state.selected ? ' selected' : ''}`);
    li.dataset.job = j.id;
    li.dataset.state = j.state;
    li.append(el('div', 'name', j.name), el('div', 'stage', stageText(j)));
    if (j.state === 'queued' || j.state === 'running') {
      const bar = el('progress');
      bar.max = 1;
      bar.value = j.progress || 0;
      li.append(bar);
    }
    if (j.error) li.append(el('p', 'error', j.error));
    if (j.state === 'done') li.addEventListener('click', () => select(j.id));
    return li;
  }));
  // Show the first finished result until the user picks one.
  if (!state.selected) {
    const first = [...state.jobs.values()].find((j) => j.state === 'done');
    if (first) select(first.id);
  }
}

const FIGURES = [
  ['Yaw / pitch / roll', (f) => `${f.yaw_deg}° / ${f.pitch_deg}° / ${f.roll_deg}°`],
  ['Landmark fit error', (f) => `${f.landmark_error_px} px` + (f.landmark_error_eye_pct == null ? '' : ` (${f.landmark_error_eye_pct} % of the eye distance)`)],
  ['Photometric error', (f) => `${f.photo_loss}`],
  ['Fitting time', (f) => `${f.fit_seconds} s`],
  ['Upload to result', (f) => `${f.since_upload_seconds} s`],
  ['Photo', (f) => `${f.photo_size[0]} × ${f.photo_size[1]} px`],
];

const DOWNLOADS = [
  ['glb', 'face.glb — textured mesh, one file (glTF)'],
  ['obj', 'face.obj'], ['mtl', 'face.mtl'], ['texture', 'face_texture.png'],
  ['ply', 'face.ply — vertex colours'],
  ['params', 'params.json — every coefficient and the pose'],
  ['landmarks', 'landmarks.json'],
  ['compare', 'compare.png'], ['overlay', 'overlay.png'],
  ['zip', 'all of them (zip)'],
];

async function select(id) {
  const j = state.jobs.get(id);
  if (!j || j.state !== 'done') return;
  state.selected = id;
  $('placeholder').hidden = true;
  $('detail').hidden = false;
  $('result').classList.remove('empty');
  $('result-name').textContent = j.name;
  const preview = j.files.compare || j.files.overlay;
  $('preview').src = preview;
  $('preview-caption').textContent = j.files.compare ? 'photo | model | overlay' : 'the fit over the photo, landmarks drawn';
  $('figures').replaceChildren(...FIGURES.flatMap(([label, fmt]) => [el('dt', '', label), el('dd', '', fmt(j.figures))]));
  $('downloads').replaceChildren(...DOWNLOADS.filter(([k]) => j.files[k]).map(([k, label]) => {
    const li = el('li');
    const a = el('a', '', label);
    a.href = `${j.files[k]}?download=1`;
    a.dataset.file = k;
    a.download = '';
    li.append(a);
    return li;
  }));
  render();
  if (state.shown !== id) {
    state.shown = id;
    if (!state.viewer) state.viewer = new FaceViewer($('viewer'));
    try {
      await state.viewer.load(j.files.glb);
    } catch (e) {
      $('viewer').dataset.state = 'error';
      $('preview-caption').textContent = `the 3D view could not load the face: ${e.message}`;
    }
  }
}

function setupToolbar() {
  $('opt-texture').addEventListener('change', (e) => state.viewer && state.viewer.setTexture(e.target.checked));
  $('opt-wireframe').addEventListener('change', (e) => state.viewer && state.viewer.setWireframe(e.target.checked));
  $('reset-view').addEventListener('click', () => state.viewer && state.viewer.resetView());
}

setupDrop();
setupToolbar();
start();
