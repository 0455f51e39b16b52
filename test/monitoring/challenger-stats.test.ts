import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { bootstrapAucDifference, discordant, mcnemar, rocAuc } from '../../src/monitoring/challenger-stats';
import { mulberry32 } from '../../src/core/prng';
import { repoRoot } from '../support/repo';

interface Fixture {
  generator: string;
  rows: Array<[number, number, number]>;
  expected: { aucChampion: number; aucCandidate: number; accuracyChampion: number; accuracyCandidate: number; b: number; c: number; pValue: number; pCandidateWorse: number };
  mcnemar: Array<{ b: number; c: number; pValue: number; pCandidateWorse: number }>;
}

const fixture: Fixture = JSON.parse(readFileSync(path.join(repoRoot(), 'test/monitoring/fixtures/challenger/challenger-fixture.json'), 'utf8'));
const champion = fixture.rows.map((r) => r[0]);
const candidate = fixture.rows.map((r) => r[1]);
const labels = fixture.rows.map((r) => r[2]);
const close = (actual: number | null | undefined, expected: number, what: string, tolerance = 1e-12) =>
  assert.ok(actual !== null && actual !== undefined && Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (${fixture.generator})`);

describe('champion/challenger statistics', () => {
  it('gives the ROC AUC scikit-learn gives, ties counted one half', () => {
    close(rocAuc(champion, labels), fixture.expected.aucChampion, 'champion AUC');
    close(rocAuc(candidate, labels), fixture.expected.aucCandidate, 'candidate AUC');
    assert.equal(rocAuc([0.1, 0.2], [1, 1]), null);
    assert.equal(rocAuc([0.5, 0.5, 0.5], [1, 0, 1]), 0.5);
  });

  it("gives McNemar's exact p-values scipy's binomtest gives on the discordant pairs", () => {
    const right = (scores: number[]) => scores.map((s, i) => (s >= 0.5 ? 1 : 0) === labels[i]);
    const { b, c } = discordant(right(champion), right(candidate));
    assert.deepEqual({ b, c }, { b: fixture.expected.b, c: fixture.expected.c });
    const m = mcnemar(b, c);
    close(m.pValue, fixture.expected.pValue, 'two-sided p');
    close(m.pCandidateWorse, fixture.expected.pCandidateWorse, 'one-sided p');
    for (const e of fixture.mcnemar) {
      const got = mcnemar(e.b, e.c);
      close(got.pValue, e.pValue, `two-sided p of b=${e.b} c=${e.c}`);
      close(got.pCandidateWorse, e.pCandidateWorse, `one-sided p of b=${e.b} c=${e.c}`);
    }
    assert.throws(() => mcnemar(-1, 2), RangeError);
  });

  it('gives a reproducible paired bootstrap interval that holds the true AUC difference of a synthetic case', () => {
    // Scores from two models of known quality on many rows: the interval from 600 of them should hold the difference on all.
    const random = mulberry32(99);
    const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const population = Array.from({ length: 40_000 }, () => {
      const x = normal();
      const label = random() < 1 / (1 + Math.exp(-2 * x)) ? 1 : 0;
      return { label, a: x + 0.6 * normal(), b: x + 1.2 * normal() };
    });
    const truth = rocAuc(population.map((r) => r.b), population.map((r) => r.label))! - rocAuc(population.map((r) => r.a), population.map((r) => r.label))!;
    const rows = population.slice(0, 600);
    const run = () => bootstrapAucDifference(rows.map((r) => r.a), rows.map((r) => r.b), rows.map((r) => r.label), { seed: 7 });
    const first = run()!;
    assert.deepEqual(run(), first, 'the same rows and seed give the same interval');
    assert.equal(first.resamples, 1000);
    assert.ok(first.lower <= first.difference && first.difference <= first.upper, JSON.stringify(first));
    assert.ok(first.lower <= truth && truth <= first.upper, `true difference ${truth} outside [${first.lower}, ${first.upper}]`);
    assert.ok(first.upper < 0, 'the noisier model is worse, and the interval says so');
    const other = bootstrapAucDifference(rows.map((r) => r.a), rows.map((r) => r.b), rows.map((r) => r.label), { seed: 8 })!;
    assert.notDeepEqual(other, first, 'another seed draws other resamples');
    assert.equal(bootstrapAucDifference([0.1, 0.2], [0.3, 0.4], [0, 0]), null);
  });
});
