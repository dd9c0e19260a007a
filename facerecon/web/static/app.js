// The page: a session, uploads one file at a time, polling for progress, one selected result shown.
// Two modes: single photos (one job, one face each) or one person (every file dropped together
// becomes a photo of one person job, fitted and combined into one face).
import { FaceViewer } from '/static/viewer.js';

const $ = (id) => document.getElementById(id);
const state = {
  sid: null, limits: null, modes: null, jobs: new Map(), local: [], selected: null, shown: null, viewer: null,
  refused: new Map(),    // person id -> [{name, error}]: files of that batch never uploaded
  uploading: new Map(),  // person id -> "uploading 2 of 3…" while its batch is sent
};
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
    state.modes = s.modes;
  } catch (e) {
    $('worker-status').textContent = e.message;
    $('worker-status').className = 'pill failed';
    return;
  }
  const L = state.limits;
  $('limits').textContent = `Up to ${L.max_files} files, photos up to ${mb(L.max_photo_bytes)}, videos up to ` +
    `${mb(L.max_video_bytes)} (up to ${L.video_frames} frames of each are fitted). Files stay on this computer ` +
    `and are deleted when this page closes.`;
  setupModes();
  window.addEventListener('pagehide', () => navigator.sendBeacon(`/api/sessions/${state.sid}/end`));
  poll();
}

// --- modes -----------------------------------------------------------------------------------
function mode() { return document.querySelector('input[name="mode"]:checked').value; }

function aggregateHelp(name) {
  const a = (state.modes.aggregators || []).find((x) => x.name === name);
  return a ? a.help : '';
}

function setupModes() {
  const M = state.modes;
  const select = $('aggregate');
  select.replaceChildren(...M.aggregators.map((a) => {
    const o = el('option', '', a.name === M.aggregate_default ? `${a.name} (default)` : a.name);
    o.value = a.name;
    o.title = a.help;
    return o;
  }));
  select.value = M.aggregate_default;
  const person = document.querySelector('input[name="mode"][value="person"]');
  person.disabled = !M.person;
  const update = () => {
    const one = mode() === 'person';
    select.disabled = !one;
    $('aggregate-row').classList.toggle('disabled', !one);
    $('aggregate-help').textContent = one ? aggregateHelp(select.value) : '';
    $('drop').querySelector('strong').textContent = one
      ? 'Drop all the photos (or a video) of one person here' : 'Drop photos or a video here';
  };
  for (const r of document.querySelectorAll('input[name="mode"]')) r.addEventListener('change', update);
  select.addEventListener('change', update);
  update();
}

// --- uploads --------------------------------------------------------------------------------
function localFailure(name, message) {
  state.local.push({ id: `local-${state.local.length}`, name, state: 'failed', stage: 'not uploaded', error: message });
  render();
}

/** Why `file` cannot be sent (wrong type, too large), or null. */
function refusal(file) {
  const L = state.limits;
  const dot = file.name.lastIndexOf('.');
  const suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : '';
  const kind = L.photo_suffixes.includes(suffix) ? 'photo' : L.video_suffixes.includes(suffix) ? 'video' : null;
  if (!kind) return 'not a photo or video';
  const limit = kind === 'photo' ? L.max_photo_bytes : L.max_video_bytes;
  return file.size > limit ? `larger than the ${mb(limit)} limit for a ${kind}` : null;
}

function uploadUrl(file, person) {
  return `/api/sessions/${state.sid}/uploads?name=${encodeURIComponent(file.name)}` +
    (person ? `&person=${encodeURIComponent(person)}` : '');
}

async function upload(files) {
  if (!state.sid || !files.length) return;
  if (mode() === 'person') { await uploadPerson(files); return; }
  for (const file of files) {
    const why = refusal(file);
    if (why) { localFailure(file.name, why); continue; }
    const pending = { id: `up-${Math.random()}`, name: file.name, state: 'queued', stage: 'uploading…', progress: 0 };
    state.local.push(pending);
    render();
    try {
      const doc = await api('POST', uploadUrl(file), file);
      state.local.splice(state.local.indexOf(pending), 1);
      for (const j of doc.jobs) state.jobs.set(j.id, j);
    } catch (e) {
      Object.assign(pending, { state: 'failed', stage: 'not uploaded', error: e.message });
    }
    render();
  }
}

