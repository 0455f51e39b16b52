import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../../src/core/prng';
import {
  addCategory,
  addNumeric,
  emptyNumericHistogram,
  numericBins,
  rollupBinsOf,
  ROLLUP_BIN_QUANTILES,
  categoricalBins,
  type CategoryHistogram,
  type NumericBins,
  type NumericHistogram,
} from '../../src/inference/rollup-bins';
import { binnedCategoricalDrift, binnedNumericDrift, type BinnedNumericDrift } from '../../src/monitoring/binned-drift';
import { chiSquared, jensenShannon, ksPValue, psi } from '../../src/monitoring/drift-stats';
import { binOf, categoricalReference, numericReference, referenceSample, type ReferenceProfile } from '../../src/registry/reference-profile';

type Rng = () => number;

function normal(rng: Rng): number {
  const u = 1 - rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** sup_x |F_a(x) − F_b(x)| over right-continuous ECDFs of sorted a and b. */
function exactKs(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < a.length || j < b.length) {
    const x = Math.min(i < a.length ? a[i] : Infinity, j < b.length ? b[j] : Infinity);
    while (i < a.length && a[i] === x) i++;
    while (j < b.length && b[j] === x) j++;
    d = Math.max(d, Math.abs(i / a.length - j / b.length));
  }
  return d;
}

/** ∫|F_a − F_b| for sorted a and b, as scipy's `wasserstein_distance(a, b)`. */
function exactWasserstein(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  let j = 0;
  let total = 0;
  let previous = NaN;
  let gap = 0;
  while (i < a.length || j < b.length) {
    const x = Math.min(i < a.length ? a[i] : Infinity, j < b.length ? b[j] : Infinity);
    if (!Number.isNaN(previous)) total += (x - previous) * gap;
    while (i < a.length && a[i] === x) i++;
    while (j < b.length && b[j] === x) j++;
    gap = Math.abs(i / a.length - j / b.length);
    previous = x;
  }
  return total;
}

function histogramOf(bins: NumericBins, values: readonly number[]): NumericHistogram {
  const h = emptyNumericHistogram(bins);
  for (const v of values) addNumeric(h, bins, v);
  return h;
}

function addHistograms(x: NumericHistogram, y: NumericHistogram): NumericHistogram {
  return { n: x.n + y.n, c: x.c.map((c, i) => c + y.c[i]), s: x.s.map((s, i) => s + y.s[i]) };
}

interface Exact {
  psi: number;
  jensenShannon: number;
  ks: number;
  wasserstein: number;
}

function exactNumeric(reference: readonly number[], current: readonly number[]): Exact {
  const ref = numericReference(reference);
  const sample = referenceSample(reference);
  const finite = current.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const deciles = new Array<number>(ref.quantileBins.edges.length + 1).fill(0);
  for (const v of finite) deciles[binOf(ref.quantileBins.edges, v)]++;
  return {
    psi: psi(ref.quantileBins.counts, deciles),
    jensenShannon: jensenShannon(ref.quantileBins.counts, deciles),
    ks: exactKs(sample, finite),
    wasserstein: exactWasserstein(sample, finite),
  };
}

function assertBracketed(drift: BinnedNumericDrift, exact: Exact, what: string): void {
  assert.ok(Math.abs(drift.psi - exact.psi) <= 1e-12, `${what}: psi ${drift.psi} vs exact ${exact.psi}`);
  assert.ok(Math.abs(drift.jensenShannon - exact.jensenShannon) <= 1e-12, `${what}: js ${drift.jensenShannon} vs exact ${exact.jensenShannon}`);
  assert.ok(exact.ks >= drift.ks - 1e-12 && exact.ks <= drift.ksUpper + 1e-12, `${what}: exact ks ${exact.ks} outside [${drift.ks}, ${drift.ksUpper}]`);
  assert.ok(
    exact.wasserstein >= drift.wasserstein - 1e-9 && exact.wasserstein <= drift.wassersteinUpper + 1e-9,
    `${what}: exact wasserstein ${exact.wasserstein} outside [${drift.wasserstein}, ${drift.wassersteinUpper}]`,
  );
}

