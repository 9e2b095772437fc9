/**
 * Training options, settled in one place: their types and defaults (the paper's, TRAIN_DEFAULTS;
 * the head's, HEAD_DEFAULTS), the measured recipes (MNIST, the photo head), and `resolveTraining`,
 * which merges what a user gave over the recipe that applies. Every entry point (the CLI, the
 * bootstrap plan, trainFiles, trainImages) resolves through it, and stages pass the result on.
 *
 * The paper's defaults (k 300, m0 0.1, batch 40, lr 0.01) suit landmark collections, whose
 * relevant sets are tens to hundreds of items; MNIST's classes hold ~950 database digits each, so
 * its triplet range must reach past them (docs/algorithms.md §4).
 */
import type { HeadInit, HeadKind } from '../model/head.js';
import { isPretrained } from '../model/backbones.js';
import type { PcaMethod } from '../model/pca.js';
import { TRIPLET_DEFAULTS, type TripletOptions } from '../triplets/mining.js';

export type Schedule = 'cosine' | 'linear' | 'step' | 'constant';
/** The distillation losses (docs/algorithms.md §4). */
export type Loss = 'triplet' | 'contrastive';
export const LOSSES: readonly Loss[] = ['triplet', 'contrastive'];
export const SCHEDULES: readonly Schedule[] = ['cosine', 'linear', 'step', 'constant'];

export interface TrainOptions {
  /** Triplets per step (paper: 40). */
  readonly batch: number;
  /** Initial learning rate (paper: 0.01). */
  readonly lr: number;
  /** How it decays to the end of training (paper: "gradually attenuates"). */
  readonly schedule: Schedule;
  readonly momentum: number;
  readonly weightDecay: number;
  /** Passes over the mined triplets (n anchors × perAnchor each). */
  readonly epochs: number;
  /** If set, the total number of steps instead (epochs then count whole passes only). */
  readonly steps: number | null;
  readonly seed: number;
  /** Triplets per forward pass (gradient accumulation up to `batch`); null: the whole batch. */
  readonly microBatch?: number | null;
  /**
   * Batch normalisation during training: 'train' uses batch statistics and updates the moving
   * averages; 'frozen' keeps the stored statistics (fine-tuning a pretrained backbone on small
   * batches). Layers without batch normalisation are unaffected.
   */
  readonly batchNorm?: 'train' | 'frozen';
  /**
   * Image-wise backward: the step's embeddings are computed first without keeping activations,
   * then each image's backward pass runs alone with its embedding's loss gradient — the same
   * gradient (per-image batch-norm statistics) with one image's activations in memory, for one
   * extra forward pass. What lets the paper's 600-px images train in the wasm heap.
   */
  readonly imageWise?: boolean;
  /**
   * Triplet mining: k, m0 and triplets per anchor per epoch (its seed is ignored: see `seed`).
   * k 'auto' is resolved from the teacher's distances before training (src/triplets/range.ts).
   */
  readonly triplets: Omit<TripletOptions, 'seed' | 'k' | 'anchors'> & { readonly k: number | 'auto' };
  /**
   * The loss: 'triplet', the paper's soft-margin triplets drawn from the teacher's top k;
   * 'contrastive', InfoNCE: each anchor's positive is drawn from the teacher's top `positives`
   * ('auto': the relevant set the teacher's distances show, src/triplets/range.ts) and the batch's
   * other positives are its negatives, at softmax temperature `temperature`.
   */
  readonly loss: Loss;
  readonly contrastive: { readonly positives: number | 'auto'; readonly temperature: number };
}

export const TRAIN_DEFAULTS: TrainOptions = Object.freeze({
  batch: 40,
  lr: 0.01,
  schedule: 'cosine',
  momentum: 0.9,
  weightDecay: 1e-4,
  epochs: 10,
  steps: null,
  seed: 0,
  triplets: { k: TRIPLET_DEFAULTS.k, m0: TRIPLET_DEFAULTS.m0, perAnchor: TRIPLET_DEFAULTS.perAnchor },
  loss: 'triplet',
  contrastive: { positives: 10, temperature: 0.05 },
});

/** Training options as a user gives them: any field, the triplets' fields too, may be left out. */
export type PartialTrainOptions = Partial<Omit<TrainOptions, 'triplets' | 'contrastive'>> & { triplets?: Partial<TrainOptions['triplets']>; contrastive?: Partial<TrainOptions['contrastive']> };

