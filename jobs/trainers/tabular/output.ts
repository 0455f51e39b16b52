/** What the trainer hands back: progress lines on stdout, and `metrics.json`, `profile.json` and `model.onnx`, each written atomically. */

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TabularTrainerMetrics } from './metrics';
import type { TabularTrainerProfile } from './profile';

/** One progress line on stdout, as the executor reads it. */
export function emitProgress(fraction: number, message: string): void {
  process.stdout.write(JSON.stringify({ progress: Math.round(fraction * 10000) / 10000, message }) + '\n');
}

function writeAtomically(file: string, data: string | Buffer): void {
  const temp = `${file}.partial`;
  writeFileSync(temp, data);
  renameSync(temp, file);
}

/** Writes the run's three outputs into `outputDir`, creating it when missing. */
export function writeOutputs(outputDir: string, metrics: TabularTrainerMetrics, profile: TabularTrainerProfile, bytes: Buffer): void {
  // Not `recursive`: Node's recursive mkdir can spin forever on paths under /proc.
  try {
    mkdirSync(outputDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  writeAtomically(path.join(outputDir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  writeAtomically(path.join(outputDir, 'profile.json'), JSON.stringify(profile, null, 2) + '\n');
  writeAtomically(path.join(outputDir, 'model.onnx'), bytes);
}