const REFERENCE_KINDS = ['normal', 'uniform', 'discrete', 'ties', 'skewed'] as const;
const CURRENT_KINDS = ['same', 'shifted', 'scaled', 'discrete', 'edges', 'outside', 'nonFinite'] as const;
const REFERENCE_SIZES = [1, 2, 3, 7, 60, 450, 2000, 2001, 7000];
const CURRENT_SIZES = [1, 2, 19, 400, 2500];

function referenceValues(kind: (typeof REFERENCE_KINDS)[number], size: number, rng: Rng): number[] {
  const out: number[] = [];
  for (let i = 0; i < size; i++) {
    if (kind === 'normal') out.push(3 + 2 * normal(rng));
    else if (kind === 'uniform') out.push(-5 + 10 * rng());
    else if (kind === 'discrete') out.push(Math.floor(rng() * 6));
    else if (kind === 'ties') out.push(Math.round(normal(rng) * 4) / 4);
    else out.push(Math.exp(normal(rng)));
  }
  return out;
}

function currentValues(kind: (typeof CURRENT_KINDS)[number], size: number, reference: readonly number[], bins: NumericBins, rng: Rng): number[] {
  const pick = () => reference[Math.floor(rng() * reference.length)];
  const spread = Math.max(1e-3, (bins.refStd ?? 0) || 1);
  const lo = bins.edges[0];
  const hi = bins.edges[bins.edges.length - 1];
  const out: number[] = [];
  for (let i = 0; i < size; i++) {
    if (kind === 'same') out.push(pick());
    else if (kind === 'shifted') out.push(pick() + 0.4 * spread + 0.05 * normal(rng));
    else if (kind === 'scaled') out.push(1.7 * pick() + 0.01 * normal(rng));
    else if (kind === 'discrete') out.push(Math.floor(lo + rng() * (hi - lo + 2)));
    else if (kind === 'edges') out.push(rng() < 0.8 ? bins.edges[Math.floor(rng() * bins.edges.length)] : pick());
    else if (kind === 'outside') out.push(rng() < 0.5 ? lo - spread * 3 * rng() : rng() < 0.5 ? hi + spread * 3 * rng() : pick());
    else out.push(rng() < 0.1 ? [NaN, Infinity, -Infinity][Math.floor(rng() * 3)] : pick() + normal(rng) * spread);
  }
  return out;
}

