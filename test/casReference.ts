/**
 * A dense, deliberately plain CAS written for the tests from docs/algorithms.md §1, step by step, in
 * float64 with n × n arrays of arrays. Slow (O(n³)) and only for small n; the optimised
 * implementation must agree with it.
 */
import type { CasParams } from '../src/diffusion/cas.js';

type Mat = number[][];
const zeros = (n: number, m = n): Mat => Array.from({ length: n }, () => new Array<number>(m).fill(0));
const l1Rows = (A: Mat): Mat =>
  A.map((r) => {
    const s = r.reduce((a, b) => a + b, 0);
    return s > 0 ? r.map((v) => v / s) : r.slice();
  });
function matmul(A: Mat, B: Mat): Mat {
  const n = A.length;
  const m = B[0]!.length;
  const C = zeros(n, m);
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < B.length; l++) {
      const a = A[i]![l]!;
      if (a === 0) continue;
      for (let j = 0; j < m; j++) C[i]![j]! += a * B[l]![j]!;
    }
  }
  return C;
}

/** Final CAS distances, queries × database (X = [queries; database] as the reference does). */
export function casReferenceDistances(queries: number[][], db: number[][], p: CasParams): Mat {
  const nq = queries.length;
  const all = casReferenceGraph([...queries, ...db], p);
  return all.slice(0, nq).map((row) => row.slice(nq));
}

/** Final CAS distances among the rows of X, n × n: the graph a database self-ranking uses. */
export function casReferenceGraph(rows: number[][], p: CasParams): Mat {
  const X = rows.map((r) => {
    const nrm = Math.sqrt(r.reduce((a, b) => a + b * b, 0));
    return r.map((v) => v / nrm);
  });
  const n = X.length;
  // D: squared distances, each row divided by its maximum.
  const D = zeros(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) D[i]![j] = i === j ? 0 : X[i]!.reduce((s, v, l) => s + (v - X[j]![l]!) ** 2, 0);
    const max = Math.max(...D[i]!);
    D[i] = D[i]!.map((v) => v / max);
  }
  const rank = D.map((row, i) => row.map((_, j) => j).sort((a, b) => (a === i ? -1 : b === i ? 1 : row[a]! - row[b]! || a - b)));
  const A = D.map((row) => row.map((d) => Math.exp(-d / (p.sigma * p.sigma))));
  const topSet = (i: number, m: number) => new Set(rank[i]!.slice(0, m));
  const mutual = (i: number, m: number) => rank[i]!.slice(0, m).filter((j) => topSet(j, m).has(i));

  // 1. Confident, candidate and semi-candidate sets.
  const conf = X.map((_, i) => new Set(mutual(i, p.k1)));
  const cand = X.map((_, i) => {
    const cand0 = new Set(mutual(i, p.k2 + 1));
    const c = new Set(cand0);
    for (let r = 0; r <= p.k2; r++) {
      const b = rank[i]![r]!;
      if (!cand0.has(b)) continue;
      const exp = mutual(b, Math.floor(p.k2 / 2) + 1);
      const inter = exp.filter((e) => cand0.has(e)).length;
      if (inter > (2 / 3) * exp.length) for (const e of exp) c.add(e);
    }
    return c;
  });

  // 2. Bidirectional similarity diffusion, 10 steps from F = W.
  let W = zeros(n);
  for (let i = 0; i < n; i++) {
    for (let r = 1; r < p.k1; r++) {
      const j = rank[i]![r]!;
      W[i]![j] = A[i]![j]! * (conf[i]!.has(j) ? p.lambdaC : 1);
    }
  }
  W = W.map((row, i) => row.map((v, j) => (v + W[j]![i]!) / 2));
  const deg = W.map((r) => r.reduce((a, b) => a + b, 0));
  const S = W.map((row, i) => row.map((v, j) => v / Math.sqrt(deg[i]! * deg[j]!)));
  const alpha = 1 / (1 + p.mu);
  let F = W.map((r) => r.slice());
  for (let t = 0; t < p.iterations; t++) {
    const FS = matmul(F, S);
    const SF = matmul(S, F);
    F = F.map((row, i) => row.map((_, j) => (alpha / 2) * (FS[i]![j]! + SF[i]![j]!) + (i === j ? 1 - alpha : 0)));
  }

  // 3. Neighbour-guided similarity smoothing.
  let T = zeros(n);
  for (let i = 0; i < n; i++) for (let r = 1; r < p.k3; r++) T[i]![rank[i]![r]!] = A[i]![rank[i]![r]!]!;
  T = l1Rows(T);
  const Fhat = referenceSmoothing(T, F, conf, cand, p.beta);

  // 4. Neighbour-enhanced representation and extra propagation.
  let M = zeros(n);
  for (let i = 0; i < n; i++) {
    const near = rank[i]!.slice(0, p.k4);
    const ci = [...conf[i]!];
    for (let j = 0; j < n; j++) {
      const meanNear = near.reduce((s, r) => s + Fhat[r]![j]!, 0) / p.k4;
      const meanConf = ci.reduce((s, c) => s + Fhat[c]![j]!, 0) / ci.length;
      M[i]![j] = (meanNear + p.lv * meanConf) / (1 + p.lv);
    }
  }
  M = l1Rows(M);
  const K = matmul(M, M);
  const Tm = l1Rows(
    K.map((row) => {
      const keep = new Set(row.map((_, j) => j).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, p.k5));
      return row.map((v, j) => (keep.has(j) ? v : 0));
    }),
  );
  const V = l1Rows(matmul(Tm, Tm));

  // 5. Jensen–Shannon divergence (log₂, ½), geodesic refinement, final mix.
  const jsd = (a: number[], b: number[]) => {
    let s = 0;
    for (let k = 0; k < n; k++) {
      const m = (a[k]! + b[k]!) / 2;
      if (a[k]! > 0) s += 0.5 * a[k]! * Math.log2(a[k]! / m);
      if (b[k]! > 0) s += 0.5 * b[k]! * Math.log2(b[k]! / m);
    }
    return s;
  };
  const J = V.map((a) => V.map((b) => jsd(a, b)));
  let G: Mat;
  if (p.geodesic) {
    const cap = p.geodesicCap;
    G = zeros(n).map((row) => row.map(() => cap));
    for (let i = 0; i < n; i++) for (const j of rank[i]!.slice(0, p.geodesicNeighbours)) G[i]![j] = J[i]![j]!;
    for (let i = 0; i < n; i++) G[i]![i] = 0;
    G = G.map((row, i) => row.map((v, j) => Math.min(cap, Math.max(0, Math.min(v, G[j]![i]!)))));
    for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) G[i]![j] = Math.min(G[i]![j]!, G[i]![k]! + G[k]![j]!);
  } else {
    G = J;
  }
  return G.map((row, i) => row.map((g, j) => (1 - p.lambda) * g + p.lambda * D[i]![j]!));
}

