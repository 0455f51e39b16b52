/** The trainer's inputs from its environment: the config (`MODELGOV_CONFIG`), the seeds and the dataset list, checked. */

import path from 'node:path';
import { InputError } from './input-error';

/** `MODELGOV_CONFIG` accepted by the tabular trainer; unknown keys are refused. */
export interface TabularTrainerConfig {
  model: 'logistic_regression' | 'mlp';
  /** Label column (values 0/1). Default `label`. */
  label?: string;
  /** Numeric feature columns, in the model's input order. Default: every column but the label that holds numbers. */
  features?: string[];
  /** Default 30. */
  epochs?: number;
  /** Default 0.1. */
  lr?: number;
  /** L2 penalty on weights (not biases). Default 0.001. */
  l2?: number;
  /** Default 64. */
  batchSize?: number;
  /** Hidden ReLU layer widths; mlp only. Default `[16]`. */
  hidden?: number[];
}

const CONFIG_KEYS = new Set(['model', 'label', 'features', 'epochs', 'lr', 'l2', 'batchSize', 'hidden']);
// Keys the server reads from the same config (the evaluation gate); the trainer leaves them alone.
const SERVER_KEYS = new Set(['gate']);
const ROLES = new Set(['TRAIN', 'VALIDATION', 'TEST']);

/** One entry of `MODELGOV_DATASETS`: a dataset version's file, by role. */
export interface DatasetRef {
  role: string;
  path: string;
  sha256?: string;
}

/** `MODELGOV_SEEDS`; a seed not given is 0. */
export interface Seeds {
  split: number;
  init: number;
  shuffle: number;
}

/** The config with its defaults applied. */
export interface Settings {
  model: 'logistic_regression' | 'mlp';
  label: string;
  features?: string[];
  epochs: number;
  lr: number;
  l2: number;
  batchSize: number;
  hidden: number[];
}

function parseJsonEnv(name: string, env: NodeJS.ProcessEnv, fallback?: unknown): unknown {
  const text = env[name];
  if (text === undefined || text === '') {
    if (fallback !== undefined) return fallback;
    throw new InputError(`${name} is not set`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new InputError(`${name} is not valid JSON`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `MODELGOV_DATASETS`: each entry's role, absolute path and optional sha256. */
export function readDatasets(env: NodeJS.ProcessEnv): DatasetRef[] {
  const value = parseJsonEnv('MODELGOV_DATASETS', env);
  if (!Array.isArray(value)) throw new InputError('MODELGOV_DATASETS must be a JSON array');
  return value.map((entry, i) => {
    if (!isObject(entry)) throw new InputError(`MODELGOV_DATASETS[${i}] must be an object`);
    const { role, path: file, sha256 } = entry;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new InputError(`MODELGOV_DATASETS[${i}].role must be TRAIN, VALIDATION or TEST`);
    }
    if (typeof file !== 'string' || !path.isAbsolute(file)) {
      throw new InputError(`MODELGOV_DATASETS[${i}].path must be an absolute path`);
    }
    if (sha256 !== undefined && sha256 !== null && typeof sha256 !== 'string') {
      throw new InputError(`MODELGOV_DATASETS[${i}].sha256 must be a string`);
    }
    return { role, path: file, sha256: typeof sha256 === 'string' && sha256 !== '' ? sha256 : undefined };
  });
}

/** `MODELGOV_SEEDS`: integer seeds `split`, `init` and `shuffle`. */
export function readSeeds(env: NodeJS.ProcessEnv): Seeds {
  const value = parseJsonEnv('MODELGOV_SEEDS', env, {});
  if (!isObject(value)) throw new InputError('MODELGOV_SEEDS must be a JSON object');
  const seed = (name: keyof Seeds): number => {
    const v = value[name] ?? 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InputError(`MODELGOV_SEEDS.${name} must be an integer`);
    return v;
  };
  return { split: seed('split'), init: seed('init'), shuffle: seed('shuffle') };
}

/** `MODELGOV_CONFIG`, checked key by key (the server's `gate` is left alone). */
export function readSettings(env: NodeJS.ProcessEnv): Settings {
  const config = parseJsonEnv('MODELGOV_CONFIG', env);
  if (!isObject(config)) throw new InputError('MODELGOV_CONFIG must be a JSON object');
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key) && !SERVER_KEYS.has(key)) throw new InputError(`config: unknown key '${key}'`);
  }
  const { model } = config;
  if (model !== 'logistic_regression' && model !== 'mlp') {
    throw new InputError(`config.model must be 'logistic_regression' or 'mlp', got ${JSON.stringify(model ?? null)}`);
  }

  const int = (key: string, fallback: number, min: number, max: number): number => {
    const v = config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new InputError(`config.${key} must be an integer in ${min}..${max}`);
    }
    return v;
  };
  const real = (key: string, fallback: number, ok: (v: number) => boolean, what: string): number => {
    const v = config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new InputError(`config.${key} must be ${what}`);
    return v;
  };

  const label = config.label ?? 'label';
  if (typeof label !== 'string' || label === '') throw new InputError('config.label must be a non-empty string');

  let features: string[] | undefined;
  if (config.features !== undefined) {
    const list = config.features;
    if (!Array.isArray(list) || list.length === 0 || !list.every((f) => typeof f === 'string' && f !== '')) {
      throw new InputError('config.features must be a non-empty array of column names');
    }
    if (new Set(list).size !== list.length) throw new InputError('config.features lists a column twice');
    if (list.includes(label)) throw new InputError(`config.features must not include the label column '${label}'`);
    features = list as string[];
  }

  let hidden: number[] = [];
  if (model === 'mlp') {
    const list = config.hidden ?? [16];
    if (!Array.isArray(list) || list.length === 0 || list.length > 8) {
      throw new InputError('config.hidden must be an array of 1..8 layer widths');
    }
    hidden = list.map((w) => {
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > 4096) {
        throw new InputError('config.hidden widths must be integers in 1..4096');
      }
      return w;
    });
  } else if (config.hidden !== undefined) {
    throw new InputError("config.hidden applies only to model 'mlp'");
  }

  return {
    model,
    label,
    features,
    epochs: int('epochs', 30, 1, 100_000),
    lr: real('lr', 0.1, (v) => v > 0, 'a positive number'),
    l2: real('l2', 0.001, (v) => v >= 0, 'a non-negative number'),
    batchSize: int('batchSize', 64, 1, 1_000_000),
    hidden,
  };
}