describe('rollup bins', () => {
  it('are the spec’s edges: sample quantiles, the maximum and the deciles, with per-bin reference counts and sums', () => {
    const rng = mulberry32(11);
    for (const size of [1, 5, 150, 2000, 9000]) {
      const values = referenceValues('ties', size, rng);
      const ref = numericReference(values);
      const sample = referenceSample(values);
      const bins = numericBins(sample, ref);
      const L = sample.length;
      const quantiles = Array.from({ length: ROLLUP_BIN_QUANTILES }, (_, j) => sample[Math.floor((j * L) / ROLLUP_BIN_QUANTILES)]);
      const expected = [...new Set([...quantiles, sample[L - 1], ...ref.quantileBins.edges].map((v) => (v === 0 ? 0 : v)))].sort((a, b) => a - b);
      const above = bins.edges[bins.edges.length - 1];
      assert.ok(above > sample[L - 1] && above - sample[L - 1] <= Math.abs(sample[L - 1]) * Number.EPSILON + Number.MIN_VALUE, 'the last edge is the next double above the maximum');
      assert.deepEqual(bins.edges.slice(0, -1), expected);
      assert.equal(bins.refCounts[bins.edges.length], 0, 'the last bin lies above every sample value');
      assert.equal(bins.refCounts[bins.edges.length - 1], sample.filter((v) => v === sample[L - 1]).length, 'the bin below it holds the values equal to the maximum');
      assert.equal(bins.refSize, L);
      assert.equal(bins.refCounts.length, bins.edges.length + 1);
      assert.equal(bins.refCounts[0], 0, 'bin 0 lies below the sample minimum');
      assert.equal(bins.refCounts.reduce((s, c) => s + c, 0), L);
      const refHistogram = histogramOf(bins, sample);
      assert.deepEqual(bins.refCounts, refHistogram.c);
      assert.deepEqual(bins.refSums, refHistogram.s);
      assert.deepEqual(bins.deciles, ref.quantileBins.edges.map((v) => (v === 0 ? 0 : v)));
      assert.deepEqual(bins.refDecileCounts, ref.quantileBins.counts);
      if (size <= L) {
        // The sample is every value: its bins add up to the profile's decile counts.
        const perDecile = new Array<number>(bins.deciles.length + 1).fill(0);
        bins.refCounts.forEach((c, b) => (perDecile[b === 0 ? 0 : binOf(bins.deciles, bins.edges[b - 1])] += c));
        assert.deepEqual(perDecile, ref.quantileBins.counts);
      }
      assert.deepEqual(JSON.parse(JSON.stringify(bins)), bins, 'bins are plain JSON');
    }
    assert.throws(() => numericBins([], numericReference([1, 2])), /without sample values/);
  });

  it('cover the profile’s columns that have a reference and, where there is one, the prediction', () => {
    const numeric = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const profile: ReferenceProfile = {
      profileVersion: 3,
      inputName: 'x',
      outputName: 'y',
      inputColumns: ['a', 'toString', 'b', 'c', 'd'],
      features: { a: numericReference(numeric), b: categoricalReference(['u', 'v', 'u']), c: numericReference(numeric) },
      prediction: numericReference([0.1, 0.9]),
    };
    const bins = rollupBinsOf(profile, { features: { a: referenceSample(numeric) }, prediction: [0.1, 0.9] });
    assert.equal(bins.binsVersion, 1);
    assert.equal(bins.inputName, 'x');
    assert.equal(bins.outputName, 'y');
    assert.deepEqual(
      bins.columns.map((c) => [c.name, c.index, c.bins.kind]),
      [
        ['a', 0, 'numeric'],
        ['b', 2, 'categorical'],
      ],
    );
    assert.deepEqual(bins.prediction?.edges.slice(0, 2), [0.1, 0.9]);
    assert.equal(bins.prediction?.edges.length, 3);
    assert.equal(rollupBinsOf(profile, { features: {}, prediction: null }).prediction, null);
    assert.equal(rollupBinsOf({ ...profile, prediction: null }, { features: {}, prediction: [1] }).prediction, null);
  });

  it('merge by element-wise addition: two halves add up to the whole', () => {
    const rng = mulberry32(5);
    const reference = referenceValues('normal', 3000, rng);
    const bins = numericBins(referenceSample(reference), numericReference(reference));
    // Multiples of 1/8 add exactly in any order, so even the sums must match bit for bit.
    const current = Array.from({ length: 5000 }, () => Math.round((3 + 2.5 * normal(rng)) * 8) / 8);
    const whole = histogramOf(bins, current);
    const merged = addHistograms(histogramOf(bins, current.slice(0, 1234)), histogramOf(bins, current.slice(1234)));
    assert.deepEqual(merged, whole);
    assert.equal(whole.n, 5000);
    assert.deepEqual(binnedNumericDrift(bins, merged), binnedNumericDrift(bins, whole));

    const labels = ['a', 'b', '__proto__', 'constructor', ''];
    const all: CategoryHistogram = { n: 0, v: {} };
    const first: CategoryHistogram = { n: 0, v: {} };
    const second: CategoryHistogram = { n: 0, v: {} };
    for (let i = 0; i < 1000; i++) {
      const label = labels[Math.floor(rng() * labels.length)];
      addCategory(all, label);
      addCategory(i < 400 ? first : second, label);
    }
    const sum: CategoryHistogram = { n: first.n + second.n, v: {} };
    for (const k of new Set([...Object.keys(first.v), ...Object.keys(second.v)]))
      Object.defineProperty(sum.v, k, { value: (Object.hasOwn(first.v, k) ? first.v[k] : 0) + (Object.hasOwn(second.v, k) ? second.v[k] : 0), enumerable: true, writable: true, configurable: true });
    assert.deepEqual(JSON.parse(JSON.stringify(sum)), JSON.parse(JSON.stringify(all)));
    assert.equal(Object.getPrototypeOf(all.v), Object.prototype, 'a "__proto__" label is counted, not assigned as the prototype');
    assert.equal(Object.keys(all.v).length, labels.length);
    assert.equal(all.n, 1000);
  });
});

