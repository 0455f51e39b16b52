import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { request } from '../support/http';
import { PREDICT } from '../support/inference';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One sample of the text exposition format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: string;
}

interface Family {
  name: string;
  help?: string;
  type?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)/y;
const VALUE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''], counter: [''], gauge: [''], untyped: [''] };

/**
 * A strict reading of the Prometheus text format (0.0.4): every sample belongs to a family
 * announced by # HELP and # TYPE before it, each family appears once, label sets are well formed.
 */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  const familyOf = (sample: string): Family | undefined => {
    if (current && (SUFFIXES[current.type ?? 'untyped'] ?? ['']).some((s) => sample === current!.name + s)) return current;
    return undefined;
  };
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const where = `line ${i + 1}: ${line}`;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      assert.match(name, NAME, where);
      let f = families.get(name);
      if (!f) {
        assert.ok(!current || current.name === name || current.samples.length > 0 || current.type, where);
        families.set(name, (f = { name, samples: [] }));
      } else {
        assert.equal(f.samples.length, 0, `${where}: metadata after the family's samples`);
        assert.equal(current, f, `${where}: family ${name} appears twice`);
      }
      if (kind === 'HELP') {
        assert.equal(f.help, undefined, `${where}: second HELP`);
        assert.ok(rest.trim().length > 0, `${where}: empty HELP`);
        f.help = rest;
      } else {
        assert.equal(f.type, undefined, `${where}: second TYPE`);
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), where);
        f.type = rest;
      }
      current = f;
      continue;
    }
    assert.ok(!line.startsWith('#'), `${where}: unknown comment`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    assert.ok(m, `${where}: not a sample`);
    const [, name, labelText, value] = m;
    const f = familyOf(name);
    assert.ok(f, `${where}: sample outside its family's # HELP / # TYPE`);
    assert.ok(f.help !== undefined && f.type !== undefined, `${where}: family without # HELP and # TYPE`);
    assert.match(value, VALUE, where);
    const labels: Record<string, string> = {};
    if (labelText) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < labelText.length) {
        const l = LABEL.exec(labelText);
        assert.ok(l, `${where}: bad label set`);
        assert.equal(labels[l[1]], undefined, `${where}: label ${l[1]} twice`);
        labels[l[1]] = l[2];
      }
    }
    f.samples.push({ name, labels, value });
  }
  return families;
}

