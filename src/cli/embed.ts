import { Command, Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../backend/tfjs.js';
import { embedFiles, exportModel, featureFiles } from '../model/run.js';
import { duration, note, parsePositiveInt, print, progress } from './common.js';

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
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--json', 'print embed.json as one line')
    .addHelpText('after', '\nExample:\n  ddistill embed --model run/ --db db.npy --queries q.npy --out emb/ && ddistill eval --db emb/db.npy --query emb/queries.npy --metric euclidean --gnd gnd.pkl')
    .action(async (flags: { model: string; db?: string; queries?: string; images?: string; out: string; backend: BackendChoice; json?: boolean }) => {
      const s = await embedFiles({ ...flags, onBackend: (b) => note(`backend: ${b.backend} (${b.source})`) });
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
      print(`exported ${r.from} → ${r.out} (${r.manifest.inputDim}-d ${r.manifest.inputKind} → ${r.manifest.embeddingDim}-d embeddings)`);
    });
}

export function featuresCommand(): Command {
  return new Command('features')
    .summary('base descriptors of images from a pretrained network')
    .description(
      'Decodes images (a folder, searched recursively, or a list file with one\n' +
        'path per line) with sharp, resizes them to --image-size squares and writes\n' +
        'the GeM-pooled, L2-normalised features of --backbone: a tfjs model.json\n' +
        '(cut at --cut, by default its last spatial feature map; inputs scaled to\n' +
        '[-1, 1]) or a built-in ResNet (with --weights: Keras-converted weights\n' +
        'loaded by layer name). Writes --out (float32 rows × dim) and a .json beside\n' +
        'it listing the images in row order. Start the distillation from them:\n' +
        '`ddistill diffuse --db feats.npy ...`, then `ddistill train --images ...`.',
    )
    .requiredOption('--images <dir|list>', 'the images')
    .requiredOption('--backbone <name|model.json>', 'resnet18/34/50, small, or a tfjs LayersModel')
    .option('--cut <layer>', 'layer to pool (model.json backbones)')
    .option('--image-size <px>', 'square size the images are resized to', parsePositiveInt, 224)
    .option('--weights <model.json>', 'Keras-converted weights for a built-in ResNet')
    .option('--skip-bad-images', 'report unreadable images and leave them out instead of failing')
    .option('--crops <gnd.pkl|json>', 'crop each image to its query box (revisitop bbx), in order')
    .requiredOption('--out <file.npy>', 'output descriptors')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .action(async (flags: { images: string; backbone: string; cut?: string; imageSize: number; weights?: string; skipBadImages?: boolean; crops?: string; out: string; backend: BackendChoice }) => {
      const bar = progress('features');
      try {
        const r = await featureFiles({
          images: flags.images, backbone: flags.backbone, cut: flags.cut, size: flags.imageSize, weights: flags.weights, skipBad: flags.skipBadImages, crops: flags.crops,
          out: flags.out, backend: flags.backend,
          onBackend: (b) => note(`backend: ${b.backend} (${b.source})`),
          onSkip: (p, m) => {
            bar.done();
            note(`skipped ${p}: ${m}`);
          },
          onProgress: (d, t) => bar.update(d, t),
        });
        bar.done();
        print(`wrote ${r.rows} × ${r.dim} features to ${flags.out} in ${duration(r.seconds)}${r.skipped.length ? ` (${r.skipped.length} unreadable images skipped)` : ''}`);
      } finally {
        bar.done();
      }
    });
}