describe('binned numeric drift', () => {
  it('gives exact PSI and Jensen–Shannon, and bounds that hold the exact KS and Wasserstein, over randomised data', () => {
    const rng = mulberry32(2024);
    let trials = 0;
    for (let t = 0; t < 500; t++) {
      const refKind = REFERENCE_KINDS[Math.floor(rng() * REFERENCE_KINDS.length)];
      const refSize = REFERENCE_SIZES[Math.floor(rng() * REFERENCE_SIZES.length)];
      const curKind = CURRENT_KINDS[Math.floor(rng() * CURRENT_KINDS.length)];
      const curSize = CURRENT_SIZES[Math.floor(rng() * CURRENT_SIZES.length)];
      const reference = referenceValues(refKind, refSize, rng);
      const ref = numericReference(reference);
      const sample = referenceSample(reference);
      const bins = numericBins(sample, ref);
      const current = currentValues(curKind, curSize, reference, bins, rng);
      const h = histogramOf(bins, current);
      const drift = binnedNumericDrift(bins, h);
      const finiteCount = current.filter((v) => Number.isFinite(v)).length;
      const what = `trial ${t} (${refKind} ×${refSize} vs ${curKind} ×${curSize})`;
      if (finiteCount === 0) {
        assert.equal(drift, null, what);
        continue;
      }
      assert.ok(drift, what);
      assert.equal(drift.n, finiteCount, what);
      assert.equal(h.n, finiteCount, what);
      assertBracketed(drift, exactNumeric(reference, current), what);
      assert.equal(drift.ksPValue, ksPValue(drift.ks, sample.length, finiteCount), what);
      const std = ref.std ?? 0;
      if (std > 0) assert.ok(Math.abs(drift.wassersteinNormed - drift.wasserstein / std) <= 1e-12 && Math.abs(drift.wassersteinNormedUpper - drift.wassersteinUpper / std) <= 1e-12, what);
      trials++;
    }
    assert.ok(trials > 400, `only ${trials} trials had current values`);
  });

  it('holds the exact statistics on hand-picked edge cases', () => {
    const cases: Array<{ name: string; reference: number[]; current: number[] }> = [
      { name: 'one-value reference, current on it', reference: [4], current: [4, 4, 4] },
      { name: 'one-value reference, current around it', reference: [4], current: [1, 4, 9, 4, 7] },
      { name: 'constant reference, current above its maximum', reference: [2, 2, 2, 2], current: [5, 6] },
      { name: 'ties at the maximum, current at the maximum', reference: [0, 1, 1, 5, 5, 5], current: [5, 5, 5, 5] },
      { name: 'ties at the maximum, current above it', reference: [0, 1, 1, 5, 5, 5], current: [10, 10, 10, 10] },
      { name: 'current far below the minimum', reference: [1, 2, 3], current: [-1e6, -3] },
      { name: 'two-value reference, one current value between', reference: [0, 10], current: [3] },
    ];
    for (const c of cases) {
      const bins = numericBins(referenceSample(c.reference), numericReference(c.reference));
      const drift = binnedNumericDrift(bins, histogramOf(bins, c.current));
      assert.ok(drift, c.name);
      const exact = exactNumeric(c.reference, c.current);
      assertBracketed(drift, exact, c.name);
      if (c.name.startsWith('constant')) {
        // Every value moved past a reference without spread: the normed distance is infinite.
        assert.equal(drift.wassersteinNormed, Infinity);
        assert.equal(exact.ks, 1);
        assert.equal(drift.ks, 1);
        assert.equal(drift.ksUpper, 1);
      }
      if (c.name === 'current far below the minimum') assert.equal(drift.wasserstein, drift.wassersteinUpper, 'bin-0 mass is exact');
    }
    const bins = numericBins([1, 2, 3], numericReference([1, 2, 3]));
    assert.equal(binnedNumericDrift(bins, histogramOf(bins, [NaN, Infinity])), null);
    const same = binnedNumericDrift(bins, histogramOf(bins, []));
    assert.equal(same, null);
  });

  it('is tight for continuous data at 10,000 current values', () => {
    const rng = mulberry32(77);
    for (const [shift, scale] of [
      [0, 1],
      [0.1, 1],
      [0.5, 1],
      [0, 1.3],
      [-0.3, 0.8],
    ]) {
      const reference = Array.from({ length: 20_000 }, () => 10 + 3 * normal(rng));
      const ref = numericReference(reference);
      const bins = numericBins(referenceSample(reference), ref);
      const current = Array.from({ length: 10_000 }, () => 10 + 3 * (shift + scale * normal(rng)));
      const drift = binnedNumericDrift(bins, histogramOf(bins, current))!;
      const exact = exactNumeric(reference, current);
      const what = `shift ${shift}, scale ${scale}`;
      assertBracketed(drift, exact, what);
      assert.ok(drift.ksUpper - drift.ks <= 0.02, `${what}: ks within [${drift.ks}, ${drift.ksUpper}]`);
      assert.ok(exact.ks - drift.ks <= 0.01, `${what}: ks ${drift.ks} vs exact ${exact.ks}`);
      const std = ref.std!;
      assert.ok((drift.wassersteinUpper - drift.wasserstein) / std <= 0.05, `${what}: normed wasserstein within [${drift.wasserstein / std}, ${drift.wassersteinUpper / std}]`);
      assert.ok((exact.wasserstein - drift.wasserstein) / std <= 0.01, `${what}: normed wasserstein ${drift.wasserstein / std} vs exact ${exact.wasserstein / std}`);
    }
  });
});

