import { describe, expect, it } from 'vitest';
import { removeIgnored, revisitopPrecisionAt, standardAp, trapezoidAp } from '../src/eval/ap.js';
import { classMap, nsScore } from '../src/eval/classLevel.js';
import { rankPositions, ranking, rankingFromScores } from '../src/eval/ranking.js';
import { revisitedMap } from '../src/eval/revisited.js';
import type { RevisitedGroundTruth } from '../src/io/groundTruth.js';
import { writeFileSync } from 'node:fs';
import { evaluateFiles } from '../src/eval/run.js';
import { writeNpy } from '../src/io/npy.js';
import { withTempDir } from './helpers.js';

const I = (...xs: number[]) => Int32Array.from(xs);

describe('average precision, hand-worked', () => {
  it('positives at ranks [0, 2, 5] of 3: trapezoid 0.678, standard 0.722', () => {
    // Trapezoid: (1 + 1)/2 + (1/2 + 2/3)/2 + (2/5 + 3/6)/2 = 1 + 0.58333 + 0.45 = 2.03333; / 3
    expect(trapezoidAp(I(0, 2, 5), 3)).toBeCloseTo(2.0333333 / 3, 6);
    expect(trapezoidAp(I(0, 2, 5), 3).toFixed(3)).toBe('0.678');
    // Standard: (1/1 + 2/3 + 3/6) / 3
    expect(standardAp(I(0, 2, 5), 3).toFixed(3)).toBe('0.722');
  });

  it('a positive never retrieved counts as zero precision', () => {
    expect(standardAp(I(0), 2)).toBeCloseTo(0.5, 12);
  });

  it('junk removal shifts ranks of later positives', () => {
    // Ranking: P J P J J P  → positives at 0, 2, 5; junk at 1, 3, 4 → shifted 0, 1, 2.
    expect(Array.from(removeIgnored(I(0, 2, 5), I(1, 3, 4)))).toEqual([0, 1, 2]);
    expect(trapezoidAp(removeIgnored(I(0, 2, 5), I(1, 3, 4)), 3)).toBeCloseTo(1, 12);
  });

  it("revisitop's precision at k caps k at the last positive's rank", () => {
    // Positives at 1-based ranks 1, 3: P@1 = 1, P@5 → kq = 3 → 2/3; P@10 → 2/3.
    expect(revisitopPrecisionAt(I(0, 2), 1)).toBe(1);
    expect(revisitopPrecisionAt(I(0, 2), 5)).toBeCloseTo(2 / 3, 12);
    expect(revisitopPrecisionAt(I(0, 2), 10)).toBeCloseTo(2 / 3, 12);
  });
});

describe('rankings', () => {
  it('completes a truncated ranking with the unlisted items in index order', () => {
    const r = ranking(I(4, 2), 1, 6);
    expect(Array.from(rankPositions(r, 0))).toEqual([2, 3, 1, 4, 0, 5]);
  });

  it('rejects out-of-range and duplicate indices', () => {
    expect(() => ranking(I(0, 7), 1, 6)).toThrow(/not a database index/);
    expect(() => rankPositions(ranking(I(1, 1), 1, 6), 0)).toThrow(/twice/);
  });

  it('sorts scores stably (ties keep the lower index)', () => {
    const r = rankingFromScores(Float32Array.of(0.5, 0.9, 0.5, 0.1), 1, 4, 'descending');
    expect(Array.from(r.indices)).toEqual([1, 0, 2, 3]);
    const d = rankingFromScores(Float32Array.of(0.5, 0.9, 0.5, 0.1), 1, 4, 'ascending');
    expect(Array.from(d.indices)).toEqual([3, 0, 2, 1]);
  });
});

