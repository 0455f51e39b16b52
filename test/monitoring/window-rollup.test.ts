import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../../src/core/prng';
import { SKETCH_RELATIVE_ACCURACY, sketchAdd, sketchMerge, sketchQuantile, type LatencySketch } from '../../src/inference/latency-sketch';
import type { RollupBins } from '../../src/inference/rollup-bins';
import { RollupAccumulator, UNSEEN_CATEGORY, type RolledPrediction } from '../../src/inference/window-rollup';
import { qualityDelta } from '../../src/inference/quality-stats';

const record = (over: Partial<RolledPrediction>): RolledPrediction => ({
  deploymentId: 'd',
  teamId: 't',
  modelVersionId: 'v1',
  failedVersionId: null,
  shadow: false,
  occurredAt: new Date('2030-01-01T00:00:05Z'),
  latencyMs: 2,
  fallback: false,
  rows: 1,
  inputs: null,
  outputs: { p: [[0.2]] },
  ...over,
});

describe('window rollup accumulation', () => {
  it('keeps every quantile of a sketch, merged in any split, within its relative accuracy of the order statistic', () => {
    const random = mulberry32(3, 5);
    for (let trial = 0; trial < 20; trial++) {
      const values = Array.from({ length: 1 + Math.floor(random() * 5000) }, () => Math.exp(random() * 12 - 6) * (random() < 0.05 ? 100 : 1));
      const parts: LatencySketch[] = [{}, {}, {}];
      values.forEach((v, i) => sketchAdd(parts[i % 3], v));
      const merged = parts.reduce((a, b) => sketchMerge(a, b), {});
      const sorted = [...values].sort((a, b) => a - b);
      for (const q of [0, 0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
        const exact = sorted[Math.floor(q * (sorted.length - 1))];
        const got = sketchQuantile(merged, q)!;
        assert.ok(Math.abs(got - exact) <= SKETCH_RELATIVE_ACCURACY * exact * (1 + 1e-12), `q ${q}: ${got} against ${exact}`);
      }
    }
    assert.equal(sketchQuantile({}, 0.5), null);
  });

  it('counts a fallback answer to the version that failed and its rows to the one that answered', () => {
    const acc = new RollupAccumulator(10, () => null);
    acc.addPrediction(record({ failedVersionId: 'v1', modelVersionId: 'v0', fallback: true, rows: 3, outputs: { p: [[0.1], [0.2], [0.3]] } }));
    acc.addPrediction(record({ failedVersionId: 'v1', modelVersionId: 'v1', outputs: null }));
    const [v0, v1] = acc.deltas();
    assert.deepEqual([v0.modelVersionId, v0.stats.requests, v0.stats.rows], ['v0', 0, 3]);
    assert.deepEqual([v1.modelVersionId, v1.stats.requests, v1.stats.errors, v1.stats.fallbacks, v1.stats.rows], ['v1', 2, 2, 1, 0]);
    assert.equal(new Date(v1.windowStart).toISOString(), '2030-01-01T00:00:00.000Z');
  });

  it('counts categories the reference never saw under one key, whatever a caller sends', () => {
    const bins: RollupBins = {
      binsVersion: 1,
      inputName: 'x',
      outputName: 'p',
      columns: [{ name: 'colour', index: 0, bins: { kind: 'categorical', refFrequencies: { red: 3, blue: 1 }, refCount: 4 } }],
      prediction: null,
    };
    const acc = new RollupAccumulator(10, () => bins);
    const sent = ['red', 'blue', 'red', ...Array.from({ length: 500 }, (_, i) => `attacker-${i}`), '__proto__', 'constructor'];
    acc.addPrediction(record({ rows: sent.length, inputs: { x: sent.map((c) => [c]) }, outputs: { p: sent.map(() => [0.5]) } }));
    const [row] = acc.deltas();
    assert.deepEqual(row.stats.features.colour, { n: sent.length, v: { red: 2, blue: 1, [UNSEEN_CATEGORY]: 502 } });
  });

  it('leaves labels and scores too large to square unscored, so no sum overflows', () => {
    assert.deepEqual(qualityDelta(0.1, 1e154, 0.5, 1), { unscored: 1 });
    assert.deepEqual(qualityDelta(1e154, 3, 0.5, 1), { unscored: 1 });
    const r = qualityDelta(2, 1e99, 0.5, 1).regression!;
    assert.ok(Number.isFinite(r.sumSqError + r.sumSqY));
  });

  it('takes a corrected label out of the quality statistics and puts the new one in', () => {
    const acc = new RollupAccumulator(10, () => null);
    const at = new Date('2030-01-01T00:00:05Z');
    const outcome = { deploymentId: 'd', teamId: 't', modelVersionId: 'v1', occurredAt: at, score: 0.8, threshold: 0.5, recordedAt: new Date(at.getTime() + 60_000) };
    acc.addOutcome({ ...outcome, label: 0 });
    acc.addOutcome({ ...outcome, label: 1, before: 0 });
    const straight = new RollupAccumulator(10, () => null);
    straight.addOutcome({ ...outcome, label: 1 });
    const [a] = acc.deltas();
    const [b] = straight.deltas();
    assert.deepEqual(JSON.parse(JSON.stringify(a.stats.quality.classification)), JSON.parse(JSON.stringify({ ...b.stats.quality.classification, h0: { 800: 0 } })));
    assert.deepEqual([a.stats.labelled, sketchQuantile(a.stats.labelDelay, 0.5)! > 59 && sketchQuantile(a.stats.labelDelay, 0.5)! < 61], [1, true]);
  });
});