/**
 * Step 3, the neighbour-guided smoothing, on dense matrices: T (rows L1-normalised), the diffused
 * F, the confident and candidate sets; F̂ rows L1-normalised.
 */
export function referenceSmoothing(T: Mat, F: Mat, conf: readonly Set<number>[], cand: readonly Set<number>[], beta: number): Mat {
  const n = T.length;
  const P = matmul(T, T);
  const Fhat = zeros(n);
  for (let i = 0; i < n; i++) {
    const ci = [...conf[i]!];
    const semi = [...cand[i]!].filter((j) => !conf[i]!.has(j));
    const kappa = ci.length > 1 ? ci.reduce((s, c) => s + P[c]![c]!, 0) / ci.length : 1;
    const omega = new Map<number, number>();
    for (const j of cand[i]!) omega.set(j, kappa);
    if (ci.length > 1 && semi.length > 1) {
      for (const j of semi) omega.set(j, Math.min(ci.reduce((s, c) => s + P[j]![c]!, 0) / ci.length, kappa));
    }
    const m = cand[i]!.size;
    let sumS = 0;
    let sumSW = 0;
    for (const j of cand[i]!) {
      sumS += F[i]![j]!;
      sumSW += F[i]![j]! * omega.get(j)!;
    }
    const tI = (kappa * kappa * sumS - kappa * sumSW) / m;
    for (const j of cand[i]!) {
      Fhat[i]![j] = (F[i]![j]! * (kappa * omega.get(j)! + 2 * beta) + tI) / (kappa * kappa + 2 * beta);
    }
  }
  return l1Rows(Fhat);
}
