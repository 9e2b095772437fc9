/** Random clustered descriptors for the benchmarks: centres plus Gaussian noise, seeded. */
import type { Matrix } from '../src/matrix.js';

/** `rows` × `dim` rows around rows / perCluster random centres (noise scaled by `noise`). */
export function clustered(rows: number, dim: number, perCluster: number, seed: number, noise = 0.7): Matrix {
  let s = seed >>> 0 || 1;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const clusters = Math.max(1, Math.floor(rows / perCluster));
  const centres = Float32Array.from({ length: clusters * dim }, gauss);
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    const c = Math.floor(rand() * clusters);
    for (let j = 0; j < dim; j++) data[i * dim + j] = centres[c * dim + j]! + noise * gauss();
  }
  return { rows, cols: dim, data };
}
