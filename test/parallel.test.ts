import { describe, expect, it } from 'vitest';
import { runRanges, sharedCopy, sharedFloat64, type KernelSet } from '../src/backend/parallel.js';
import { SPARSE_KERNELS } from '../src/graph/sparseKernels.js';

describe('kernels on worker threads, loaded from their own modules', () => {
  // P = diag-free 3-regular sparse rows on 6 nodes; G = H·Pᵀ worked by hand below.
  const n = 6;
  const indptr = sharedCopy(new Int32Array([0, 2, 4, 6, 8, 10, 12]));
  const cols = sharedCopy(new Int32Array([1, 2, 2, 3, 3, 4, 4, 5, 5, 0, 0, 1]));
  const vals = sharedCopy(new Float64Array([1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]));
  const H = sharedFloat64(n * n);
  for (let i = 0; i < n * n; i++) H[i] = i % n; // H[i, c] = c

  it('a kernel run on two workers writes what the main thread writes (G[i, j] = Σ c·v over row j of P)', async () => {
    const Gw = sharedFloat64(n * n);
    const Gm = sharedFloat64(n * n);
    await runRanges(SPARSE_KERNELS, 'denseTimesSparseT', { n, indptr, cols, vals, H, G: Gw }, [0, 3, 6], true);
    await runRanges(SPARSE_KERNELS, 'denseTimesSparseT', { n, indptr, cols, vals, H, G: Gm }, [0, 3, 6], false);
    // Row j of P holds (j+1 mod 6) with 1 and (j+2 mod 6) with 2: G[i, j] = (j+1)%6 + 2·((j+2)%6).
    const want = Array.from({ length: n * n }, (_, t) => ((t % n) + 1) % n + 2 * (((t % n) + 2) % n));
    expect(Array.from(Gw)).toEqual(want);
    expect(Array.from(Gm)).toEqual(want);
  });

  it('a kernel that throws in a worker is an error carrying its message, not a hang', async () => {
    const broken: KernelSet = { url: new URL('./fixtures/throwingKernels.ts', import.meta.url).href, kernels: { boom: () => 0 } };
    await expect(runRanges(broken, 'boom', {}, [0, 1, 2], true)).rejects.toThrow(/kernel failed in a worker: Error: boom in rows [01]/);
  });
});
