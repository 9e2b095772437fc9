/**
 * Measured training recipes. The paper's defaults (k 300, m0 0.1, batch 40, lr 0.01) suit
 * landmark collections, whose relevant sets are tens to hundreds of items; MNIST's classes hold
 * ~950 database digits each, so its triplet range must reach past them (docs/algorithms.md §4).
 */
import type { TrainFilesOptions } from './run.js';

export interface Recipe {
  readonly description: string;
  /** Neighbours kept by the teacher's self-ranking (≥ the triplet range). */
  readonly teacherTopK: number;
  readonly head: NonNullable<TrainFilesOptions['head']>;
  readonly train: NonNullable<TrainFilesOptions['train']>;
}

/** MNIST (9,500 database digits): CAS teacher, residual head 784 → 128. See BENCHMARKS.md. */
export const MNIST_RECIPE: Recipe = Object.freeze({
  description: 'MNIST split: CAS self-ranking top-3000, residual head 784→1024→128 (PCA init), k 3000, m0 0.5, batch 256, lr 0.05 cosine, wd 1e-4',
  teacherTopK: 3000,
  head: { kind: 'residual', dim: 128, hidden: 1024, init: 'pca' } as const,
  train: { batch: 256, lr: 0.05, schedule: 'cosine' as const, momentum: 0.9, weightDecay: 1e-4, steps: 3000, epochs: 10, triplets: { k: 3000, m0: 0.5, perAnchor: 10 } },
});

/**
 * The built-in demo's recipe: a narrower residual head (hidden 512) trained with smaller batches,
 * so that two bootstrap iterations, the baseline and CAS re-ranking fit in about 10 minutes on a
 * 2-core CPU. Measured on one iteration: query mAP 68.55 after 3,000 steps (BENCHMARKS.md).
 */
export const MNIST_DEMO_RECIPE: Recipe = Object.freeze({
  description: 'CAS self-ranking top-3000, residual head 784→512→128 (PCA init), k 3000, m0 0.5, batch 128, lr 0.05 cosine, wd 1e-4, 2400 steps per iteration',
  teacherTopK: 3000,
  head: { kind: 'residual', dim: 128, hidden: 512, init: 'pca' } as const,
  train: { ...MNIST_RECIPE.train, batch: 128, steps: 2400 },
});

/**
 * Image mode on a pretrained backbone (the default): the backbone and GeM stay frozen and are run
 * once; a residual head (768 → 512 → 128 on the shipped MobileNet) is trained on their
 * L2-normalised descriptors. Measured on Flowers-17 (1,190 training photos, 2 cores, wasm):
 * class mAP 54.55 → 71.68 → 75.28 over two bootstrap iterations (CAS re-ranking 80.71), about
 * 100 s of training per iteration. Fine-tuning the last MobileNet blocks instead collapsed
 * (54.33 → 45.63 → 14.58; docs/algorithms.md).
 */
export const PHOTO_HEAD_RECIPE: Recipe = Object.freeze({
  description: 'frozen pretrained backbone + GeM, residual head d→512→128 (PCA init), k auto (8 × the relevant set the teacher shows), m0 0.5, batch 256, lr 0.05 cosine, wd 1e-4 (none on biases), up to 500 steps per iteration, best epoch by agreement with the teacher on 10 % held out',
  teacherTopK: 300,
  head: { kind: 'residual', dim: 128, hidden: 512, init: 'pca' } as const,
  train: { batch: 256, lr: 0.05, schedule: 'cosine' as const, steps: 500, triplets: { k: 'auto' as const, m0: 0.5 } },
});
