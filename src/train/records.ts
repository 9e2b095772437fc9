/** What training records as it goes: each epoch's figures, the state a checkpoint restores, step progress. */

export interface EpochRecord {
  readonly epoch: number;
  readonly steps: number;
  /** Mean triplet loss over the epoch's steps. */
  readonly loss: number;
  /** Fraction of triplets whose hinge was active (loss > 0). */
  readonly active: number;
  readonly lr: number;
  readonly seconds: number;
  readonly tripletsPerSecond: number;
  /** Validation figure (mAP %, or N-S), when validation is configured. */
  readonly validation?: Record<string, number>;
  /** Label-free agreement with the teacher on the held-out items, when selection is configured. */
  readonly agreement?: number;
  /** Mean global gradient norm over the epoch's steps. */
  readonly gradNorm?: number;
}

/** What a checkpoint restores: the finished epochs, the weights and the momentum buffers. */
export interface TrainState {
  readonly epochsDone: number;
  readonly stepsDone: number;
  readonly history: readonly EpochRecord[];
  /** The agreement of the model before training (selection only). */
  readonly initialAgreement?: number;
  /** The epoch whose weights are kept (−1: the weights training started from), and its agreement. */
  readonly best?: { readonly epoch: number; readonly agreement: number | null };
  /** Why training ended before its last step: early stop, runaway or divergence (rolled back). */
  readonly stopped?: string;
}

export interface StepProgress {
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly loss: number;
  readonly tripletsPerSecond: number;
}
