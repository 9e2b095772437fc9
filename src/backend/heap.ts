/**
 * The project's one heap: (value, id) pairs in typed arrays, ordered by value and then by id, the
 * tie order of every ranking here (equal values: the lower id first), so selections are
 * deterministic and match a stable sort.
 *
 * A 'max' heap has the last pair in that order on top: bounded to k pairs, it keeps the k first
 * ones (offer a pair, evict the top). A 'min' heap has the first pair on top: a priority queue
 * (Dijkstra's). Both grow when a push finds them full.
 */

/** True when (va, ia) comes before (vb, ib): the smaller value, or the same value and the lower id. */
export const pairBefore = (va: number, ia: number, vb: number, ib: number): boolean => va < vb || (va === vb && ia < ib);

export class PairHeap {
  vals: Float64Array;
  ids: Int32Array;
  size = 0;

  constructor(
    capacity: number,
    readonly top: 'max' | 'min',
  ) {
    this.vals = new Float64Array(Math.max(1, capacity));
    this.ids = new Int32Array(Math.max(1, capacity));
  }

  /** True when pair (va, ia) belongs above (vb, ib) in this heap. */
  private above(va: number, ia: number, vb: number, ib: number): boolean {
    return this.top === 'max' ? pairBefore(vb, ib, va, ia) : pairBefore(va, ia, vb, ib);
  }

  get topValue(): number {
    return this.vals[0]!;
  }

  get topId(): number {
    return this.ids[0]!;
  }

  clear(): void {
    this.size = 0;
  }

  /** Adds (value, id), growing the arrays when full. */
  push(value: number, id: number): void {
    if (this.size === this.vals.length) {
      const vals = new Float64Array(2 * this.size);
      const ids = new Int32Array(2 * this.size);
      vals.set(this.vals);
      ids.set(this.ids);
      this.vals = vals;
      this.ids = ids;
    }
    const { vals, ids } = this;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(value, id, vals[p]!, ids[p]!)) break;
      vals[i] = vals[p]!;
      ids[i] = ids[p]!;
      i = p;
    }
    vals[i] = value;
    ids[i] = id;
  }

  /**
   * Offers (value, id) to a heap bounded to `capacity` pairs: added while there is room, else it
   * replaces the top when it belongs below it. A 'max' heap thus keeps the `capacity` first pairs.
   * Returns whether the pair was kept.
   */
  offer(value: number, id: number, capacity: number): boolean {
    if (this.size < capacity) {
      this.push(value, id);
      return true;
    }
    if (!this.above(this.vals[0]!, this.ids[0]!, value, id)) return false;
    this.siftDown(value, id, this.size);
    return true;
  }

  /** Removes the top pair (read it first: topValue, topId). */
  pop(): void {
    const last = --this.size;
    if (last > 0) this.siftDown(this.vals[last]!, this.ids[last]!, last);
  }

  /**
   * Empties the heap into out[offset..offset + size) in order, the top pair last: a 'max' heap
   * writes its pairs first to last. Values go through `sign` (−1 undoes a negation). Returns the
   * number written.
   */
  drain(outVals: Float32Array | Float64Array, outIds: Int32Array, offset = 0, sign = 1): number {
    const count = this.size;
    for (let end = count - 1; end >= 0; end--) {
      outVals[offset + end] = sign * this.vals[0]!;
      outIds[offset + end] = this.ids[0]!;
      this.pop();
    }
    return count;
  }

  /** Puts (value, id) in the top slot and sifts it down among the first `size` pairs. */
  private siftDown(value: number, id: number, size: number): void {
    const { vals, ids } = this;
    let i = 0;
    for (;;) {
      let ch = 2 * i + 1;
      if (ch >= size) break;
      if (ch + 1 < size && this.above(vals[ch + 1]!, ids[ch + 1]!, vals[ch]!, ids[ch]!)) ch++;
      if (!this.above(vals[ch]!, ids[ch]!, value, id)) break;
      vals[i] = vals[ch]!;
      ids[i] = ids[ch]!;
      i = ch;
    }
    vals[i] = value;
    ids[i] = id;
  }
}
