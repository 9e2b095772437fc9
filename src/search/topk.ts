/**
 * Top-k selection in typed arrays. Order: larger value first; on equal values the lower index
 * first (so results are deterministic and match a stable sort).
 */

/** True when (va, ia) ranks after (vb, ib). */
const worse = (va: number, ia: number, vb: number, ib: number) => va < vb || (va === vb && ia > ib);

/**
 * Selects the k best of `values` (indices offset by `indexOffset`) into outVals/outIdx starting at
 * `outOffset`, sorted best first. Uses a bounded heap: O(n log k).
 */
export function selectTopK(
  values: Float32Array | Float64Array,
  k: number,
  outVals: Float32Array | Float64Array,
  outIdx: Int32Array,
  outOffset = 0,
  indexOffset = 0,
): void {
  const n = values.length;
  const m = Math.min(k, n);
  // Min-heap (worst on top) of size m in the output slots.
  const hv = outVals.subarray(outOffset, outOffset + m);
  const hi = outIdx.subarray(outOffset, outOffset + m);
  let size = 0;
  const siftDown = (start: number) => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      let w = l;
      if (r < size && worse(hv[r]!, hi[r]!, hv[l]!, hi[l]!)) w = r;
      if (!worse(hv[w]!, hi[w]!, hv[i]!, hi[i]!)) break;
      const tv = hv[i]!, ti = hi[i]!;
      hv[i] = hv[w]!; hi[i] = hi[w]!;
      hv[w] = tv; hi[w] = ti;
      i = w;
    }
  };
  for (let j = 0; j < n; j++) {
    const v = values[j]!;
    const idx = j + indexOffset;
    if (size < m) {
      let i = size++;
      hv[i] = v;
      hi[i] = idx;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(hv[i]!, hi[i]!, hv[p]!, hi[p]!)) break;
        const tv = hv[i]!, ti = hi[i]!;
        hv[i] = hv[p]!; hi[i] = hi[p]!;
        hv[p] = tv; hi[p] = ti;
        i = p;
      }
    } else if (worse(hv[0]!, hi[0]!, v, idx)) {
      hv[0] = v;
      hi[0] = idx;
      siftDown(0);
    }
  }
  // Heap sort in place: repeatedly move the worst to the end.
  for (let end = size - 1; end > 0; end--) {
    const tv = hv[0]!, ti = hi[0]!;
    hv[0] = hv[end]!; hi[0] = hi[end]!;
    hv[end] = tv; hi[end] = ti;
    size = end;
    siftDown(0);
  }
}

/**
 * Merges two best-first lists (a then b; on equal values a's entries win, which is right when a's
 * indices are all lower) into the k best, written to out.
 */
export function mergeTopK(
  aVals: Float32Array, aIdx: Int32Array,
  bVals: Float32Array, bIdx: Int32Array,
  k: number,
  outVals: Float32Array, outIdx: Int32Array,
): number {
  let i = 0, j = 0, o = 0;
  while (o < k && (i < aVals.length || j < bVals.length)) {
    if (j >= bVals.length || (i < aVals.length && !worse(aVals[i]!, aIdx[i]!, bVals[j]!, bIdx[j]!))) {
      outVals[o] = aVals[i]!; outIdx[o++] = aIdx[i++]!;
    } else {
      outVals[o] = bVals[j]!; outIdx[o++] = bIdx[j++]!;
    }
  }
  return o;
}
