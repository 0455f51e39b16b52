import { Field, Float, ObjectType } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { notFound } from '../core/errors';
import { expectId, toGlobalId } from '../core/global-id';
import { JSONScalar } from '../core/scalars';
import { Config } from '../lineage/config.entity';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { SeedSet } from '../lineage/seed-set.entity';
import { runDatasetLinks } from '../lineage/lineage.loaders';
import { TrainingRun } from '../lineage/training-run.entity';
import { ModelVersion } from './model-version.entity';
import { challengeOf, ModelVersionChallenge } from './model-version-challenge';

@ObjectType({ description: 'One metric in two versions' })
export class MetricDifference {
  @Field({ description: 'The metric, as the versions record it' })
  name!: string;

  @Field(() => Float, { nullable: true, description: "a's value; null when a does not record it" })
  a!: number | null;

  @Field(() => Float, { nullable: true, description: "b's value; null when b does not record it" })
  b!: number | null;

  @Field(() => Float, { nullable: true, description: 'b − a, when both have it' })
  delta!: number | null;
}

@ObjectType({ description: 'A value that differs between the two versions’ configs or seeds' })
export class ValueDifference {
  @Field({ description: 'JSON path, e.g. optimizer.lr' })
  path!: string;

  @Field(() => JSONScalar, { nullable: true, description: "The value in a's run; null when absent" })
  a!: unknown;

  @Field(() => JSONScalar, { nullable: true, description: "The value in b's run; null when absent" })
  b!: unknown;
}

@ObjectType({ description: 'How two model versions differ in lineage and metrics' })
export class ModelVersionComparison {
  @Field(() => ModelVersion, { description: 'The version compared from' })
  a!: ModelVersion;

  @Field(() => ModelVersion, { description: 'The version compared to' })
  b!: ModelVersion;

  @Field(() => [MetricDifference], { description: 'Every metric either version records, by name' })
  metrics!: MetricDifference[];

  @Field(() => [DatasetVersion], { description: 'Used by a’s run only' })
  datasetVersionsOnlyInA!: DatasetVersion[];

  @Field(() => [DatasetVersion], { description: 'Used by b’s run only' })
  datasetVersionsOnlyInB!: DatasetVersion[];

  @Field(() => [DatasetVersion], { description: 'Used by both runs (those the caller may read)' })
  datasetVersionsInBoth!: DatasetVersion[];

  @Field({ description: 'Both runs used the same CodeVersion (also true when neither has a run)' })
  sameCodeVersion!: boolean;

  @Field({ description: 'Both runs used the same Config (also true when neither has a run)' })
  sameConfig!: boolean;

  @Field({ description: 'Both runs used the same SeedSet (also true when neither has a run)' })
  sameSeedSet!: boolean;

  @Field({ description: 'Both runs used the same Environment (also true when neither has a run)' })
  sameEnvironment!: boolean;

  @Field(() => [ValueDifference], { description: "Values that differ between the runs' configs, by JSON path" })
  configDifferences!: ValueDifference[];

  @Field(() => [ValueDifference], { description: "Seeds that differ between the runs' seed sets, by name" })
  seedDifferences!: ValueDifference[];

  @Field({ description: 'Both versions have a recorded training run, so the lineage comparison is complete' })
  lineageComplete!: boolean;

  @Field(() => ModelVersionChallenge, { nullable: true, description: "b's latest challenge when it was judged against a (challengeModelVersion), else null" })
  challenge!: ModelVersionChallenge | null;
}

function flatten(value: unknown, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, value);
  }
  return out;
}

function diffValues(a: unknown, b: unknown): ValueDifference[] {
  const fa = flatten(a);
  const fb = flatten(b);
  const paths = [...new Set([...fa.keys(), ...fb.keys()])].sort();
  return paths
    .filter((p) => JSON.stringify(fa.get(p)) !== JSON.stringify(fb.get(p)))
    .map((p) => ({ path: p, a: fa.get(p) ?? null, b: fb.get(p) ?? null }));
}

/** Compares two readable versions through the request's loaders (inputs the caller may not read are left out). */
export async function compareVersions(ctx: RequestContext, a: ModelVersion, b: ModelVersion): Promise<ModelVersionComparison> {
  const runs = ctx.loaders.byId(TrainingRun, 'TrainingRun');
  const [ra, rb] = await Promise.all([a.trainingRunId ? runs.load(a.trainingRunId) : null, b.trainingRunId ? runs.load(b.trainingRunId) : null]);
  const links = runDatasetLinks(ctx);
  const [la, lb] = await Promise.all([ra ? links.load(ra.id) : [], rb ? links.load(rb.id) : []]);
  const ida = new Set(la.map((l) => l.datasetVersionId));
  const idb = new Set(lb.map((l) => l.datasetVersionId));
  const dvs = ctx.loaders.byId(DatasetVersion, 'DatasetVersion');
  const load = async (ids: string[]) => (await dvs.loadMany(ids)).filter((x): x is DatasetVersion => !!x && !(x instanceof Error));
  const configs = ctx.loaders.byId(Config, 'Config');
  const seeds = ctx.loaders.byId(SeedSet, 'SeedSet');
  const [onlyA, onlyB, both, ca, cb, sa, sb] = await Promise.all([
    load([...ida].filter((i) => !idb.has(i))),
    load([...idb].filter((i) => !ida.has(i))),
    load([...ida].filter((i) => idb.has(i))),
    ra ? configs.load(ra.configId) : null,
    rb ? configs.load(rb.configId) : null,
    ra ? seeds.load(ra.seedSetId) : null,
    rb ? seeds.load(rb.seedSetId) : null,
  ]);
  const names = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].sort();
  return Object.assign(new ModelVersionComparison(), {
    a,
    b,
    challenge: b.challenge && b.challenge.champion === toGlobalId('ModelVersion', a.id) ? challengeOf(b.challenge) : null,
    metrics: names.map((name) => {
      const va = a.metrics[name] ?? null;
      const vb = b.metrics[name] ?? null;
      return { name, a: va, b: vb, delta: va !== null && vb !== null ? vb - va : null };
    }),
    datasetVersionsOnlyInA: onlyA,
    datasetVersionsOnlyInB: onlyB,
    datasetVersionsInBoth: both,
    sameCodeVersion: ra?.codeVersionId === rb?.codeVersionId,
    sameConfig: ra?.configId === rb?.configId,
    sameSeedSet: ra?.seedSetId === rb?.seedSetId,
    sameEnvironment: ra?.environmentId === rb?.environmentId,
    configDifferences: diffValues(ca?.content ?? null, cb?.content ?? null),
    seedDifferences: diffValues(sa?.seeds ?? null, sb?.seeds ?? null),
    lineageComplete: !!ra && !!rb,
  });
}

async function readableVersion(ctx: RequestContext, id: string, argument: string): Promise<ModelVersion> {
  const v = await ctx.loaders.byId(ModelVersion, 'ModelVersion').load(expectId(id, 'ModelVersion', argument));
  if (!v) throw notFound(`ModelVersion ${id}`);
  return v;
}

/** Compares two versions named by global ID (`a`, `b`); NOT_FOUND for one the caller may not read. */
export async function compareVersionsByIds(ctx: RequestContext, a: string, b: string): Promise<ModelVersionComparison> {
  const [va, vb] = await Promise.all([readableVersion(ctx, a, 'a'), readableVersion(ctx, b, 'b')]);
  return compareVersions(ctx, va, vb);
}
