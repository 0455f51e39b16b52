import assert from 'node:assert/strict';
import { syntheticPopulation, type Concept } from '../../jobs/trainers/synthetic-data';
import type { TestServer } from './harness';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id } }`;
const RECORD = `mutation($input: RecordOutcomesInput!) { recordOutcomes(input: $input) { recorded rejected } }`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Traffic from a simulated population (see syntheticPopulation), answered by a deployment, each
 * row labelled right after: what production would send, and nothing else (no call on the loop).
 */
export class Traffic {
  private running = false;
  private done: Promise<void> | null = null;
  private readonly population;
  concept: Concept = 'steady';
  sent = 0;

  constructor(
    private readonly t: TestServer,
    private readonly token: string,
    private readonly deployment: string,
    seed = 4242,
  ) {
    this.population = syntheticPopulation({ seed, nFeatures: 4 });
  }

  set(concept: Concept): this {
    this.concept = concept;
    return this;
  }

  /** One request of `rows` rows, then their labels. */
  async batch(rows = 10): Promise<void> {
    const drawn = Array.from({ length: rows }, () => this.population.draw(this.concept));
    const p = await this.t.gql(this.token, PREDICT, { d: this.deployment, inputs: { features: drawn.map((d) => d.x) } });
    assert.equal(p.errors, undefined, JSON.stringify(p.errors));
    const outcomes = drawn.map((d, row) => ({ prediction: p.data.predict.id, row, label: d.label }));
    const r = await this.t.gql(this.token, RECORD, { input: { deployment: this.deployment, outcomes } });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    this.sent += rows;
  }

  /** Batches of `rows` one after the other, `everyMs` apart, until {@link stop}. */
  start(rows = 10, everyMs = 50): void {
    this.running = true;
    this.done = (async () => {
      while (this.running) {
        await this.batch(rows);
        await sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
