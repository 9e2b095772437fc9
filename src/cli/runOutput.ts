/** What `bootstrap` and the demo print while a run works and when it is done. */
import type { BackendInfo } from '../backend/tfjs.js';
import { mainFigure, resultFigure } from '../report/html.js';
import type { RunManifest } from '../report/manifest.js';
import type { EpochRecord, StepProgress } from '../train/records.js';
import { backendLine, epochLine, note, photoRate, progress, stepDetail } from './common.js';

/** Progress of a pipeline: stage lines on stderr and a training bar. */
export function pipelineHooks() {
  let bar = progress('training');
  let rate = photoRate();
  return {
    onBackend: (b: BackendInfo) => note(backendLine(b)),
    onStage: (iteration: number, stage: string, message: string) => {
      bar.done();
      bar = progress(iteration > 0 ? `iteration ${iteration}: ${stage === 'embed' ? 'embedding' : 'training'}` : stage);
      rate = photoRate();
      note(iteration > 0 ? `[iteration ${iteration}] ${stage}: ${message}` : `[${stage}] ${message}`);
    },
    onStep: (p: StepProgress) => bar.update(p.step, p.totalSteps, stepDetail(p)),
    onImages: (done: number, total: number) => bar.update(done, total, rate(done, total)),
    onEpoch: (r: EpochRecord) => {
      bar.done();
      note(`  ${epochLine(r)}`);
    },
    done: () => bar.done(),
  };
}

/** One JSON line: baseline, diffusion re-ranking and per-iteration figures. */
export function summaryJson(m: RunManifest): Record<string, unknown> {
  return {
    baseline: mainFigure(m.baseline),
    [m.reranking?.method ?? 'reranking']: mainFigure(m.reranking),
    iterations: m.iterations.map((r) => ({ iteration: r.iteration, mAP: mainFigure(r), metrics: r.metrics, querySeconds: r.querySeconds, seconds: r.seconds, kept: r.kept ?? true })),
    result: m.result ? { iteration: m.result.iteration, figure: resultFigure(m), reason: m.result.reason } : null,
    queries: m.baseline?.queries ?? null,
    querySeconds: { baseline: m.baseline?.querySeconds ?? null, reranking: m.reranking?.querySeconds ?? null },
    seconds: m.seconds,
  };
}
