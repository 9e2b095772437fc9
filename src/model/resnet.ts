/**
 * Image-mode networks built from tfjs layers: ResNet-18/34/50 in the ImageNet layout (Keras layer
 * names, so Keras-converted weights load by name), a small ResNet for small images, GeM pooling
 * with a learnable exponent (Radenović et al.), an optional whitening (dense) layer. The model
 * takes images as [batch, height, width, channels] in [0, 1], of one size or (size null) any.
 */
import { tf } from '../backend/tfjs.js';
import { UserError } from '../errors.js';

/** Generalised-mean pooling over H and W: (mean x^p)^(1/p), p learnable (init 3). */
export class GeM extends tf.layers.Layer {
  static readonly className = 'GeM';
  private p!: tf.LayerVariable;
  private readonly initialP: number;
  private readonly eps: number;

  constructor(config: { p?: number; eps?: number; name?: string; trainable?: boolean } = {}) {
    super(config);
    this.initialP = config.p ?? 3;
    this.eps = config.eps ?? 1e-6;
  }

  override build(): void {
    this.p = this.addWeight('p', [1], 'float32', tf.initializers.constant({ value: this.initialP }));
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape): tf.Shape {
    return [inputShape[0]!, inputShape[3]!];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      const p = this.p.read();
      // x^p = exp(p·ln x): wasm's Pow with a tensor exponent is several times slower than Exp/Log.
      const mean = tf.mean(tf.exp(tf.mul(tf.log(tf.maximum(x, this.eps)), p)), [1, 2]);
      return tf.exp(tf.div(tf.log(mean), p));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), p: this.initialP, eps: this.eps };
  }
}
tf.serialization.registerClass(GeM);

/**
 * Caffe-style input for Keras ImageNet ResNets (keras.applications preprocess_input 'caffe'):
 * images in [0, 1] become 0–255, RGB → BGR, minus the ImageNet channel means.
 */
export class CaffePreprocess extends tf.layers.Layer {
  static readonly className = 'CaffePreprocess';
  /** B, G, R means (keras.applications.imagenet_utils). */
  static readonly MEAN_BGR = [103.939, 116.779, 123.68] as const;
  override computeOutputShape(inputShape: tf.Shape): tf.Shape {
    return inputShape;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      return tf.sub(tf.mul(tf.reverse(x, -1), 255), tf.tensor1d([...CaffePreprocess.MEAN_BGR]));
    });
  }
}
tf.serialization.registerClass(CaffePreprocess);

export type ResNetArch = 'resnet18' | 'resnet34' | 'resnet50' | 'small';
export const RESNET_ARCHS: readonly ResNetArch[] = ['resnet18', 'resnet34', 'resnet50', 'small'];

export interface ImageNetSpec {
  readonly arch: ResNetArch;
  /** Input height = width (null: any height and width), and channels (3 for photographs, 1 for MNIST). */
  readonly size: number | null;
  readonly channels: number;
  /** Output dimension of a whitening (dense) layer after pooling; null: the pooled features. */
  readonly whiten: number | null;
  /** 'small': channels per stage (one basic block each, no max pooling). */
  readonly widths?: readonly number[];
  readonly seed: number;
  /**
   * 'keras': the keras.applications layout, for Keras-converted weights: convolutions with biases,
   * conv1 and pool1 padded explicitly (conv1_pad, pool1_pad: 3 and 1 pixels, then valid), and
   * caffe preprocessing inside the network. Default 'plain': no biases, 'same' padding, [0, 1].
   */
  readonly layout?: 'plain' | 'keras';
}

const STAGES: Record<Exclude<ResNetArch, 'small'>, { blocks: number[]; bottleneck: boolean }> = {
  resnet18: { blocks: [2, 2, 2, 2], bottleneck: false },
  resnet34: { blocks: [3, 4, 6, 3], bottleneck: false },
  resnet50: { blocks: [3, 4, 6, 3], bottleneck: true },
};