describe('binned categorical drift', () => {
  it('equals chi-squared, PSI and Jensen–Shannon over the union of categories', () => {
    const rng = mulberry32(9);
    const labels = ['a', 'b', 'c', 'd', 'e', 'constructor', '__proto__'];
    for (let t = 0; t < 200; t++) {
      const refLabels = labels.slice(0, 1 + Math.floor(rng() * 4));
      const reference = Array.from({ length: 1 + Math.floor(rng() * 300) }, () => refLabels[Math.floor(rng() * refLabels.length)]);
      const bins = categoricalBins(categoricalReference(reference));
      const current = Array.from({ length: Math.floor(rng() * 200) }, () => labels[Math.floor(rng() * (rng() < 0.5 ? labels.length : refLabels.length))]);
      const h: CategoryHistogram = { n: 0, v: {} };
      for (const v of current) addCategory(h, v);
      const drift = binnedCategoricalDrift(bins, h);
      if (current.length === 0) {
        assert.equal(drift, null);
        continue;
      }
      const keys = [...new Set([...reference, ...current])].sort();
      const r = keys.map((k) => reference.filter((v) => v === k).length);
      const cur = keys.map((k) => current.filter((v) => v === k).length);
      const chi = chiSquared(r, cur);
      assert.ok(drift, `trial ${t}`);
      assert.equal(drift.n, current.length);
      assert.ok(Math.abs(drift.chi2 - chi.statistic) <= 1e-12, `trial ${t}: chi2 ${drift.chi2} vs ${chi.statistic}`);
      assert.ok(Math.abs(drift.chi2PValue - chi.pValue) <= 1e-12, `trial ${t}: chi2 p ${drift.chi2PValue} vs ${chi.pValue}`);
      assert.ok(Math.abs(drift.psi - psi(r, cur)) <= 1e-12, `trial ${t}: psi`);
      assert.ok(Math.abs(drift.jensenShannon - jensenShannon(r, cur)) <= 1e-12, `trial ${t}: js`);
    }
  });
});
