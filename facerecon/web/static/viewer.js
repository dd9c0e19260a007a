// The 3D view: one three.js renderer showing one face.glb, orbit controls, texture/wireframe toggles.
import * as THREE from 'three';
import { GLTFLoader } from '/static/vendor/three/examples/jsm/loaders/GLTFLoader.js';
import { OrbitControls } from '/static/vendor/three/examples/jsm/controls/OrbitControls.js';

const UNTEXTURED = new THREE.Color(0xc9b8a6);  // a neutral skin tone for "texture off"

export class FaceViewer {
  /** @param {HTMLElement} container  the element the canvas fills */
  constructor(container) {
    this.container = container;
    // preserveDrawingBuffer: the canvas can be read back (tests, "save image as").
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    container.appendChild(this.renderer.domElement);
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x20242c);
    this.camera = new THREE.PerspectiveCamera(30, 1, 0.001, 100);
    this.scene.add(this.camera);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x404040, 2.2));
    const key = new THREE.DirectionalLight(0xffffff, 1.4);
    key.position.set(0.3, 0.4, 1);
    this.camera.add(key);  // the light follows the view, so a turned face stays lit
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.addEventListener('change', () => this.render());
    this.model = null;
    this.materials = [];
    this.texture = true;
    this.wireframe = false;
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
  }

  resize() {
    const w = Math.max(1, this.container.clientWidth), h = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  render() { this.renderer.render(this.scene, this.camera); }

  /** Show the GLB at `url`; resolves once it is drawn. */
  async load(url) {
    this.container.dataset.state = 'loading';
    const gltf = await new GLTFLoader().loadAsync(url);
    this.clear();
    this.model = gltf.scene;
    this.materials = [];
    this.model.traverse((o) => {
      if (o.isMesh) {
        const mats = Array.isArray(o.material) ? o.material : [o.material];
        for (const m of mats) this.materials.push({ material: m, map: m.map, color: m.color.clone() });
      }
    });
    this.scene.add(this.model);
    this.frame();
    this.apply();
    this.container.dataset.state = 'drawn';
  }

  /** Remove the current face and free its GPU memory. */
  clear() {
    if (!this.model) return;
    this.scene.remove(this.model);
    this.model.traverse((o) => {
      if (o.isMesh) {
        o.geometry.dispose();
        for (const { material, map } of this.materials) { if (map) map.dispose(); material.dispose(); }
      }
    });
    this.model = null;
    this.container.dataset.state = 'empty';
  }

  /** Put the camera in front of the face (+z), the whole face in view; this is what reset returns to. */
  frame() {
    const box = new THREE.Box3().setFromObject(this.model);
    const centre = box.getCenter(new THREE.Vector3());
    const radius = box.getSize(new THREE.Vector3()).length() / 2;
    const dist = radius / Math.sin(THREE.MathUtils.degToRad(this.camera.fov / 2)) * 0.85;
    this.camera.near = dist / 100;
    this.camera.far = dist * 10;
    this.camera.position.set(centre.x, centre.y, centre.z + dist);
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(centre);
    this.controls.update();
    this.controls.saveState();
  }

  apply() {
    for (const { material, map, color } of this.materials) {
      material.map = this.texture ? map : null;
      material.color.copy(this.texture ? color : UNTEXTURED);
      material.wireframe = this.wireframe;
      material.needsUpdate = true;
    }
    this.render();
  }

  setTexture(on) { this.texture = on; this.apply(); }
  setWireframe(on) { this.wireframe = on; this.apply(); }
  resetView() { this.controls.reset(); this.render(); }
}