/** Builds the backbone + GeM (+ whitening) network; outputs are L2-normalised by the embedder. */
export function buildResNet(spec: ImageNetSpec): tf.LayersModel {
  const { size, channels, seed } = spec;
  if (size !== null && (!Number.isInteger(size) || size < 8)) throw new UserError(`image size must be an integer ≥ 8, got ${size}`);
  let counter = 0;
  const keras = spec.layout === 'keras';
  // Seeds start at 1: tfjs initialisers treat a seed of 0 as "no seed" (random).
  const init = () => tf.initializers.heNormal({ seed: seed * 7919 + 1 + counter++ });
  const conv = (x: tf.SymbolicTensor, filters: number, kernel: number, stride: number, name: string, padding: 'same' | 'valid' = 'same') =>
    tf.layers.conv2d({ filters, kernelSize: kernel, strides: stride, padding, useBias: keras, kernelInitializer: init(), name }).apply(x) as tf.SymbolicTensor;
  const pad = (x: tf.SymbolicTensor, p: number, name: string) => tf.layers.zeroPadding2d({ padding: p, name }).apply(x) as tf.SymbolicTensor;
  const bn = (x: tf.SymbolicTensor, name: string) => tf.layers.batchNormalization({ axis: 3, epsilon: 1.001e-5, name }).apply(x) as tf.SymbolicTensor;
  const relu = (x: tf.SymbolicTensor, name: string) => tf.layers.activation({ activation: 'relu', name }).apply(x) as tf.SymbolicTensor;

  const basic = (x: tf.SymbolicTensor, filters: number, stride: number, name: string, project: boolean) => {
    let shortcut = x;
    if (project) shortcut = bn(conv(x, filters, 1, stride, `${name}_0_conv`), `${name}_0_bn`);
    let y = relu(bn(conv(x, filters, 3, stride, `${name}_1_conv`), `${name}_1_bn`), `${name}_1_relu`);
    y = bn(conv(y, filters, 3, 1, `${name}_2_conv`), `${name}_2_bn`);
    return relu(tf.layers.add({ name: `${name}_add` }).apply([shortcut, y]) as tf.SymbolicTensor, `${name}_out`);
  };
  const bottleneck = (x: tf.SymbolicTensor, filters: number, stride: number, name: string, project: boolean) => {
    let shortcut = x;
    if (project) shortcut = bn(conv(x, 4 * filters, 1, stride, `${name}_0_conv`), `${name}_0_bn`);
    let y = relu(bn(conv(x, filters, 1, stride, `${name}_1_conv`), `${name}_1_bn`), `${name}_1_relu`);
    y = relu(bn(conv(y, filters, 3, 1, `${name}_2_conv`), `${name}_2_bn`), `${name}_2_relu`);
    y = bn(conv(y, 4 * filters, 1, 1, `${name}_3_conv`), `${name}_3_bn`);
    return relu(tf.layers.add({ name: `${name}_add` }).apply([shortcut, y]) as tf.SymbolicTensor, `${name}_out`);
  };

  const input = tf.input({ shape: [size, size, channels], name: 'image' });
  let x = input;
  if (spec.arch === 'small') {
    const widths = spec.widths ?? [16, 32, 64];
    x = relu(bn(conv(x, widths[0]!, 3, 1, 'conv1_conv'), 'conv1_bn'), 'conv1_relu');
    widths.forEach((w, i) => {
      x = basic(x, w, i === 0 ? 1 : 2, `conv${i + 2}_block1`, i > 0);
    });
  } else {
    const { blocks, bottleneck: bottle } = STAGES[spec.arch];
    if (keras) {
      x = new CaffePreprocess({ name: 'caffe_preprocess' }).apply(x) as tf.SymbolicTensor;
      x = relu(bn(conv(pad(x, 3, 'conv1_pad'), 64, 7, 2, 'conv1_conv', 'valid'), 'conv1_bn'), 'conv1_relu');
      x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'pool1_pool' }).apply(pad(x, 1, 'pool1_pad')) as tf.SymbolicTensor;
    } else {
      x = relu(bn(conv(x, 64, 7, 2, 'conv1_conv'), 'conv1_bn'), 'conv1_relu');
      x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool1_pool' }).apply(x) as tf.SymbolicTensor;
    }
    [64, 128, 256, 512].forEach((filters, stage) => {
      for (let b = 0; b < blocks[stage]!; b++) {
        const name = `conv${stage + 2}_block${b + 1}`;
        const stride = b === 0 && stage > 0 ? 2 : 1;
        const project = b === 0 && (stage > 0 || bottle);
        x = bottle ? bottleneck(x, filters, stride, name, project) : basic(x, filters, stride, name, project);
      }
    });
  }
  let out = new GeM({ name: 'gem' }).apply(x) as tf.SymbolicTensor;
  if (spec.whiten !== null) out = tf.layers.dense({ units: spec.whiten, kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 7919 + 7907 }), name: 'whiten' }).apply(out) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: spec.arch });
}
