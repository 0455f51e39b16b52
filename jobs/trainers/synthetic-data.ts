import { mulberry32 } from '../../src/core/prng';

// Deterministic synthetic tabular data for exercising the trainers and drift monitoring.

// Fixed pattern the label depends on; cycled and rescaled so any feature count
// gets the same signal strength.
const PATTERN = [1.5, -1.0, 0.8, -0.6, 1.2, -0.4, 0.9, -1.1];
// Standard deviation of the true logit over standard-normal features: strong
// enough for ~0.85 accuracy while leaving label noise for calibration to matter.
const LOGIT_SCALE = 3.5;

/**
 * The coefficients of the true logit `sum(w[j] * x[j])` (no intercept) that
 * {@link syntheticCsv} draws labels from, for `nFeatures` features.
 */
export function syntheticCoefficients(nFeatures: number): number[] {
  const raw = Array.from({ length: nFeatures }, (_, j) => PATTERN[j % PATTERN.length]);
  const norm = Math.sqrt(raw.reduce((s, v) => s + v * v, 0));
  return raw.map((v) => (v / norm) * LOGIT_SCALE);
}

/** Standard-normal draws from a uniform source (Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]). */
function normalOf(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** What decides a simulated label: the true logit, its negation (a concept shift), or a fair coin (noise). */
export type Concept = 'steady' | 'shifted' | 'noise';

/**
 * A simulated population for `nFeatures` features: standard-normal inputs (6 decimals, as in
 * {@link syntheticCsv}) and a label drawn from `sigmoid(logit)` where the logit is the one
 * syntheticCsv uses ('steady'), its negation ('shifted': the label relationship changed, the inputs
 * did not), or none ('noise': a fair coin). Deterministic for a seed.
 */
export function syntheticPopulation(opts: { seed: number; nFeatures: number }): { draw(concept: Concept): { x: number[]; label: 0 | 1 } } {
  const coefficients = syntheticCoefficients(opts.nFeatures);
  const random = mulberry32(opts.seed);
  const normal = normalOf(random);
  return {
    draw(concept) {
      const x = coefficients.map(() => Number(normal().toFixed(6)));
      const logit = x.reduce((s, v, j) => s + coefficients[j] * v, 0);
      const p = concept === 'noise' ? 0.5 : 1 / (1 + Math.exp(concept === 'shifted' ? logit : -logit));
      return { x, label: random() < p ? 1 : 0 };
    },
  };
}

/**
 * A deterministic binary-classification CSV: header `features…,label`, then
 * `rows` lines whose features are standard normal plus `shift` (default 0),
 * written with 6 decimals, and whose label is 1 with probability
 * `sigmoid(sum(syntheticCoefficients(n)[j] * x[j]))` evaluated on the shifted
 * values (a pure covariate shift). The same options always give the same text.
 *
 * @throws RangeError on a negative or non-integer `rows`, a non-integer `seed`,
 *   no features, a feature named `label`, or a non-finite `shift`.
 */
export function syntheticCsv(opts: { rows: number; seed: number; features: string[]; shift?: number }): string {
  const { rows, seed, features } = opts;
  const shift = opts.shift ?? 0;
  if (!Number.isSafeInteger(rows) || rows < 0) throw new RangeError('rows must be a non-negative integer');
  if (!Number.isSafeInteger(seed)) throw new RangeError('seed must be an integer');
  if (!Array.isArray(features) || features.length === 0) throw new RangeError('features must be a non-empty array');
  if (features.includes('label')) throw new RangeError("'label' is reserved for the label column");
  if (!Number.isFinite(shift)) throw new RangeError('shift must be finite');

  const coefficients = syntheticCoefficients(features.length);
  const random = mulberry32(seed);
  const normal = normalOf(random);

  const lines = [[...features, 'label'].join(',')];
  for (let r = 0; r < rows; r++) {
    let logit = 0;
    const cells: string[] = [];
    for (let j = 0; j < features.length; j++) {
      const x = Number((normal() + shift).toFixed(6));
      logit += coefficients[j] * x;
      cells.push(x.toFixed(6));
    }
    const label = random() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    cells.push(String(label));
    lines.push(cells.join(','));
  }
  return lines.join('\n') + '\n';
}
