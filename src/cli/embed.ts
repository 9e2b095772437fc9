import { Command, Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../backend/tfjs.js';
import { embedFiles, exportModel, featureFiles, type EmbedSummary } from '../model/run.js';
import type { PhotoEngineChoice } from '../model/photoRunner.js';
import { backendLine, duration, imageProgress, note, print } from './common.js';
import { addImageOptions, photoEngineOption, type ImageFlags } from './flags/image.js';

export function embedCommand(): Command {
  return new Command('embed')
    .summary('embed descriptors or images with a trained model')
    .description(
      'Runs a trained model (a `ddistill train` run folder or an exported model\n' +
        'folder) over database and/or query descriptors, with the preprocessing its\n' +
        'manifest records, and writes L2-normalised embeddings into --out:\n' +
        '  db.npy, queries.npy  float32 rows × embedding dimension\n' +
        '  embed.json           what was embedded, with which model\n' +
        'Search them by Euclidean distance (`ddistill search --metric euclidean`).',
    )
    .requiredOption('--model <dir>', 'train run folder or model folder')
    .option('--db <file.npy>', 'database descriptors')
    .option('--queries <file.npy>', 'query descriptors')
    .option('--images <dir|list>', 'images, for an image model (writes images.npy)')
    .option('--crops <gnd|name>', 'crop each image to its query box (revisitop bbx, gnd_*.pkl/.json or roxford5k / rparis6k), in order')
    .option('--skip-bad-images', 'report unreadable images and leave them out (embed.json lists them)')
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .addOption(photoEngineOption())
    .option('--json', 'print embed.json as one line')
    .addHelpText('after', '\nExample:\n  ddistill embed --model run/ --db db.npy --queries q.npy --out emb/ && ddistill eval --db emb/db.npy --queries emb/queries.npy --metric euclidean --gnd gnd.pkl')
    .action(async (flags: { model: string; db?: string; queries?: string; images?: string; crops?: string; skipBadImages?: boolean; out: string; backend: BackendChoice; engine: PhotoEngineChoice; json?: boolean }) => {
      const images = imageProgress('embedding');
      let s: EmbedSummary;
      try {
        s = await embedFiles({ ...flags, skipBad: flags.skipBadImages, onBackend: (b) => note(backendLine(b)), onSkip: images.onSkip, onProgress: images.onProgress });
      } finally {
        images.done();
      }
      if (flags.json) {
        print(JSON.stringify(s));
        return;
      }
      for (const w of s.written) print(`embedded ${w.rows} rows of ${w.input} → ${w.output} (${s.embeddingDim}-d)`);
      print(`in ${duration(s.seconds)} with ${s.model}`);
    });
}

export function exportCommand(): Command {
  return new Command('export')
    .summary('write a trained model as a standalone tfjs model folder')
    .description(
      'Writes the model of a `ddistill train` run as a standard tfjs layers model\n' +
        '(model.json + weights.bin) plus manifest.json (input kind and dimension,\n' +
        'preprocessing, embedding dimension, training provenance). Any tfjs runtime\n' +
        'loads it with tf.loadLayersModel (tfjs-node: file://DIR/model.json; a\n' +
        'browser: its URL). Normalise each output row to unit length, as the\n' +
        'manifest\'s postprocess says, to get the embeddings `ddistill embed` writes.',
    )
    .requiredOption('--model <dir>', 'train run folder or model folder')
    .requiredOption('--out <dir>', 'destination folder')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .action(async (flags: { model: string; out: string; backend: BackendChoice }) => {
      const r = await exportModel(flags);
      const input = r.manifest.inputKind === 'images' ? `images (${r.manifest.preprocess.image!.resize === 'longer' ? 'longer side' : 'squares of'} ${r.manifest.preprocess.image!.size} px)` : `${r.manifest.inputDim}-d descriptors`;
      print(`exported ${r.from} → ${r.out} (${input} → ${r.manifest.embeddingDim}-d embeddings)`);
    });
}

export function featuresCommand(): Command {
  const cmd = new Command('features')
    .summary('base descriptors of images from a pretrained network')
    .description(
      'Decodes images (a folder, searched recursively, or a list file with one\n' +
        'path per line) with sharp, resizes them (longer side = --image-size: 224\n' +
        'on wasm and cpu, the paper\'s 600 with native TensorFlow; --resize square\n' +
        'squashes them) and writes the\n' +
        'GeM-pooled, L2-normalised features of --backbone: a tfjs model.json (cut at\n' +
        '--cut, by default its last spatial feature map), nsfwjs:mobilenet_v2, or a\n' +
        'built-in ResNet (with --weights: Keras-converted weights loaded by layer\n' +
        'name). Writes --out (float32 rows × dim) and a .json beside it\n' +
        'listing the images in row order. Distil from them: `ddistill diffuse --db\n' +
        'feats.npy ...`, then `ddistill train --images ...` (or `ddistill bootstrap\n' +
        '--images ...`, which does it all).\n\n' +
        'The network runs on onnxruntime (native, every core) unless --engine tfjs\n' +
        'or a layer it lacks says otherwise. Rows are kept in <out>.parts/ as they\n' +
        'are computed: after an interruption, the same command computes only the\n' +
        'photos missing (or changed since).',
    )
    .requiredOption('--images <dir|list>', 'the images');
  return addImageOptions(cmd, '', { required: false })
    .option('--skip-bad-images', 'report unreadable images and leave them out instead of failing')
    .option('--crops <gnd|name>', 'crop each image to its query box (revisitop bbx, gnd_*.pkl/.json or roxford5k / rparis6k), in order')
    .requiredOption('--out <file.npy>', 'output descriptors')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .addOption(photoEngineOption())
    .addHelpText('after', '\nExamples:\n  ddistill features --images photos/ --backbone mobilenet/model.json --out feats.npy\n  ddistill features --images queries/ --crops roxford5k --backbone resnet50 --weights r50/model.json --out q.npy')
    .action(async (flags: ImageFlags & { images: string; skipBadImages?: boolean; crops?: string; out: string; backend: BackendChoice; engine: PhotoEngineChoice }) => {
      const images = imageProgress('features');
      try {
        const r = await featureFiles({
          images: flags.images, backbone: flags.backbone, cut: flags.cut, size: flags.imageSize, resize: flags.resize, weights: flags.weights, partialWeights: flags.partialWeights, scale: flags.inputScale, skipBad: flags.skipBadImages, crops: flags.crops,
          out: flags.out, backend: flags.backend, engine: flags.engine,
          onBackend: (b) => note(backendLine(b)),
          onEngine: (e) => note(`network: ${e.engine}${e.why ? ` (not onnxruntime: ${e.why})` : ''}`),
          onSkip: images.onSkip,
          onProgress: images.onProgress,
        });
        images.done();
        const notes = [r.cached ? `${r.cached} from an interrupted run's parts` : '', r.skipped.length ? `${r.skipped.length} unreadable images skipped` : ''].filter(Boolean);
        print(`wrote ${r.rows} × ${r.dim} features to ${flags.out} in ${duration(r.seconds)}${notes.length ? ` (${notes.join('; ')})` : ''}`);
      } finally {
        images.done();
      }
    });
}

