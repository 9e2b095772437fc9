/**
 * Average precision, the two definitions the field uses. Both take the sorted 0-based ranks of the
 * positives (after ignored items were removed) and the number of positives.
 */

/**
 * Revisitop's AP: trapezoid rule over the precision–recall curve, recall step 1/nPositives. For
 * the j-th positive (0-based) at rank r it adds ((j/r, or 1 when r = 0) + (j+1)/(r+1)) / 2.
 * Example: positives at ranks [0, 2, 5] of 3 → 0.678.
 */
export function trapezoidAp(ranks: ArrayLike<number>, nPositives: number): number {
  let ap = 0;
  for (let j = 0; j < ranks.length; j++) {
    const r = ranks[j]!;
    const p0 = r === 0 ? 1 : j / r;
    const p1 = (j + 1) / (r + 1);
    ap += (p0 + p1) / 2;
  }
  return ap / nPositives;
}

/**
 * Standard non-interpolated AP: mean over positives of the precision at their rank.
 * Example: positives at ranks [0, 2, 5] of 3 → (1 + 2/3 + 3/6) / 3 = 0.722.
 */
export function standardAp(ranks: ArrayLike<number>, nPositives: number): number {
  let ap = 0;
  for (let j = 0; j < ranks.length; j++) ap += (j + 1) / (ranks[j]! + 1);
  return ap / nPositives;
}

/**
 * Shifts the sorted ranks of positives down by the number of ignored (junk) items ranked before
 * each of them, as revisitop does before computing AP. Both inputs sorted ascending.
 */
export function removeIgnored(positives: Int32Array, ignored: Int32Array): Int32Array {
  const out = new Int32Array(positives.length);
  let k = 0;
  for (let p = 0; p < positives.length; p++) {
    while (k < ignored.length && ignored[k]! < positives[p]!) k++;
    out[p] = positives[p]! - k;
  }
  return out;
}

/**
 * Revisitop's precision at k: with 1-based positive ranks `pos`, kq = min(max(pos), k) and the
 * precision is |{pos ≤ kq}| / kq (so a query whose positives all rank above k is not penalised for
 * the missing ones).
 */
export function revisitopPrecisionAt(ranks: Int32Array, k: number): number {
  if (ranks.length === 0) return 0;
  const maxPos = ranks[ranks.length - 1]! + 1;
  const kq = Math.min(maxPos, k);
  let c = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i]! + 1 <= kq) c++;
  return c / kq;
}
