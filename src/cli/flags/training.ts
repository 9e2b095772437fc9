/** The head, triplet, optimiser and backend flags, shared by `train`, `bootstrap` and the demo. */
import { Option, type Command } from 'commander';
import type { EngineChoice } from '../../backend/dense.js';
import { BACKEND_CHOICES, type BackendChoice } from '../../backend/tfjs.js';
import { HEAD_INITS, HEAD_KINDS, type HeadInit, type HeadKind } from '../../model/head.js';
import type { PcaMethod } from '../../model/pca.js';
import { defaultWorkers, PARALLEL_ABOVE_TRIPLETS } from '../../train/dataParallel.js';
import { HEAD_DEFAULTS, LOSSES, PHOTO_HEAD_RECIPE, SCHEDULES, TRAIN_DEFAULTS, type HeadOptions, type Loss, type PartialTrainOptions, type Schedule } from '../../train/options.js';
import { SELECTION_DEFAULTS, type SelectionOptions } from '../../train/selection.js';
import { RANGE_RULE } from '../../triplets/range.js';
import { aliased, hiddenAlias } from '../common.js';
import { belowOne, holdOutShare, integer, nonNegative, parsePositiveInt, positive, tripletRangeFlag } from './numbers.js';

export interface TrainingFlags {
  head: HeadKind;
  dim?: number;
  hidden?: number;
  init: HeadInit;
  pcaMethod: PcaMethod;
  tripletRange?: number | 'auto';
  k?: number | 'auto';
  m0?: number;
  perAnchor: number;
  loss?: Loss;
  positives?: number | 'auto';
  temperature?: number;
  holdOut?: number;
  patience?: number;
  batch?: number;
  lr?: number;
  schedule: Schedule;
  momentum: number;
  weightDecay: number;
  epochs?: number;
  steps?: number;
  seed: number;
  microBatch?: number;
  batchNorm?: 'train' | 'frozen';
  imageWise?: boolean;
  normalize: boolean;
  backend: BackendChoice;
  workers?: number;
  engine: EngineChoice;
  config?: string;
}

/** --workers, for train, bootstrap and the demo. */
export const workersHelp =
  `worker threads training data-parallel on wasm, each on a share of every batch (the same model as one thread, up to rounding); default: ${defaultWorkers()}, this machine's cores, for runs of ${PARALLEL_ABOVE_TRIPLETS.toLocaleString('en')} triplets or more (steps × batch), else 1`;

/** Where PHOTO_HEAD_RECIPE's defaults apply, for help texts. */
const PHOTO = ' on a frozen image backbone';

