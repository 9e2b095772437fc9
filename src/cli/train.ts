import { Command, InvalidArgumentError, Option } from 'commander';
import type { EngineChoice } from '../backend/dense.js';
import { BACKEND_CHOICES, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { HEAD_INITS, HEAD_KINDS, type HeadInit, type HeadKind } from '../model/head.js';
import type { PcaMethod } from '../model/pca.js';
import { SCHEDULES, TRAIN_DEFAULTS, type EpochRecord, type Schedule, type StepProgress } from '../train/loop.js';
import { trainImages } from '../train/images.js';
import { PHOTO_HEAD_RECIPE } from '../train/presets.js';
import { SELECTION_DEFAULTS, type SelectionOptions } from '../train/selection.js';
import { RANGE_RULE } from '../triplets/range.js';
import { HEAD_DEFAULTS, readConfig, trainFiles, type HeadOptions, type TrainFilesOptions } from '../train/run.js';
import { defaultWorkers, PARALLEL_ABOVE_TRIPLETS } from '../train/dataParallel.js';
import { aliased, backendLine, duration, epochLine, hiddenAlias, note, parsePositiveInt, print, progress, stepDetail } from './common.js';
import { addImageOptions, addImageTrainingOptions, imageOptionsFromFlags, type ImageTrainingFlags } from './imageFlags.js';

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

/** Ground truth for evaluation (validation in train, per-iteration metrics in bootstrap). */
export interface GroundTruthFlags {
  queries?: string;
  gnd?: string;
  labels?: string;
  queryLabels?: string;
  groups?: string;
  queryGroups?: string;
}

interface TrainFlags extends TrainingFlags, GroundTruthFlags, ImageTrainingFlags {
  db?: string;
  images?: string;
  ranks?: string;
  out: string;
  resume?: boolean;
  json?: boolean;
}

const number = (check: (x: number) => boolean, what: string) => (v: string) => {
  const x = Number(v);
  if (v.trim() === '' || !check(x)) throw new InvalidArgumentError(`expected ${what}.`);
  return x;
};
const positive = number((x) => x > 0, 'a positive number');
const nonNegative = number((x) => x >= 0, 'a non-negative number');
const fraction = number((x) => x >= 0 && x < 1, 'a number in [0, 1)');
const integer = number(Number.isInteger, 'an integer');
const holdOutFraction = number((x) => x >= 0 && x < 0.5, 'a fraction in [0, 0.5)');
/** -k: a positive integer, or auto (from the teacher's distances). */
const tripletRangeFlag = (v: string): number | 'auto' => (v === 'auto' ? 'auto' : parsePositiveInt(v));

/** Applies a config file: its values replace defaults, never flags given on the command line. */
export function applyConfig(cmd: Command, path: string): void {
  const config = readConfig(path);
  const keys = cmd.options.map((o) => o.attributeName()).filter((k) => !['config', 'resume', 'json'].includes(k));
  for (const [key, value] of Object.entries(config)) {
    if (!keys.includes(key)) {
      throw new UserError(`${path}: unknown option '${key}'; use the long flag names in camelCase (${keys.join(', ')})`);
    }
    const source = cmd.getOptionValueSource(key);
    if (source === 'cli') continue;
    const option = cmd.options.find((o) => o.attributeName() === key)!;
    const takesValue = option.required || option.optional;
    let parsed: unknown = value;
    if (!takesValue) {
      if (typeof value !== 'boolean') throw new UserError(`${path}: option '${key}' must be true or false, got ${JSON.stringify(value)}`);
    } else if (typeof value !== 'string' && typeof value !== 'number') {
      throw new UserError(`${path}: option '${key}' needs a value, got ${JSON.stringify(value)}`);
    } else if (option.parseArg) {
      try {
        parsed = option.parseArg(String(value), undefined);
      } catch (err) {
        throw new UserError(`${path}: option '${key}': ${(err as Error).message}`);
      }
    } else {
      parsed = String(value);
    }
    cmd.setOptionValueWithSource(key, parsed, 'config');
  }
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
    .option('--per-anchor <n>', 'triplets per anchor per epoch', parsePositiveInt, d.triplets.perAnchor)
    .option('--batch <n>', `triplets per step (default: ${d.batch}; ${p.train.batch}${PHOTO})`, parsePositiveInt)
    .option('--lr <x>', `initial learning rate (default: ${d.lr}; ${p.train.lr}${PHOTO})`, positive)
    .addOption(new Option('--schedule <s>', 'learning-rate decay').choices(SCHEDULES).default(d.schedule))
    .option('--momentum <x>', 'SGD momentum', fraction, d.momentum)
    .option('--weight-decay <x>', 'L2 weight decay', nonNegative, d.weightDecay)
    .option('--epochs <n>', `passes over the mined triplets (default: ${d.epochs})`, parsePositiveInt)
    .option('--steps <n>', `total steps instead of --epochs (default: ${p.train.steps}${PHOTO})`, parsePositiveInt)
    .option('--seed <n>', 'seed of initialisation, mining and shuffling', integer, d.seed)
    .option('--hold-out <f>', `fraction of the items kept out of training to check, without labels, that the model agrees with the teacher better than its input; keeps the best epoch and stops early (0: off; default: ${SELECTION_DEFAULTS.holdOut} in bootstrap, 0 in train)`, holdOutFraction)
    .option('--patience <n>', `with --hold-out: epochs without a better agreement before stopping (default: ${SELECTION_DEFAULTS.patience})`, parsePositiveInt)
    .option('--micro-batch <n>', 'triplets per forward pass (gradient accumulation)', parsePositiveInt)
    .addOption(new Option('--batch-norm <mode>', 'image mode: batch statistics (train) or stored (frozen)').choices(['train', 'frozen']))
    .option('--image-wise', 'image mode: backward pass one image at a time (large images; one extra forward)')
    .option('--no-normalize', 'do not L2-normalise the descriptors first')
    .addOption(new Option('--backend <name>', 'tfjs backend (auto: tensorflow > wasm > cpu)').choices(BACKEND_CHOICES).default('auto'))
    .option('--workers <n>', workersHelp, parsePositiveInt)
    .addOption(new Option('--engine <name>', 'dense products (PCA, validation)').choices(['auto', 'onnxruntime', 'js']).default('auto'));
}

/** --resume, --config (applied before the action) and --json. */
export function addRunOptions(cmd: Command, resumeHelp: string): Command {
  return cmd
    .option('--resume', resumeHelp)
    .option('--config <file.json>', 'options from a JSON file (flags given here win)')
    .option('--json', 'print the summary as one JSON line')
    .hook('preAction', (c) => {
      const path = c.getOptionValue('config') as string | undefined;
      if (path) applyConfig(c, path);
    });
}

/** The head and training options out of parsed flags. */
export function trainingFromFlags(flags: TrainingFlags): { head: Partial<HeadOptions>; train: NonNullable<TrainFilesOptions['train']>; selection: SelectionOptions } {
  return {
    selection: { ...(flags.holdOut !== undefined ? { holdOut: flags.holdOut } : {}), ...(flags.patience !== undefined ? { patience: flags.patience } : {}) },
    head: { kind: flags.head, dim: flags.dim, hidden: flags.hidden, init: flags.init, pcaMethod: flags.pcaMethod },
    train: {
      batch: flags.batch, lr: flags.lr, schedule: flags.schedule, momentum: flags.momentum, weightDecay: flags.weightDecay,
      epochs: flags.epochs, steps: flags.steps, seed: flags.seed, microBatch: flags.microBatch ?? null,
      ...(flags.batchNorm ? { batchNorm: flags.batchNorm } : {}),
      ...(flags.imageWise ? { imageWise: true } : {}),
      triplets: { k: aliased(flags.tripletRange, flags.k), m0: flags.m0, perAnchor: flags.perAnchor },
    },
  };
}

export function trainCommand(): Command {
  const cmd = new Command('train')
    .summary('train an embedding network on diffusion triplets')
    .description(
      'Distils a diffusion self-ranking into a network (Zhao et al., BMVC 2018): a\n' +
        'head on the frozen descriptors is trained with soft-margin triplets mined\n' +
        'afresh each epoch from the ranking (see `ddistill triplets`), loss\n' +
        '[d(a,c) − d(a,f) + margin]₊ on L2-normalised outputs, SGD with momentum and\n' +
        'weight decay. Defaults follow the paper (lr 0.01, batch 40, k 300, m0 0.1).\n\n' +
        'Heads (--head):\n' +
        '  residual  PCA projection plus a ReLU branch that starts at zero, so the\n' +
        '            untrained head is exactly the PCA of the input (default)\n' +
        '  linear    the PCA projection alone, trained\n' +
        '  mlp       input → hidden (ReLU) → dim, random initialisation\n' +
        '--init whiten starts from PCA-whitening instead; random from Glorot.\n\n' +
        'Writes, in --out: model/ (tfjs model.json + weights.bin + manifest.json,\n' +
        'loadable with tf.loadLayersModel), checkpoint/ (after every epoch; continue\n' +
        'with --resume) and train.json (options and per-epoch loss, triplets/s and\n' +
        'validation figures). Give --queries with --labels/--query-labels, --gnd or\n' +
        '--groups to validate after every epoch.\n\n' +
        'Image mode (--images DIR|list instead of --db): the network is --backbone\n' +
        '(the shipped ImageNet mobilenet_v1_0.75 by default; resnet18/34/50 or small;\n' +
        'or a tfjs model.json cut at --cut) with GeM pooling. Images keep their aspect\n' +
        'ratio with the longer side = --image-size (224 on wasm/cpu, 600 with native\n' +
        'TensorFlow); --resize square squashes them to squares instead.\n' +
        'A pretrained backbone is frozen whole by default (--freeze-until all): its\n' +
        'GeM descriptors are computed once and a --head trains on them, with the\n' +
        'photo recipe\'s defaults (hidden 512, k 200, m0 0.5, batch 256, lr 0.05,\n' +
        '500 steps); the saved model is one image network. --freeze-until none\n' +
        'trains every layer (the default for a built-in ResNet without --weights);\n' +
        '--freeze-until LAYER runs the layers up to LAYER once and trains the rest;\n' +
        '--micro-batch accumulates gradients when a batch does not fit the 4 GiB wasm\n' +
        'heap, --image-wise when not even one triplet does (each image\'s backward\n' +
        'pass alone); --batch-norm frozen keeps a pretrained network\'s statistics. The\n' +
        'ranking comes from `ddistill features` + `ddistill diffuse` on the same\n' +
        'images (`ddistill bootstrap --images` runs the whole chain).\n\n' +
        'k must reach past an item\'s relevant set: ordering items inside one class\n' +
        'teaches nothing that transfers to new queries (MNIST: k 3000, m0 0.5).\n' +
        'All options can come from --config FILE.json (camelCase keys).',
    )
    .option('--db <file.npy>', 'database descriptors, n × d (descriptor mode)')
    .option('--images <dir|list>', 'database images instead (image mode; see below)')
    .option('--ranks <dir|indices.npy>', 'the database self-ranking (ddistill diffuse without --queries; required)')
    .requiredOption('--out <dir>', 'run folder (created if needed)');
  addTrainingOptions(cmd)
    .option('--queries <file.npy>', 'validation queries (with ground truth below)')
    .option('--gnd <file|name>', 'validation: revisited ground truth (gnd_*.pkl/.json, or roxford5k / rparis6k)')
    .option('--labels <file>', 'validation: database class labels')
    .option('--query-labels <file>', 'validation: query class labels')
    .option('--groups <n|file>', 'validation: UKBench groups')
    .option('--query-groups <file>', 'validation: query groups');
  addImageTrainingOptions(addImageOptions(cmd, 'image mode: ', { required: false }), 'image mode: ');
  return addRunOptions(cmd, 'continue from --out/checkpoint with the same options')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ddistill diffuse --db db.npy --top-k 1000 --out teacher/\n' +
        '  ddistill train --db db.npy --ranks teacher/ --out run/ --epochs 20\n' +
        '  ddistill embed --model run/ --db db.npy --queries q.npy --out emb/\n' +
        '  ddistill train --db db.npy --ranks teacher/ --out run/ --resume',
    )
    .action(async (flags: TrainFlags) => {
      if (!flags.db === !flags.images) throw new UserError('give either --db (descriptors) or --images (image mode), on the command line or in --config');
      if (!flags.ranks) throw new UserError('--ranks is required: the database self-ranking written by ddistill diffuse (on the command line or in --config)');
      const bar = progress('training');
      const onStep = (p: StepProgress) => bar.update(p.step, p.totalSteps, stepDetail(p));
      const onEpoch = (r: EpochRecord) => {
        bar.done();
        note(epochLine(r));
      };
      const onBackend = (b: BackendInfo) => note(backendLine(b));
      const training = trainingFromFlags(flags);
      const train = training.train;
      if (flags.images) {
        try {
          const r = await trainImages({
            images: flags.images, ...imageOptionsFromFlags(flags), ranks: flags.ranks, out: flags.out, head: training.head, train, selection: training.selection, backend: flags.backend, workers: flags.workers, resume: flags.resume,
            onBackend, onStage: (m) => note(m), onStep, onEpoch,
          });
          if (flags.json) print(JSON.stringify({ model: r.model, backend: r.backend.backend, steps: r.steps, seconds: Number(r.seconds.toFixed(3)), history: r.history }));
          else print(`trained ${flags.backbone} for ${r.steps} steps on ${r.backend.backend} in ${duration(r.seconds)}; wrote ${r.model}`);
        } finally {
          bar.done();
        }
        return;
      }
      try {
        const summary = await trainFiles({
          db: flags.db!,
          ranks: flags.ranks,
          out: flags.out,
          head: training.head,
          train,
          selection: training.selection,
          normalize: flags.normalize,
          backend: flags.backend,
          workers: flags.workers,
          engine: flags.engine,
          resume: flags.resume,
          validation: { queries: flags.queries, gnd: flags.gnd, labels: flags.labels, queryLabels: flags.queryLabels, groups: flags.groups, queryGroups: flags.queryGroups },
          onBackend,
          onStage: (m) => note(m),
          onStep,
          onEpoch,
        });
        if (flags.json) {
          print(JSON.stringify({ out: summary.out, model: summary.model, backend: summary.backend.backend, steps: summary.steps, seconds: Number(summary.seconds.toFixed(3)), tripletRange: summary.tripletRange, history: summary.history }));
          return;
        }
        const last = summary.history.at(-1);
        print(`trained a ${summary.head.kind} head (${summary.head.dim}-d) for ${summary.steps} steps on ${summary.backend.backend} in ${duration(summary.seconds)}; triplet range k = ${summary.tripletRange}`);
        if (last) print(`  final loss ${last.loss.toFixed(4)}${last.validation ? `, validation ${Object.entries(last.validation).map(([k, v]) => `${k} ${v}`).join(' / ')}` : ''}`);
        print(`wrote ${summary.model} (tfjs model + manifest.json), checkpoint/ and train.json in ${summary.out}`);
      } finally {
        bar.done();
      }
    });
}
