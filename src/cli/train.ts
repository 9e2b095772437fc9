import { Command } from 'commander';
import type { BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { trainFiles } from '../train/descriptors.js';
import { trainImages } from '../train/images.js';
import type { EpochRecord, StepProgress } from '../train/records.js';
import { backendLine, duration, epochLine, note, print, progress, stepDetail } from './common.js';
import { addRunOptions } from './flags/config.js';
import { addGroundTruthOptions, groundTruthOf, type GroundTruthFlags } from './flags/groundTruth.js';
import { addImageOptions, addImageTrainingOptions, imageOptionsFromFlags, type ImageTrainingFlags } from './flags/image.js';
import { addTrainingOptions, trainingFromFlags, type TrainingFlags } from './flags/training.js';

interface TrainFlags extends TrainingFlags, GroundTruthFlags, ImageTrainingFlags {
  db?: string;
  images?: string;
  ranks?: string;
  out: string;
  resume?: boolean;
  json?: boolean;
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
        'photo recipe\'s defaults (hidden 512, contrastive loss with positives auto\n' +
        'and τ 0.2, batch 256, lr 0.05, 1,000 steps); the saved model is one image\n' +
        'network. --freeze-until none\n' +
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
  addGroundTruthOptions(addTrainingOptions(cmd).option('--queries <file.npy>', 'validation queries (with ground truth below)'), 'validation: ');
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
          validation: { queries: flags.queries, ...groundTruthOf(flags) },
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