/** Every file dropped together becomes a photo of one new person, then the person is started. */
async function uploadPerson(files) {
  let person;
  try {
    const agg = encodeURIComponent($('aggregate').value);
    person = (await api('POST', `/api/sessions/${state.sid}/people?aggregate=${agg}`)).job;
  } catch (e) {
    localFailure('one person', e.message);
    return;
  }
  const refused = [];
  state.refused.set(person.id, refused);
  state.jobs.set(person.id, person);
  for (const [i, file] of files.entries()) {
    state.uploading.set(person.id, `uploading ${i + 1} of ${files.length}: ${file.name}`);
    render();
    const why = refusal(file);
    if (why) { refused.push({ name: file.name, error: why }); continue; }
    try {
      const doc = await api('POST', uploadUrl(file, person.id), file);
      state.jobs.set(person.id, doc.jobs[0]);
    } catch (e) {
      refused.push({ name: file.name, error: e.message });
    }
  }
  state.uploading.delete(person.id);
  try {
    state.jobs.set(person.id, (await api('POST', `/api/sessions/${state.sid}/people/${person.id}/start`)).job);
  } catch (e) {
    Object.assign(state.jobs.get(person.id), { state: 'failed', stage: 'not started', error: e.message });
  }
  render();
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
    busy = doc.jobs.some((j) => ['collecting', 'queued', 'running'].includes(j.state));
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
  if (j.state === 'collecting') return state.uploading.get(j.id) || j.stage;
  if (j.state === 'queued' && j.queue_position) return `waiting (${j.queue_position} in the queue)`;
  if (j.state === 'done' && j.figures) return `done in ${j.figures.total_seconds} s — click to view`;
  return j.stage;
}

function progressBar(value, known = true) {
  const bar = el('progress');
  bar.max = 1;
  if (known) bar.value = value || 0;  // no value: the browser's "busy" bar
  return bar;
}

/** A person's photos: the server's members, then the files of its batch that were never sent. */
function membersOf(j) {
  const refused = (state.refused.get(j.id) || []).map((r) => ({ ...r, state: 'failed', stage: 'not uploaded' }));
  return [...(j.members || []), ...refused];
}

function personEntry(j, li) {
  const members = membersOf(j);
  li.append(el('div', 'name', `${j.name}: ${members.length} photo${members.length === 1 ? '' : 's'}, ${j.aggregate}`),
    el('div', 'stage', stageText(j)));
  if (['collecting', 'queued', 'running'].includes(j.state)) li.append(progressBar(j.progress, j.progress_known !== false));
  if (j.error) li.append(el('p', 'error', j.error));
  const list = el('ol', 'members');
  list.replaceChildren(...members.map((m) => {
    const item = el('li', `member ${m.state}`);
    item.dataset.state = m.state;
    item.append(el('span', 'name', m.name), el('span', 'stage', m.error || m.stage));
    if (m.state === 'running') item.append(progressBar(m.progress));
    return item;
  }));
  li.append(list);
}

