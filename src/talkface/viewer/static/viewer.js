// talkface viewer: the head (GLB with 52 ARKit morph targets) driven by the clip's animation,
// in sync with its audio: every frame shows the animation at the audio's current time. The
// emotion and face panel restyles the clip on the server and swaps its frames in place.
import * as THREE from "./three.bundle.js";

const $ = (id) => document.getElementById(id);
const canvas = $("view");
const audio = new Audio();
const clip = { fps: 30, frames: [], names: [], duration: 0 };
let head = null; // the skin mesh: morphTargetInfluences + morphTargetDictionary
let channelToTarget = []; // clip channel j -> morph target index (or -1)
let headAngles = [-1, -1, -1]; // clip channels of headYaw, headPitch, headRoll (or -1)
// The head turns about the top of its neck (metres, in the head's own frame).
const NECK = new THREE.Vector3(0, 0.06, 0);
const pivot = new THREE.Group();
pivot.position.copy(NECK);
pivot.rotation.order = "YXZ"; // yaw, then pitch, then roll

// ---- scene -----------------------------------------------------------------------------------
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true });
renderer.setPixelRatio(window.devicePixelRatio);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x2a2b30);
const camera = new THREE.PerspectiveCamera(24, 1, 0.01, 10);
camera.position.set(0, 0.17, 0.75);
const controls = new THREE.OrbitControls(camera, canvas);
controls.target.set(0, 0.142, 0);
controls.enableDamping = true;
controls.update();
scene.add(new THREE.HemisphereLight(0xffffff, 0x40302c, 1.1));
const key = new THREE.DirectionalLight(0xffffff, 2.2);
key.position.set(0.4, 0.6, 1.0);
scene.add(key);
const fill = new THREE.DirectionalLight(0xdde6ff, 0.8);
fill.position.set(-0.7, 0.2, 0.6);
scene.add(fill);

function resize() {
  const { clientWidth: w, clientHeight: h } = canvas;
  renderer.setSize(w, h, false);
  camera.aspect = w / Math.max(h, 1);
  camera.updateProjectionMatrix();
}
new ResizeObserver(resize).observe(canvas);

function status(message) {
  $("status").textContent = message || "";
}

async function loadHead() {
  const gltf = await new THREE.GLTFLoader().loadAsync("/head.glb");
  gltf.scene.traverse((o) => {
    if (o.isMesh && o.morphTargetDictionary) head = o;
  });
  // The inside of the lips and the throat: back faces drawn dark, sharing the skin's morphs.
  const inside = new THREE.Mesh(head.geometry, new THREE.MeshBasicMaterial({ color: 0x1c0d0e, side: THREE.BackSide }));
  inside.updateMorphTargets();
  inside.morphTargetInfluences = head.morphTargetInfluences;
  head.add(inside);
  gltf.scene.position.copy(NECK).negate();
  pivot.add(gltf.scene);
  scene.add(pivot);
}

// ---- clip --------------------------------------------------------------------------------------
// The clip's animation, swapped in place: the audio and the playback position stay.
function setFrames(data) {
  clip.fps = data.fps;
  clip.frames = data.frames;
  clip.names = data.names;
  clip.duration = data.frames.length / data.fps;
  channelToTarget = data.names.map((n) => (n in head.morphTargetDictionary ? head.morphTargetDictionary[n] : -1));
  headAngles = ["headYaw", "headPitch", "headRoll"].map((n) => data.names.indexOf(n));
  $("style").disabled = !data.restyle;
  $("style-note").textContent = data.restyle ? "" : "This clip came without its phones (phonemes.tsv): it plays as made.";
}

function setClip(data, audioUrl) {
  setFrames(data);
  audio.pause();
  audio.src = audioUrl;
  audio.currentTime = 0;
  $("title").textContent = data.title || "";
  $("scrub").max = clip.duration.toFixed(3);
  $("scrub").disabled = $("play").disabled = false;
  showTime(0);
}

async function loadServerClip() {
  const data = await (await fetch("/api/clip")).json();
  if (!data) return status("Drop a WAV file on the page to animate it.");
  const blob = await (await fetch(data.audio)).blob();
  setClip(data, URL.createObjectURL(blob));
}

async function animateFile(file) {
  status(`animating ${file.name} …`);
  const query = new URLSearchParams({ name: file.name, text: $("transcript").value });
  // typed as no cross-site form can type it (the server refuses text/plain and form bodies)
  const headers = { "Content-Type": "application/octet-stream" };
  const response = await fetch(`/api/animate?${query}`, { method: "POST", headers, body: file });
  const data = await response.json();
  if (!response.ok) return status(`${file.name}: ${data.error}`);
  setClip(data, URL.createObjectURL(file));
  status("");
}

// ---- emotion and face panel -------------------------------------------------------------------
// The style goes to the server as the command line's options ({"emotion": "joy=0.8", "no-blink": true}).
const FACE_SHOWN = ["lowerFaceStrength", "upperFaceStrength", "jawStrength", "lipOpenOffset", "blinkStrength"];
const LIFE = ["blink", "gaze", "head"];
let emotions = [];

function addSlider(parent, id, name, min, max, value) {
  const row = document.createElement("div");
  row.className = "slider";
  const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: name });
  const input = Object.assign(document.createElement("input"), { type: "range", id, min, max, step: (max - min) / 100 });
  input.value = input.dataset.default = value;
  const output = document.createElement("output");
  input.addEventListener("input", () => {
    output.textContent = Number(input.value).toFixed(2);
    restyleSoon();
  });
  row.append(label, input, output);
  parent.append(row);
}

