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
  /** The pairs, stored signed (value·flip, id·flip): a 'min' heap over them either way. */
  private vals: Float64Array;
  private ids: Int32Array;
  size = 0;
  /**
   * +1 for a 'min' heap, −1 for a 'max' one, whose pairs are stored negated so that one min-order
   * comparison serves both: the sifting loops, which run millions of times in CAS's geodesic
   * ranking, hold no branch on the kind and no multiplication.
   */
  private readonly flip: number;

  constructor(
    capacity: number,
    readonly top: 'max' | 'min',
  ) {
    this.vals = new Float64Array(Math.max(1, capacity));
    this.ids = new Int32Array(Math.max(1, capacity));
    this.flip = top === 'max' ? -1 : 1;
  }

  get topValue(): number {
    return this.flip * this.vals[0]!;
  }

  get topId(): number {
    return this.flip * this.ids[0]!;
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
    this.siftUp(this.flip * value, this.flip * id);
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
    const v = this.flip * value;
    const i = this.flip * id;
    if (!pairBefore(this.vals[0]!, this.ids[0]!, v, i)) return false;
    this.siftDown(v, i, this.size);
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
      outVals[offset + end] = sign * this.topValue;
      outIds[offset + end] = this.topId;
      this.pop();
    }
    return count;
  }

  /** Puts the signed pair (v, i) in a new last slot and sifts it up. */
  private siftUp(v: number, i: number): void {
    const { vals, ids } = this;
    let at = this.size++;
    while (at > 0) {
      const p = (at - 1) >> 1;
      if (!pairBefore(v, i, vals[p]!, ids[p]!)) break;
      vals[at] = vals[p]!;
      ids[at] = ids[p]!;
      at = p;
    }
    vals[at] = v;
    ids[at] = i;
  }

  /** Puts the signed pair (v, i) in the top slot and sifts it down among the first `size` pairs. */
  private siftDown(v: number, i: number, size: number): void {
    const { vals, ids } = this;
    let at = 0;
    for (;;) {
      let ch = 2 * at + 1;
      if (ch >= size) break;
      if (ch + 1 < size && pairBefore(vals[ch + 1]!, ids[ch + 1]!, vals[ch]!, ids[ch]!)) ch++;
      if (!pairBefore(vals[ch]!, ids[ch]!, v, i)) break;
      vals[at] = vals[ch]!;
      ids[at] = ids[ch]!;
      at = ch;
    }
    vals[at] = v;
    ids[at] = i;
  }
}