describe('revisited protocol', () => {
  // Database of 8 items, 3 queries.
  const gt: RevisitedGroundTruth = {
    imlist: Array.from({ length: 8 }, (_, i) => `db${i}`),
    qimlist: ['q0', 'q1', 'q2'],
    gnd: [
      { easy: I(0, 3), hard: I(5), junk: I(1), bbx: null },
      { easy: I(), hard: I(2), junk: I(), bbx: null }, // no easy positive: left out of Easy
      { easy: I(7), hard: I(), junk: I(0), bbx: null }, // no hard positive: left out of Hard
    ],
  };
  const r = ranking(
    I(
      0, 1, 2, 3, 4, 5, 6, 7, // q0
      2, 0, 1, 3, 4, 5, 6, 7, // q1
      0, 7, 1, 2, 3, 4, 5, 6, // q2
    ),
    3,
    8,
  );
  const res = revisitedMap(r, gt);

  it('Easy: ignores junk ∪ hard and skips queries without positives', () => {
    // q0 easy {0,3}, ignored {1,5}: ranks 0, 3 → shifted 0, 2 → AP = (1 + (1/2 + 2/3)/2 ... )
    const q0 = trapezoidAp(I(0, 2), 2);
    // q2 easy {7}, ignored {0}: rank 1 → shifted 0 → AP 1
    expect(res.easy.aps[0]).toBeCloseTo(q0, 12);
    expect(Number.isNaN(res.easy.aps[1]!)).toBe(true);
    expect(res.easy.aps[2]).toBeCloseTo(1, 12);
    expect(res.easy.mAP).toBeCloseTo((q0 + 1) / 2, 12);
  });

  it('Medium: positives easy ∪ hard, ignored junk', () => {
    // q0 {0,3,5}, junk {1}: ranks 0,3,5 → 0,2,4
    expect(res.medium.aps[0]).toBeCloseTo(trapezoidAp(I(0, 2, 4), 3), 12);
    expect(res.medium.aps[1]).toBeCloseTo(1, 12); // q1 {2} at rank 0
    expect(res.medium.aps[2]).toBeCloseTo(1, 12); // q2 {7} at rank 1, junk 0 before it
  });

  it('Hard: positives hard, ignored junk ∪ easy', () => {
    // q0 hard {5}, ignored {1,0,3}: rank 5 → 5 − 3 = 2 → AP = (0 + 1/3)/2
    expect(res.hard.aps[0]).toBeCloseTo(1 / 6, 12);
    expect(Number.isNaN(res.hard.aps[2]!)).toBe(true);
    expect(res.hard.mAP).toBeCloseTo((1 / 6 + 1) / 2, 12);
    expect(res.hard.mP[1]).toBeCloseTo((0 + 1) / 2, 12);
  });

  it('checks that the ranking matches the ground truth', () => {
    expect(() => revisitedMap(ranking(I(0, 1), 1, 8), gt)).toThrow(/1 queries but the ground truth has 3/);
  });
});

describe('class mAP and N-S score', () => {
  it('class mAP with separate queries, by hand', () => {
    // db labels: a a b b a ; query label a, ranking 2 0 3 1 4 → positives at 1, 3, 4
    const r = ranking(I(2, 0, 3, 1, 4), 1, 5);
    const res = classMap(r, I(0), I(0, 0, 1, 1, 0));
    expect(res.mAP).toBeCloseTo((1 / 2 + 2 / 4 + 3 / 5) / 3, 12);
  });

  it('self-retrieval removes the query from its own ranking and relevant set', () => {
    // Item 0 (label a) queries db a a b; its ranking 0 2 1 → without self: 2 1 → positive at 1.
    const r = ranking(I(0, 2, 1, 1, 0, 2, 2, 0, 1), 3, 3);
    const res = classMap(r, I(0, 0, 1), I(0, 0, 1), I(0, 1, 2));
    expect(res.aps[0]).toBeCloseTo(1 / 2, 12);
    expect(res.aps[1]).toBeCloseTo(1, 12);
    expect(Number.isNaN(res.aps[2]!)).toBe(true); // only item of its class
    expect(res.mAP).toBeCloseTo(0.75, 12);
  });

  it('N-S score counts group members in the top 4', () => {
    // Groups of 4: items 0–3 and 4–7. Query 0 finds 0 1 4 2 (3 of its group); query 5 finds 5 6 7 4.
    const r = ranking(I(0, 1, 4, 2, 3, 5, 6, 7, 5, 6, 7, 4, 0, 1, 2, 3), 2, 8);
    const groups = I(0, 0, 0, 0, 1, 1, 1, 1);
    expect(nsScore(r, I(0, 1), groups)).toBeCloseTo((3 + 4) / 2, 12);
  });
});

