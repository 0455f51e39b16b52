import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { addQuality, labelKind, qualityDelta, scoreBin, SCORE_BINS, type QualityStats } from '../../src/inference/quality-stats';
import { qualityMetrics, type QualityMetrics } from '../../src/monitoring/quality-metrics';
import { repoRoot } from '../support/repo';

interface Fixture {
  sklearn: string;
  numpy: string;
  threshold: number;
  positives: number;
  expected: Record<'accuracy' | 'precision' | 'recall' | 'f1' | 'rocAuc' | 'logLoss' | 'brier' | 'expectedCalibrationError' | 'mae' | 'rmse' | 'r2' | 'bias', number>;
  classification: Array<[number, number]>;
  regression: Array<[number, number]>;
}

const fixture: Fixture = JSON.parse(readFileSync(path.join(repoRoot(), 'test/monitoring/fixtures/quality/quality-fixture.json'), 'utf8'));
const threshold = fixture.threshold;
const TOLERANCE = 1e-9;

/** A labelled row as the server sees it: a score (or prediction) and the caller's label. */
type Row = [number | null, unknown];
const rows: Row[] = [...fixture.classification, ...fixture.regression];

// Deterministic shuffles: a failure reproduces.
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = mulberry32(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function fold(batch: readonly Row[], start: QualityStats = {}): QualityStats {
  return batch.reduce((acc, [score, label]) => addQuality(acc, qualityDelta(score, label, threshold, 1)), start);
}

function close(actual: number | null | undefined, expected: number, what: string, tolerance = TOLERANCE): void {
  assert.equal(typeof actual, 'number', `${what} is a number`);
  assert.ok(Math.abs((actual as number) - expected) <= tolerance, `${what}: ${actual} vs ${expected} (|diff| ${Math.abs((actual as number) - expected)})`);
}

function assertMatchesSklearn(m: QualityMetrics): void {
  const e = fixture.expected;
  assert.equal(m.labelled, rows.length);
  assert.equal(m.unscored, 0);
  const c = m.classification;
  assert.ok(c, 'classification metrics');
  assert.equal(c.rows, fixture.classification.length);
  assert.equal(c.positives, fixture.positives);
  assert.equal(c.threshold, threshold);
  close(c.accuracy, e.accuracy, 'accuracy');
  close(c.precision, e.precision, 'precision');
  close(c.recall, e.recall, 'recall');
  close(c.f1, e.f1, 'f1');
  close(c.logLoss, e.logLoss, 'log loss');
  close(c.brier, e.brier, 'brier');
  close(c.expectedCalibrationError, e.expectedCalibrationError, 'expected calibration error');
  assert.ok(c.rocAucBound > 0 && c.rocAucBound < 0.01, `AUC bound ${c.rocAucBound} is small`);
  close(c.rocAuc, e.rocAuc, 'binned ROC AUC within its bound', c.rocAucBound);
  const r = m.regression;
  assert.ok(r, 'regression metrics');
  assert.equal(r.rows, fixture.regression.length);
  close(r.mae, e.mae, 'mae');
  close(r.rmse, e.rmse, 'rmse');
  close(r.bias, e.bias, 'bias');
  close(r.r2, e.r2, 'r2');
}

describe(`quality metrics from additive statistics match scikit-learn ${fixture.sklearn} (numpy ${fixture.numpy})`, () => {
  it('fold every row in random order', () => {
    assertMatchesSklearn(qualityMetrics(fold(shuffled(rows, 1)), threshold));
  });

  it('merge partial sums of a different order, as rollup rows from several writers', () => {
    const random = mulberry32(2);
    const parts: Row[][] = Array.from({ length: 7 }, () => []);
    for (const row of shuffled(rows, 3)) parts[Math.floor(random() * parts.length)].push(row);
    // Each partial goes through JSON, as it would through the database.
    const partials = parts.map((part) => JSON.parse(JSON.stringify(fold(part))) as QualityStats);
    const merged = shuffled(partials, 4).reduce((acc, p) => addQuality(acc, p), {});
    const tree = addQuality(addQuality(partials[0], partials[1]), addQuality(addQuality(partials[2], partials[3]), addQuality(partials[4], addQuality(partials[5], partials[6]))));
    assertMatchesSklearn(qualityMetrics(merged, threshold));
    assertMatchesSklearn(qualityMetrics(tree, threshold));
  });

  it('gives the same metrics after a JSON round trip of the statistics', () => {
    const stats = fold(shuffled(rows, 5));
    const metrics = qualityMetrics(stats, threshold);
    const again = qualityMetrics(JSON.parse(JSON.stringify(stats)) as QualityStats, threshold);
    // JSON writes −0 as 0; every other value must come back bit for bit.
    assert.equal(JSON.stringify(again), JSON.stringify(metrics));
    assert.equal(again.classification?.rocAuc, metrics.classification?.rocAuc);
    assert.equal(again.regression?.r2, metrics.regression?.r2);
  });
});

describe('quality statistics: corrections, unscored labels, shapes', () => {
  const base = fold(fixture.classification.slice(0, 500));

  it('a corrected label gives the statistics of the row labelled right from the start', () => {
    for (const score of [0.73, 0.2, 0.5, 0, 1]) {
      const corrected = [qualityDelta(score, 1, threshold, 1), qualityDelta(score, 1, threshold, -1), qualityDelta(score, 0, threshold, 1)].reduce(addQuality, base);
      const direct = addQuality(base, qualityDelta(score, 0, threshold, 1));
      const a = corrected.classification!;
      const b = direct.classification!;
      for (const key of ['n', 'pos', 'tp', 'fp', 'tn', 'fn'] as const) assert.equal(a[key], b[key], `${key} at score ${score}`);
      assert.deepEqual(a.calN, b.calN);
      assert.deepEqual(a.calY, b.calY);
      a.calP.forEach((v, i) => close(v, b.calP[i], `calP[${i}]`, 1e-12));
      close(a.logLoss, b.logLoss, 'Σ log loss', 1e-9);
      close(a.brier, b.brier, 'Σ brier', 1e-12);
      // The removed positive leaves a zero entry behind; nonzero entries are the same.
      assert.deepEqual(nonZero(a.h1), nonZero(b.h1));
      assert.deepEqual(nonZero(a.h0), nonZero(b.h0));
      assert.equal(a.h1[String(scoreBin(score))], b.h1[String(scoreBin(score))] ?? 0);
      const ma = qualityMetrics(corrected, threshold).classification!;
      const mb = qualityMetrics(direct, threshold).classification!;
      assert.equal(ma.rocAuc, mb.rocAuc);
      assert.equal(ma.rocAucBound, mb.rocAucBound);
      assert.equal(ma.accuracy, mb.accuracy);
      close(ma.logLoss, mb.logLoss, 'log loss');
      close(ma.expectedCalibrationError, mb.expectedCalibrationError, 'ECE', 1e-12);
    }
  });

  it('a corrected regression label removes the old error', () => {
    const before = fold(fixture.regression.slice(0, 300));
    const corrected = [qualityDelta(12.5, 10, threshold, 1), qualityDelta(12.5, 10, threshold, -1), qualityDelta(12.5, 14, threshold, 1)].reduce(addQuality, before);
    const direct = addQuality(before, qualityDelta(12.5, 14, threshold, 1));
    const a = qualityMetrics(corrected, threshold).regression!;
    const b = qualityMetrics(direct, threshold).regression!;
    assert.equal(a.rows, 301);
    close(a.mae, b.mae, 'mae');
    close(a.rmse, b.rmse, 'rmse');
    close(a.bias, b.bias, 'bias');
    close(a.r2, b.r2!, 'r2');
  });

  it('counts labels that cannot be scored, and keeps them out of the metrics', () => {
    const odd: Row[] = [[0.4, 'cat'], [0.4, { a: 1 }], [null, 1], [Number.NaN, 0], [0.7, null], [1.5, true], [0.3, [1]]];
    const stats = fold(odd, fold([[0.9, true], [0.1, false], [0.6, 0], [3, 2.5]]));
    const m = qualityMetrics(stats, threshold);
    assert.equal(m.unscored, odd.length);
    assert.equal(m.labelled, odd.length + 4);
    assert.equal(m.classification?.rows, 3);
    assert.equal(m.classification?.positives, 1);
    assert.equal(m.classification?.accuracy, 2 / 3);
    assert.equal(m.classification?.precision, 1 / 2);
    assert.equal(m.classification?.rocAuc, 1);
    assert.equal(m.regression?.rows, 1);
    assert.equal(m.regression?.bias, 0.5);
    assert.equal(m.regression?.r2, null);
    // Removing an unscored label is counted too.
    assert.equal(qualityMetrics(addQuality(stats, qualityDelta(0.4, 'cat', threshold, -1)), threshold).unscored, odd.length - 1);
  });

  it('reads labels as the contract says', () => {
    assert.equal(labelKind(true, 0.2), 'classification');
    assert.equal(labelKind(0, 1), 'classification');
    assert.equal(labelKind(1, 0), 'classification');
    assert.equal(labelKind(1, 1.2), 'regression');
    assert.equal(labelKind(0.5, 0.2), 'regression');
    assert.equal(labelKind(-3, -7), 'regression');
    assert.equal(labelKind(false, -0.1), 'unscored');
    assert.equal(labelKind('1', 0.5), 'unscored');
    assert.equal(labelKind(Number.POSITIVE_INFINITY, 0.5), 'unscored');
    assert.equal(labelKind(1, null), 'unscored');
    assert.equal(labelKind(1, Number.NaN), 'unscored');
  });

  it('keeps deltas compact and bins scores on their edges', () => {
    const delta = qualityDelta(0.5, 1, threshold, 1);
    assert.deepEqual(Object.keys(delta), ['classification']);
    assert.deepEqual(delta.classification?.h1, { '500': 1 });
    assert.deepEqual(delta.classification?.h0, {});
    assert.equal(delta.classification?.tp, 1);
    assert.deepEqual(Object.keys(qualityDelta(4, 2, threshold, 1)), ['regression']);
    assert.deepEqual(qualityDelta(0.5, 'x', threshold, -1), { unscored: -1 });
    assert.equal(scoreBin(0), 0);
    assert.equal(scoreBin(0.5), 500);
    assert.equal(scoreBin(0.999999), SCORE_BINS - 1);
    assert.equal(scoreBin(1), SCORE_BINS - 1);
  });

  it('with a single class there is no AUC, and other metrics still are', () => {
    const m = qualityMetrics(fold([[0.9, 1], [0.4, 1]]), threshold).classification!;
    assert.equal(m.rocAuc, null);
    assert.equal(m.rocAucBound, 0);
    assert.equal(m.recall, 1 / 2);
    assert.equal(qualityMetrics({}, threshold).classification, null);
  });

  it('refuses to add statistics of different shapes', () => {
    assert.throws(() => addQuality({ classification: { calN: [1, 2] } } as unknown as QualityStats, { classification: { calN: [1] } } as unknown as QualityStats), RangeError);
    assert.throws(() => addQuality({ unscored: 1 }, { unscored: { a: 1 } } as unknown as QualityStats), RangeError);
  });
});

function nonZero(h: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== 0));
}
