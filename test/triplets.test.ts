import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mineTriplets } from '../src/triplets/mining.js';
import { tripletFiles } from '../src/triplets/run.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { writeFileSync } from 'node:fs';
import { withTempDir } from './helpers.js';

/** A self-ranking of `rows` items whose neighbour at rank r is (a + r + 1) mod rows. */
function shifted(rows: number, length: number): Int32Array {
  return Int32Array.from({ length: rows * length }, (_, q) => (Math.floor(q / length) + (q % length) + 1) % rows);
}

describe('soft-margin triplets', () => {
  const ranks = shifted(500, 400);

  it('closer = better-ranked of two distinct draws from the top-k; margin (r_f − r_c)/k · m0', () => {
    const t = mineTriplets(ranks, 500, { k: 300, m0: 0.1, perAnchor: 20, seed: 7 });
    expect(t.count).toBe(10_000);
    for (let i = 0; i < t.count; i++) {
      const [a, c, f] = [t.items[3 * i]!, t.items[3 * i + 1]!, t.items[3 * i + 2]!];
      const [rc, rf] = [t.ranks[2 * i]!, t.ranks[2 * i + 1]!];
      expect(a).toBe(Math.floor(i / 20));
      expect(rc).toBeLessThan(rf);
      expect(rf).toBeLessThan(300);
      expect(c).toBe((a + rc + 1) % 500);
      expect(f).toBe((a + rf + 1) % 500);
      expect(t.margins[i]).toBeCloseTo(((rf - rc) / 300) * 0.1, 7);
    }
  });

  it('draws pairs uniformly: E[r_f − r_c] = (k + 1)/3 and every rank occurs', () => {
    const k = 300;
    const t = mineTriplets(ranks, 500, { k, perAnchor: 200, seed: 1 });
    let sum = 0;
    const seen = new Uint8Array(k);
    for (let i = 0; i < t.count; i++) {
      sum += t.ranks[2 * i + 1]! - t.ranks[2 * i]!;
      seen[t.ranks[2 * i]!] = 1;
      seen[t.ranks[2 * i + 1]!] = 1;
    }
    // Standard error of the mean ≈ 70 / √100000 ≈ 0.22; allow 4.5 of them.
    expect(Math.abs(sum / t.count - (k + 1) / 3)).toBeLessThan(1);
    expect(seen.every((s) => s === 1)).toBe(true);
  });

  it('is reproducible from its seed', () => {
    const a = mineTriplets(ranks, 500, { seed: 3 });
    expect(mineTriplets(ranks, 500, { seed: 3 }).items).toEqual(a.items);
    expect(mineTriplets(ranks, 500, { seed: 4 }).items).not.toEqual(a.items);
  });

  it('caps k at the ranking length and rejects k < 2', () => {
    expect(mineTriplets(shifted(50, 20), 50, { k: 300 }).k).toBe(20);
    expect(() => mineTriplets(ranks, 500, { k: 1 })).toThrow(/k must be an integer ≥ 2/);
  });

  it('refuses a query re-ranking folder, naming the fix', async () => {
    await withTempDir((dir) => {
      writeNpy(join(dir, 'indices.npy'), { dtype: 'int32', shape: [10, 5], data: shifted(10, 5) });
      writeFileSync(join(dir, 'diffusion.json'), JSON.stringify({ mode: 'query' }));
      expect(() => tripletFiles({ ranks: dir, out: join(dir, 't') })).toThrow(/triplets need a database self-ranking \(run ddistill diffuse without --queries\)/);
      writeFileSync(join(dir, 'diffusion.json'), JSON.stringify({ mode: 'self' }));
      const m = tripletFiles({ ranks: dir, out: join(dir, 't'), k: 4, perAnchor: 3 });
      expect(m).toMatchObject({ anchors: 10, count: 30, k: 4 });
      expect(readNpy(join(dir, 't', 'triplets.npy')).shape).toEqual([30, 3]);
      expect(readNpy(join(dir, 't', 'margins.npy')).dtype).toBe('float32');
    });
  });

  it('refuses neighbour lists that contain the item itself (a search without --exclude-self)', async () => {
    await withTempDir((dir) => {
      // Row i: i, i+1, …: each item first in its own list, as an exact self-search returns it.
      const withSelf = Int32Array.from({ length: 10 * 5 }, (_, j) => (Math.floor(j / 5) + (j % 5)) % 10);
      writeNpy(join(dir, 'indices.npy'), { dtype: 'int32', shape: [10, 5], data: withSelf });
      expect(() => tripletFiles({ ranks: dir, out: join(dir, 't') })).toThrow(/row 0 lists item 0 itself; a self-ranking leaves each item out \(ddistill search --exclude-self/);
    });
  });
});
