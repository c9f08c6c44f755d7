// talkface viewer: the head (GLB with 52 ARKit morph targets) driven by the clip's animation,
// in sync with its audio: every frame shows the animation at the audio's current time.
import * as THREE from "./three.bundle.js";

const $ = (id) => document.getElementById(id);
const canvas = $("view");
const audio = new Audio();
const clip = { fps: 30, frames: [], names: [], duration: 0 };
let head = null; // the skin mesh: morphTargetInfluences + morphTargetDictionary
let channelToTarget = []; // clip channel j -> morph target index (or -1)

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
  scene.add(gltf.scene);
}

// ---- clip --------------------------------------------------------------------------------------
function setClip(data, audioUrl) {
  clip.fps = data.fps;
  clip.frames = data.frames;
  clip.names = data.names;
  clip.duration = data.frames.length / data.fps;
  channelToTarget = data.names.map((n) => (n in head.morphTargetDictionary ? head.morphTargetDictionary[n] : -1));
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
  const response = await fetch(`/api/animate?${query}`, { method: "POST", body: file });
  const data = await response.json();
  if (!response.ok) return status(`${file.name}: ${data.error}`);
  setClip(data, URL.createObjectURL(file));
  status("");
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
  .then(loadServerClip)
  .then(() => {
    document.body.dataset.ready = "1";
    requestAnimationFrame(frame);
  })
  .catch((err) => status(`could not load: ${err.message}`));
