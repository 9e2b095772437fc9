/** Typed-array helpers shared by the numeric kernels. */

/** A copy of `a` with room for at least `need` elements (doubling). */
export function grown<T extends Int32Array | Float64Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const out = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  out.set(a);
  return out;
}