function showSliderValues() {
  for (const input of document.querySelectorAll(".slider input")) {
    input.nextElementSibling.textContent = Number(input.value).toFixed(2);
  }
}

function styleValues() {
  const on = emotions.filter((e) => Number($(`emotion-${e}`).value) > 0);
  const values = {
    emotion: on.map((e) => `${e}=${$(`emotion-${e}`).value}`).join(",") || "neutral",
    "emotion-strength": Number($("emotion-strength").value),
    face: FACE_SHOWN.map((n) => `${n}=${$(`face-${n}`).value}`).join(","),
  };
  for (const part of LIFE) values[`no-${part}`] = !$(`life-${part}`).checked;
  return values;
}

// The panel set to option values (what the server has in use after a reload); missing ones: defaults.
function showStyle(values) {
  const pairs = (spec) => Object.fromEntries([].concat(spec ?? []).join(",").split(",").map((s) => s.split("=")));
  const emotion = pairs(values.emotion);
  const face = pairs(values.face);
  for (const e of emotions) $(`emotion-${e}`).value = emotion[e] ?? 0;
  $("emotion-strength").value = values["emotion-strength"] ?? 1;
  for (const n of FACE_SHOWN) $(`face-${n}`).value = face[n] ?? $(`face-${n}`).dataset.default;
  for (const part of LIFE) $(`life-${part}`).checked = !values[`no-${part}`];
  showSliderValues();
}

async function loadStylePanel() {
  const options = await (await fetch("/api/style")).json();
  emotions = options.emotions;
  for (const e of emotions) addSlider($("emotion-sliders"), `emotion-${e}`, e, 0, 1, 0);
  addSlider($("emotion-sliders"), "emotion-strength", "emotion strength", 0, 1, 1);
  for (const n of FACE_SHOWN) addSlider($("face-sliders"), `face-${n}`, n, ...options.face[n]);
  for (const part of LIFE) $(`life-${part}`).addEventListener("change", restyleSoon);
  $("style-reset").addEventListener("click", () => {
    showStyle({});
    restyleSoon();
  });
  showStyle(options.values);
}

// One request at a time; changes made meanwhile go in the next one.
let restyleTimer = 0;
let restyling = false;
let restylePending = false;
function restyleSoon() {
  clearTimeout(restyleTimer);
  restyleTimer = setTimeout(restyle, 150);
}

async function restyle() {
  if (restyling) return void (restylePending = true);
  restyling = true;
  try {
    const body = JSON.stringify(styleValues());
    const response = await fetch("/api/style", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const data = await response.json();
    if (!response.ok) return status(`style: ${data.error}`);
    if (data) {
      setFrames(data);
      status("");
    }
  } catch (err) {
    status(`style: ${err.message}`);
  } finally {
    restyling = false;
    if (restylePending) {
      restylePending = false;
      restyle();
    }
  }
}

// ---- playback ----------------------------------------------------------------------------------
function pose(t) {
  const n = clip.frames.length;
  if (!head || n === 0) return;
  const pos = Math.min(Math.max(t * clip.fps, 0), n - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  const a = clip.frames[i];
  const b = clip.frames[Math.min(i + 1, n - 1)];
  const influences = head.morphTargetInfluences;
  influences.fill(0);
  for (let j = 0; j < channelToTarget.length; j++) {
    const k = channelToTarget[j];
    if (k >= 0) influences[k] = a[j] + (b[j] - a[j]) * f;
  }
  // talkface's angles: yaw > 0 turns to the head's left (+x), pitch > 0 looks up, roll > 0 tilts to its left
  const [yaw, pitch, roll] = headAngles.map((j) => (j >= 0 ? a[j] + (b[j] - a[j]) * f : 0));
  pivot.rotation.set(-pitch, yaw, -roll);
}

function showTime(t) {
  $("time").textContent = `${t.toFixed(2)} / ${clip.duration.toFixed(2)} s`;
  if (document.activeElement !== $("scrub")) $("scrub").value = t.toFixed(3);
}

let lastShapes = 0;
function showShapes(now) {
  if (!head || now - lastShapes < 100) return;
  lastShapes = now;
  const names = Object.keys(head.morphTargetDictionary);
  const active = names
    .map((n) => [n, head.morphTargetInfluences[head.morphTargetDictionary[n]]])
    .filter(([, w]) => w > 0.02)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 10);
  $("shape-list").replaceChildren(
    ...active.map(([n, w]) => {
      const li = document.createElement("li");
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${Math.round(w * 100)}%`;
      li.append(n, bar);
      return li;
    }),
  );
}

function frame(now) {
  pose(audio.currentTime);
  showTime(audio.currentTime);
  showShapes(now);
  controls.update();
  renderer.render(scene, camera);
  requestAnimationFrame(frame);
}

$("play").addEventListener("click", () => (audio.paused ? audio.play() : audio.pause()));
audio.addEventListener("play", () => ($("play").textContent = "Pause"));
audio.addEventListener("pause", () => ($("play").textContent = "Play"));
$("scrub").addEventListener("input", () => (audio.currentTime = Number($("scrub").value)));
$("file").addEventListener("change", () => $("file").files[0] && animateFile($("file").files[0]));

window.addEventListener("dragover", (e) => {
  e.preventDefault();
  document.body.classList.add("dragging");
});
window.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
window.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dragging");
  const file = e.dataTransfer.files[0];
  if (file) animateFile(file);
});

resize();
loadHead()
  .then(loadStylePanel)
  .then(loadServerClip)
  .then(() => {
    document.body.dataset.ready = "1";
    requestAnimationFrame(frame);
  })
  .catch((err) => status(`could not load: ${err.message}`));
