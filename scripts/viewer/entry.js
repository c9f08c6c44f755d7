// The parts of three.js the talkface viewer uses, bundled into one ES module (see package.json).
export * from "three";
export { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
export { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