export interface HeadOptions {
  readonly kind: HeadKind;
  readonly dim: number;
  readonly hidden: number;
  readonly init: HeadInit;
  readonly pcaMethod: PcaMethod;
}

export const HEAD_DEFAULTS: HeadOptions = Object.freeze({ kind: 'residual', dim: 128, hidden: 1024, init: 'pca', pcaMethod: 'auto' });

export interface Recipe {
  readonly description: string;
  /** Neighbours kept by the teacher's self-ranking (≥ the triplet range). */
  readonly teacherTopK: number;
  readonly head: Partial<HeadOptions>;
  readonly train: PartialTrainOptions;
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
 * L2-normalised descriptors with the contrastive loss, positives from the core of the sets the
 * teacher's distances show, τ 0.2 (docs/algorithms.md §4, its ablation). Measured (2 cores, wasm):
 * see BENCHMARKS.md (`npm run bench:photos`), where the triplets gave 71.37 on Flowers-17 and
 * 67.45 on Caltech-50. Fine-tuning the last MobileNet blocks instead collapsed
 * (54.33 → 45.63 → 14.58; docs/algorithms.md).
 */
export const PHOTO_HEAD_RECIPE: Recipe = Object.freeze({
  description: 'frozen pretrained backbone + GeM, residual head d→512→128 (PCA init), contrastive loss: positives from the teacher\'s top n, n auto (0.8 × the set size the teacher\'s distances show, past near-duplicates), the teacher\'s positives of an anchor left out of its negatives, τ 0.2; batch 256, lr 0.05 cosine, wd 1e-4 (none on biases), 1,000 steps per iteration, the verdict by agreement with the teacher on 10 % held out',
  teacherTopK: 300,
  head: { kind: 'residual', dim: 128, hidden: 512, init: 'pca' } as const,
  train: { batch: 256, lr: 0.05, schedule: 'cosine' as const, steps: 1000, triplets: { k: 'auto' as const, m0: 0.5 }, loss: 'contrastive' as const, contrastive: { positives: 'auto' as const, temperature: 0.2 } },
});

/** `freezeUntil` value that freezes the whole backbone and GeM and trains a descriptor head. */
export const FREEZE_ALL = 'all';
/** `freezeUntil` value that trains every layer. */
export const FREEZE_NONE = 'none';

/** What is frozen when nothing is said: all of a pretrained backbone; nothing of a random one. */
export const defaultFreeze = (backbone: string, weights?: string): string => (isPretrained(backbone, weights) ? FREEZE_ALL : FREEZE_NONE);

/** The fields of `o` that are set (undefined ones leave the defaults alone). */
const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/**
 * Merges partial training options over the defaults and a recipe's, field by field. Epochs given
 * without steps count epochs, whatever steps the recipe sets.
 */
function trainOptions(partial: PartialTrainOptions = {}, base: PartialTrainOptions = {}): TrainOptions {
  const { triplets, contrastive, ...rest } = partial;
  const { triplets: baseTriplets, contrastive: baseContrastive, ...baseRest } = base;
  const epochsOnly = rest.epochs !== undefined && rest.steps === undefined ? { steps: null } : {};
  return {
    ...TRAIN_DEFAULTS, ...defined(baseRest), ...epochsOnly, ...defined(rest),
    triplets: { ...TRAIN_DEFAULTS.triplets, ...defined(baseTriplets ?? {}), ...defined(triplets ?? {}) },
    contrastive: { ...TRAIN_DEFAULTS.contrastive, ...defined(baseContrastive ?? {}), ...defined(contrastive ?? {}) },
  } as TrainOptions;
}

/** The training options and head of a run. */
export interface ResolvedTraining {
  readonly train: TrainOptions;
  readonly head: HeadOptions;
}

/**
 * The one resolution of training options: what the user gave (any field may be missing) over the
 * recipe that applies — the photo head's (PHOTO_HEAD_RECIPE) for a head on a frozen image
 * backbone (`freezeUntil` FREEZE_ALL), else the paper's defaults — over the defaults. Resolving
 * resolved options gives them back unchanged.
 */
export function resolveTraining(o: { readonly train?: PartialTrainOptions; readonly head?: Partial<HeadOptions>; readonly freezeUntil?: string | null }): ResolvedTraining {
  const recipe = o.freezeUntil === FREEZE_ALL ? PHOTO_HEAD_RECIPE : null;
  return {
    train: trainOptions(o.train, recipe?.train),
    head: { ...HEAD_DEFAULTS, ...recipe?.head, ...defined(o.head ?? {}) } as HeadOptions,
  };
}