describe('N-S of a self-ranking', () => {
  it('counts each item as its own first result, so it equals the N-S of the same descriptors queried with eval --db', async () => {
    const { evaluateFiles, formatReport } = await import('../src/eval/run.js');
    // 8 unit-ish vectors, groups of 4: item 3 (0.6, 0.8) of the first group sits nearer the second.
    const x = { rows: 8, cols: 2, data: Float32Array.from([1, 0, 0.99, 0.1, 0.98, 0.2, 0.6, 0.8, 0, 1, 0.1, 0.99, 0.2, 0.98, 0.3, 0.95]) };
    const db = await evaluateFiles({ db: x, groups: '4', metric: 'euclidean', engine: 'js' });
    // The same search with each item left out of its own list: a self-ranking.
    const full = (await import('../src/eval/fullRanking.js')).fullRanking;
    const r = await full(x, null, 'euclidean', 'js');
    const lists = new Int32Array(8 * 7);
    for (let q = 0; q < 8; q++) lists.set(Array.from(r.indices.subarray(q * 8, q * 8 + 8)).filter((i) => i !== q), q * 7);
    const self = await evaluateFiles({ ranking: ranking(lists, 8, 8), groups: '4' });
    expect(self.protocol === 'ns' && self.selfRanking).toBe(true);
    expect(self.protocol === 'ns' && self.nsScore).toBe(db.protocol === 'ns' && db.nsScore);
    // Hand-worked: item 3's top 4 are 3, 7, 6, 5 (itself only); the other 7 items find all 4: (4·7 + 1)/8.
    expect(db.protocol === 'ns' && db.nsScore).toBeCloseTo(29 / 8, 10);
    expect(formatReport(self)).toMatch(/self-ranking: each item counted as its own first result/);
  });
});

describe('truncated rankings: completion by base distance', () => {
  it('a list of 2 out of 6, completed by the descriptors (hand-worked positions)', async () => {
    await withTempDir(async (dir) => {
      // One query at x = 0 on a line; items at 5, 1, 4, 2, 3, 6 (Euclidean order: 1, 3, 4, 2, 0, 5).
      writeNpy(`${dir}/db.npy`, { dtype: 'float32', shape: [6, 1], data: Float32Array.from([5, 1, 4, 2, 3, 6]) });
      writeNpy(`${dir}/q.npy`, { dtype: 'float32', shape: [1, 1], data: Float32Array.from([0]) });
      // The list ranks items 5 and 0 first (say, by diffusion); the label-0 items are 3 and 4.
      writeNpy(`${dir}/ranks.npy`, { dtype: 'int32', shape: [1, 2], data: Int32Array.from([5, 0]) });
      writeFileSync(`${dir}/labels.txt`, '1\n1\n1\n0\n0\n1\n');
      writeFileSync(`${dir}/qlabels.txt`, '0\n');
      const common = { ranks: `${dir}/ranks.npy`, labels: `${dir}/labels.txt`, queryLabels: `${dir}/qlabels.txt` };
      // Base completion: 5, 0, then 1, 3, 4, 2 → positives (3, 4) at ranks 4 and 5 (1-based):
      // AP = (1/4 + 2/5) / 2 = 0.325. Index order: 5, 0, 1, 2, 3, 4 → ranks 5 and 6: (1/5 + 2/6)/2.
      const byBase = await evaluateFiles({ ...common, db: `${dir}/db.npy`, query: `${dir}/q.npy`, metric: 'euclidean' });
      expect(byBase).toMatchObject({ mAP: 32.5, completion: 'base distance' });
      const byIndex = await evaluateFiles(common);
      expect(byIndex).toMatchObject({ mAP: Number((((1 / 5 + 2 / 6) / 2) * 100).toFixed(2)), completion: 'index order' });
    });
  });
});
