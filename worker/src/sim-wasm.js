// The simulator's own wasm (sim/pkg; the library's wasm has no simulator), for the dev-mode
// /sim routes. Bundled with the Worker but instantiated only when /sim is first used, so a
// production Worker (EDGEBATCH_SIM off) never pays for it at startup.
import wasm from '../../sim/pkg/edgebatch_sim_bg.wasm';
import { initSync, Simulator } from '../../sim/pkg/edgebatch_sim.js';

/** The `Simulator` class, its wasm initialised (once: initSync returns early after that). */
export function loadSimulator() {
  initSync({ module: wasm });
  return Simulator;
}
