// Reference trainer for binary classification on CSV data, run by training jobs
// as a child process. Its outputs depend only on the data, config and seeds.
// Each step is a module of ./tabular; this file is the program the executor launches.
import path from 'node:path';
import { standardise, train } from './tabular/fit';
import { InputError } from './tabular/input-error';
import { metricsOf } from './tabular/metrics';
import { predict, roundModel } from './tabular/network';
import { modelOnnx } from './tabular/onnx-model';
import { emitProgress, writeOutputs } from './tabular/output';
import { trainingProfile } from './tabular/profile';
import { readDatasets, readSeeds, readSettings } from './tabular/settings';
import { loadTrainingData } from './tabular/training-data';

export type { TabularTrainerConfig } from './tabular/settings';
export type { TabularTrainerMetrics } from './tabular/metrics';
export type { CategoricalProfile, NumericProfile, TabularTrainerProfile } from './tabular/profile';

function run(env: NodeJS.ProcessEnv): void {
  const settings = readSettings(env);
  const seeds = readSeeds(env);
  const refs = readDatasets(env);
  const outputDir = env.MODELGOV_OUTPUT_DIR;
  if (!outputDir || !path.isAbsolute(outputDir)) throw new InputError('MODELGOV_OUTPUT_DIR must be an absolute path');

  emitProgress(0, 'loading data');
  const data = loadTrainingData(refs, settings, seeds);
  const { features, trainData, evalData, evalRole } = data;
  const d = features.length;
  process.stdout.write(`training ${settings.model} on ${trainData.n} rows, evaluating on ${evalData.n} ${evalRole ?? 'held-out TRAIN'} rows, ${d} features\n`);

  const { mean, std, scaled } = standardise(trainData, d);
  const layers = train(scaled, d, { settings, seeds, progress: emitProgress });
  const model = roundModel(mean, std, layers);

  emitProgress(0.92, 'evaluating');
  const metrics = metricsOf(predict(model, evalData, d), evalData.y, trainData.n);

  emitProgress(0.95, 'profiling training data');
  const profile = trainingProfile(data, settings.label, predict(model, trainData, d));
  const bytes = modelOnnx(model, settings, features);

  writeOutputs(outputDir, metrics, profile, bytes);
  process.stdout.write(`accuracy ${metrics.accuracy.toFixed(4)} auc ${metrics.auc === undefined ? 'n/a' : metrics.auc.toFixed(4)} logLoss ${metrics.logLoss.toFixed(4)}\n`);
  emitProgress(1, 'done');
}

function main(): void {
  try {
    run(process.env);
    process.exitCode = 0;
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(err.message.replace(/\s*\n\s*/g, ' ') + '\n');
      process.exitCode = 2;
    } else {
      process.stderr.write(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  }
}

if (require.main === module) main();