function render() {
  const list = $('jobs');
  const all = [...state.jobs.values(), ...state.local];
  list.replaceChildren(...all.map((j) => {
    const li = el('li', `job ${j.kind || 'photo'} ${j.state}${j.id === state.selected ? ' selected' : ''}`);
    li.dataset.job = j.id;
    li.dataset.state = j.state;
    if (j.kind === 'person') {
      personEntry(j, li);
    } else {
      li.append(el('div', 'name', j.name), el('div', 'stage', stageText(j)));
      if (j.state === 'queued' || j.state === 'running') li.append(progressBar(j.progress));
      if (j.error) li.append(el('p', 'error', j.error));
    }
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
  ['Note', (f) => f.note],  // only when there is one (a small face)
];

// A formatter may return several lines (an array). `j` is the job, for what is not in its figures.
const PERSON_FIGURES = [
  ['Photos used', (f, j) => `${f.photos_used} of ${membersOf(j).length}`],
  ['Not used', (f, j) => {
    const failed = membersOf(j).filter((m) => m.state === 'failed');
    return failed.length ? failed.map((m) => `${m.name}: ${m.error}`) : 'none';
  }],
  ['Combined by', (f) => `${f.aggregate}: ${aggregateHelp(f.aggregate)}`],
  ['Fitting the photos', (f) => `${f.fit_seconds} s`],
  ['Combining them', (f) => `${f.combine_seconds} s`],
  ['Upload to result', (f) => `${f.since_upload_seconds} s`],
];

const DOWNLOADS = [
  ['glb', 'face.glb — textured mesh, one file (glTF)'],
  ['obj', 'face.obj'], ['mtl', 'face.mtl'], ['texture', 'face_texture.png'],
  ['ply', 'face.ply — vertex colours'],
  ['params', 'params.json — every coefficient and the pose'],
  ['landmarks', 'landmarks.json'],
  ['members', 'members.json — which photos formed the face, each one\'s fit and weight'],
  ['preview', 'preview.png — the face alone, from the front and turned 35°'],
  ['compare', 'compare.png'], ['overlay', 'overlay.png'],
  ['zip', 'all of them (zip)'],
];

function figureRows(rows, j) {
  return rows.flatMap(([label, fmt]) => {
    const value = fmt(j.figures, j);
    if (value == null) return [];  // a row with nothing to say is left out
    const dd = el('dd');
    if (Array.isArray(value)) dd.replaceChildren(...value.map((line) => el('div', 'line', line)));
    else dd.textContent = value;
    return [el('dt', '', label), dd];
  });
}

function showOverlay(j, m) {
  $('preview').src = m.overlay;
  $('preview-caption').textContent = `${m.name}: the person's face posed, lit and expressed as in this photo`;
  for (const b of $('strip').querySelectorAll('button')) b.classList.toggle('current', b.dataset.name === m.name);
}

function showStrip(j) {
  const strip = $('strip');
  const fitted = (j.members || []).filter((m) => m.overlay);
  strip.hidden = j.kind !== 'person';
  strip.replaceChildren(...fitted.map((m) => {
    const li = el('li');
    const b = el('button');
    b.type = 'button';
    b.dataset.name = m.name;
    const img = el('img');
    img.src = m.overlay;
    img.alt = `the person's face over ${m.name}`;
    const w = m.figures && m.figures.weight != null ? ` · weight ${m.figures.weight.toFixed(2)}` : '';
    b.append(img, el('span', '', `${m.name}${w}`));
    b.addEventListener('click', () => showOverlay(j, m));
    li.append(b);
    return li;
  }));
  if (fitted.length) showOverlay(j, fitted[0]);
}

async function select(id) {
  const j = state.jobs.get(id);
  if (!j || j.state !== 'done') return;
  const person = j.kind === 'person';
  const first = state.selected !== id;
  state.selected = id;
  $('placeholder').hidden = true;
  $('detail').hidden = false;
  $('result').classList.remove('empty');
  $('result').dataset.kind = person ? 'person' : 'photo';
  $('result-name').textContent = person ? `${j.name}: one face from ${j.figures.photos_used} photos` : j.name;
  $('figures-title').textContent = person ? 'The person' : 'The fit';
  if (person) {
    if (first) showStrip(j);
  } else {
    $('strip').hidden = true;
    $('preview').src = j.files.compare || j.files.overlay;
    $('preview-caption').textContent = j.files.compare ? 'photo | model | overlay' : 'the fit over the photo, landmarks drawn';
  }
  $('figures').replaceChildren(...figureRows(person ? PERSON_FIGURES : FIGURES, j));
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
      $('viewer').dataset.job = id;
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