/** The head, triplet, optimiser and backend options, shared by `train` and `bootstrap`. */
export function addTrainingOptions(cmd: Command): Command {
  const d = TRAIN_DEFAULTS;
  const p = PHOTO_HEAD_RECIPE;
  return cmd
    .addOption(new Option('--head <kind>', 'network on the descriptors').choices(HEAD_KINDS).default(HEAD_DEFAULTS.kind))
    .option('--dim <n>', `embedding dimension (default: ${HEAD_DEFAULTS.dim})`, parsePositiveInt)
    .option('--hidden <n>', `hidden width (residual, mlp) (default: ${HEAD_DEFAULTS.hidden}; ${p.head.hidden} on a frozen backbone${PHOTO})`, parsePositiveInt)
    .addOption(new Option('--init <how>', 'initial projection').choices(HEAD_INITS).default(HEAD_DEFAULTS.init))
    .addOption(new Option('--pca-method <m>', 'eigenvectors: exact (ml-matrix) or subspace iteration').choices(['auto', 'exact', 'subspace']).default('auto'))
    .option('--triplet-range <n|auto>', `triplets are drawn from each item's top n in the diffusion ranking; auto: ${RANGE_RULE.multiple} × the relevant-set size estimated from the teacher's distances (default: ${d.triplets.k}; ${p.train.triplets!.k}${PHOTO})`, tripletRangeFlag)
    .addOption(hiddenAlias('-k, --k <n|auto>', tripletRangeFlag))
    .option('--m0 <x>', `margin scale (default: ${d.triplets.m0}; ${p.train.triplets!.m0}${PHOTO})`, nonNegative)
    .option('--per-anchor <n>', 'triplets (or pairs) per anchor per epoch', parsePositiveInt, d.triplets.perAnchor)
    .addOption(new Option('--loss <name>', `distillation loss: triplet (the paper's soft-margin triplets from the top --triplet-range) or contrastive (InfoNCE: a positive from the teacher's top --positives, the batch's other positives as negatives, except those in the anchor's own top --positives) (default: ${d.loss})`).choices(LOSSES))
    .option('--positives <n|auto>', `contrastive: the teacher's top n from which each anchor's positive is drawn; auto: 0.8 × the set size the teacher's distances show, past near-duplicates, less the held-out share (default: ${d.contrastive.positives}; ${p.train.contrastive!.positives}${PHOTO})`, tripletRangeFlag)
    .option('--temperature <x>', `contrastive: softmax temperature τ (default: ${d.contrastive.temperature})`, positive)
    .option('--batch <n>', `triplets per step (default: ${d.batch}; ${p.train.batch}${PHOTO})`, parsePositiveInt)
    .option('--lr <x>', `initial learning rate (default: ${d.lr}; ${p.train.lr}${PHOTO})`, positive)
    .addOption(new Option('--schedule <s>', 'learning-rate decay').choices(SCHEDULES).default(d.schedule))
    .option('--momentum <x>', 'SGD momentum', belowOne, d.momentum)
    .option('--weight-decay <x>', 'L2 weight decay', nonNegative, d.weightDecay)
    .option('--epochs <n>', `passes over the mined triplets (default: ${d.epochs})`, parsePositiveInt)
    .option('--steps <n>', `total steps instead of --epochs (default: ${p.train.steps}${PHOTO})`, parsePositiveInt)
    .option('--seed <n>', 'seed of initialisation, mining and shuffling', integer, d.seed)
    .option('--hold-out <f>', `fraction of the items kept out of training to check, without labels, that the model agrees with the teacher better than its input; keeps the best epoch and stops early (0: off; default: ${SELECTION_DEFAULTS.holdOut} in bootstrap, 0 in train)`, holdOutShare)
    .option('--patience <n>', `with --hold-out: epochs without a better agreement before stopping (default: ${SELECTION_DEFAULTS.patience})`, parsePositiveInt)
    .option('--micro-batch <n>', 'triplets per forward pass (gradient accumulation)', parsePositiveInt)
    .addOption(new Option('--batch-norm <mode>', 'image mode: batch statistics (train) or stored (frozen)').choices(['train', 'frozen']))
    .option('--image-wise', 'image mode: backward pass one image at a time (large images; one extra forward)')
    .option('--no-normalize', 'do not L2-normalise the descriptors first')
    .addOption(new Option('--backend <name>', 'tfjs backend (auto: tensorflow > wasm > cpu)').choices(BACKEND_CHOICES).default('auto'))
    .option('--workers <n>', workersHelp, parsePositiveInt)
    .addOption(new Option('--engine <name>', 'dense products (PCA, validation)').choices(['auto', 'onnxruntime', 'js']).default('auto'));
}

/** The head and training options out of parsed flags. */
export function trainingFromFlags(flags: TrainingFlags): { head: Partial<HeadOptions>; train: PartialTrainOptions; selection: SelectionOptions } {
  return {
    selection: { ...(flags.holdOut !== undefined ? { holdOut: flags.holdOut } : {}), ...(flags.patience !== undefined ? { patience: flags.patience } : {}) },
    head: { kind: flags.head, dim: flags.dim, hidden: flags.hidden, init: flags.init, pcaMethod: flags.pcaMethod },
    train: {
      batch: flags.batch, lr: flags.lr, schedule: flags.schedule, momentum: flags.momentum, weightDecay: flags.weightDecay,
      epochs: flags.epochs, steps: flags.steps, seed: flags.seed, microBatch: flags.microBatch ?? null,
      ...(flags.batchNorm ? { batchNorm: flags.batchNorm } : {}),
      ...(flags.imageWise ? { imageWise: true } : {}),
      triplets: { k: aliased(flags.tripletRange, flags.k), m0: flags.m0, perAnchor: flags.perAnchor },
      loss: flags.loss,
      contrastive: { positives: flags.positives, temperature: flags.temperature },
    },
  };
}