describe('/metrics', () => {
  let t: TestServer;
  let text: string;
  let families: Map<string, Family>;

  before(async () => {
    t = await startTestServer({ demo: true });
    const service = t.token(['service'], ['fraud'], 'svc-fraud');
    const admin = t.token(['admin'], []);
    // A GraphQL query, a mutation (a prediction), an error, a REST call, a 404.
    const r = await t.gql(service, `query Deployments { deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } } }`);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const deployment = r.data.deployments.nodes[0].id;
    const p = await t.gql(service, PREDICT, { d: deployment, inputs: { features: [[1, 2, 0.5, 3]] }, key: 'k1' });
    assert.equal(p.errors, undefined, JSON.stringify(p.errors));
    assert.equal((await t.gql(service, `{ nope }`)).status, 400);
    assert.equal((await request(`${t.url}/healthz`)).status, 200);
    assert.equal((await request(`${t.url}/v2/models/fraud:fraud-detector-production/ready`, { headers: { authorization: `Bearer ${service}` } })).status, 200);
    assert.equal((await request(`${t.url}/no/such/path`)).status, 404);
    const m = await request(`${t.url}/metrics`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    text = m.text;
    families = parseExposition(text);
  });
  after(async () => {
    await t?.stop();
  });

  const family = (name: string, type: string) => {
    const f = families.get(name);
    assert.ok(f, `${name} is exposed`);
    assert.equal(f.type, type, name);
    return f;
  };

  it('passes promtool check metrics, when promtool is installed', (ctx) => {
    const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (found.error) {
      ctx.skip('promtool is not on PATH');
      return;
    }
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool finds nothing');
    assert.equal(r.status, 0);
  });

  it('names families by the conventions: counters end in _total, nothing else does, every name has the modelgov_ prefix', () => {
    for (const f of families.values()) {
      assert.ok(f.name.startsWith('modelgov_'), f.name);
      if (f.type === 'counter') assert.ok(f.name.endsWith('_total'), `counter ${f.name} ends in _total`);
      else assert.ok(!f.name.endsWith('_total'), `${f.type} ${f.name} does not end in _total`);
    }
  });

  it('has label values an operator can read: no bare UUIDs', () => {
    for (const f of families.values()) {
      for (const s of f.samples) for (const [k, v] of Object.entries(s.labels)) assert.doesNotMatch(v, UUID, `${s.name}{${k}="${v}"}`);
    }
  });

  it('labels predictions by team:deployment and model:vN', () => {
    const f = family('modelgov_predictions_total', 'counter');
    const s = f.samples.find((x) => x.labels.role === 'served' && x.labels.outcome === 'ok');
    assert.ok(s, JSON.stringify(f.samples));
    assert.equal(s.labels.deployment, 'fraud:fraud-detector-production');
    assert.match(s.labels.model_version, /^fraud-detector:v\d+$/);
    const batch = family('modelgov_inference_batch_requests', 'histogram');
    assert.ok(batch.samples.every((x) => /^fraud-detector:v\d+$|^[^:]+:v\d+$/.test(x.labels.model_version)));
    family('modelgov_inference_threads_replaced_total', 'counter');
  });

  it('counts HTTP requests by method, route template and status class, with their durations', () => {
    const f = family('modelgov_http_requests_total', 'counter');
    const has = (method: string, route: string, status: string) => f.samples.some((s) => s.labels.method === method && s.labels.route === route && s.labels.status === status);
    assert.ok(has('POST', '/graphql', '2xx'), JSON.stringify(f.samples));
    assert.ok(has('POST', '/graphql', '4xx'), JSON.stringify(f.samples));
    assert.ok(has('GET', '/healthz', '2xx'));
    assert.ok(has('GET', '/v2/models/:name/ready', '2xx'), JSON.stringify(f.samples));
    // An unknown path is one series, never its raw path.
    assert.ok(has('GET', 'unmatched', '4xx'), JSON.stringify(f.samples));
    assert.ok(!f.samples.some((s) => s.labels.route.includes('fraud') || s.labels.route.includes('/no/')));
    const d = family('modelgov_http_request_duration_seconds', 'histogram');
    const graphqlCount = d.samples.filter((s) => s.name.endsWith('_count') && s.labels.route === '/graphql').reduce((n, s) => n + Number(s.value), 0);
    assert.ok(graphqlCount >= 3, JSON.stringify(d.samples.filter((s) => s.name.endsWith('_count'))));
  });

  it('counts GraphQL operations by type and outcome', () => {
    const f = family('modelgov_graphql_operations_total', 'counter');
    const count = (type: string, outcome: string) => Number(f.samples.find((s) => s.labels.operation_type === type && s.labels.outcome === outcome)?.value ?? 0);
    assert.ok(count('query', 'ok') >= 1, JSON.stringify(f.samples));
    assert.ok(count('mutation', 'ok') >= 1, JSON.stringify(f.samples));
    assert.ok(count('unknown', 'invalid') >= 1, JSON.stringify(f.samples));
  });

  it('reads the queue depths by queue and state', () => {
    const f = family('modelgov_queue_jobs', 'gauge');
    for (const state of ['waiting', 'active', 'delayed', 'failed']) assert.ok(f.samples.some((s) => s.labels.queue === 'training' && s.labels.state === state), state);
    family('modelgov_queue_scrape_errors_total', 'counter');
  });

  it('exposes training runs finished, the build and the process', () => {
    family('modelgov_training_runs_finished_total', 'counter');
    const b = family('modelgov_build_info', 'gauge');
    assert.equal(b.samples.length, 1);
    assert.equal(b.samples[0].value, '1');
    assert.match(b.samples[0].labels.version, /^\d+\.\d+\.\d+/);
    assert.equal(b.samples[0].labels.node, process.version);
    family('modelgov_process_cpu_seconds_total', 'counter');
    family('modelgov_nodejs_active_handles', 'gauge');
    family('modelgov_subscription_executions_total', 'counter');
  });
});
