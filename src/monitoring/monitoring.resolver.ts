import { Arg, Args, Ctx, Field, FieldResolver, ID, Int, Mutation, ObjectType, Query, Resolver, Root, Subscription } from 'type-graphql';
import { subjectOf } from '../core/ability';
import type { RequestContext } from '../core/context';
import { TOPICS } from '../core/events';
import { expectId, toGlobalId } from '../core/global-id';
import { PageArgs } from '../core/pagination';
import { authorizeField, Policy } from '../core/policy';
import { JSONObjectScalar } from '../core/scalars';
import { ModelVersion } from '../registry/model-version.entity';
import { ModelVersionChallenge } from '../registry/model-version-challenge';
import { TrainingRun } from '../lineage/training-run.entity';
import { Deployment } from '../rollouts/deployment.entity';
import { Alert, AlertKind, AlertStatus, MonitorRun, SEVERITY_RANK } from './alert.entity';
import * as monitoring from './monitor.service';
import * as queries from './monitoring-query.service';
import { AlertConnection, AlertFilter, ChallengeModelVersionInput, DeploymentMonitoringInput, SampleProductionDataInput } from './monitoring.inputs';
import * as challenger from './challenger.service';
import { ProductionSample } from './production-sample';
import * as samples from './production-sample.service';
import { filtered } from './subscription-stream';
import { QualityReport } from './quality-report';
import * as quality from './quality.service';

const ALERT_READ = { action: 'read', subject: 'Alert' } as const;
const DEPLOYMENT_READ = { action: 'read', subject: 'Deployment' } as const;

@ObjectType({ description: 'Latency and errors of one version over one bucket' })
export class LatencyPoint {
  @Field({ description: 'Start of the bucket: a whole multiple of bucketSeconds since the Unix epoch' })
  bucketStart!: Date;

  @Field(() => ID, { description: 'The ModelVersion that served the requests (mirrored shadow traffic is left out)' })
  modelVersionId!: string;

  @Field(() => Int, { description: 'Requests the version served in the bucket (at least 1)' })
  requests!: number;

  @Field(() => Int, { description: 'Of them, those that failed' })
  errors!: number;

  @Field({ description: 'errors / requests, 0 to 1' })
  errorRate!: number;

  @Field(() => Number, { nullable: true, description: 'Median latency in milliseconds; null when none was recorded' })
  p50Ms!: number | null;

  @Field(() => Number, { nullable: true, description: '95th percentile latency in milliseconds; null when none was recorded' })
  p95Ms!: number | null;

  @Field(() => Number, { nullable: true, description: '99th percentile latency in milliseconds; null when none was recorded' })
  p99Ms!: number | null;
}

@Resolver()
export class MonitoringResolver {
  @Query(() => AlertConnection, { nullable: true, description: 'Alerts, newest first' })
  @Policy(ALERT_READ)
  alerts(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => AlertFilter, { nullable: true, description: 'Only alerts matching it; all readable ones when left out' }) filter?: AlertFilter) {
    return queries.listAlerts(ctx, page, filter);
  }

  @Query(() => [MonitorRun], { nullable: true, description: "A deployment's drift reports (monitor passes), newest first: drift, latency and errors per version and window" })
  @Policy(DEPLOYMENT_READ)
  driftReports(@Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id' }) deployment: string, @Arg('last', () => Int, { defaultValue: 20, description: 'How many passes, 1 to 500' }) last: number) {
    return queries.driftReports(ctx, deployment, last);
  }

  @Query(() => [LatencyPoint], { nullable: true, description: 'Latency percentiles and error rate per version and bucket, from the prediction log' })
  @Policy(DEPLOYMENT_READ)
  async latencySeries(
    @Ctx() ctx: RequestContext,
    @Arg('deployment', () => ID, { description: 'The Deployment id' }) deployment: string,
    @Arg('from', () => Date, { description: 'Start of the series (inclusive)' }) from: Date,
    @Arg('to', () => Date, { nullable: true, description: 'End of the series (exclusive), after from; default now' }) to: Date | null,
    @Arg('bucketSeconds', () => Int, { defaultValue: 60, description: 'Bucket length, 1 to 86,400 seconds; at most 10,000 buckets from from to to' }) bucketSeconds: number,
  ) {
    const rows = await queries.deploymentLatency(ctx, deployment, from, to, bucketSeconds);
    return rows.map((r) => Object.assign(new LatencyPoint(), { ...r, modelVersionId: toGlobalId('ModelVersion', r.modelVersionId) }));
  }

  @Query(() => QualityReport, {
    nullable: true,
    description:
      "A deployment's prediction quality from its outcomes, per served version: labels and their delay, online metrics beside the version's offline baseline, " +
      "and the other versions serving the same windows; over the rollup windows starting in [from, to) (default: the deployment's quality lookback ending now)",
  })
  @Policy(DEPLOYMENT_READ)
  qualityReport(
    @Ctx() ctx: RequestContext,
    @Arg('deployment', () => ID, { description: 'The Deployment id' }) deployment: string,
    @Arg('from', () => Date, { nullable: true, description: 'Earliest rollup window start (inclusive); default: the quality lookback before to' }) from?: Date | null,
    @Arg('to', () => Date, { nullable: true, description: 'Window starts before this instant; default now' }) to?: Date | null,
  ) {
    return quality.qualityReport(ctx, deployment, { from, to });
  }

  @Mutation(() => MonitorRun, { nullable: true, description: 'Runs the monitor now over the window that ends now (default: the deployment\'s window)' })
  @Policy({ action: 'update', subject: 'Deployment' })
  runMonitor(@Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id' }) deployment: string, @Arg('windowSeconds', () => Int, { nullable: true, description: "Length of the window, 1 to 604,800 seconds (default: the deployment's windowSeconds)" }) windowSeconds?: number | null) {
    return monitoring.runMonitor(ctx, deployment, windowSeconds);
  }

  @Mutation(() => Deployment, { nullable: true, description: "Changes a deployment's monitor: window, schedule, cool-down, drift and quality thresholds, retrain policy" })
  @Policy({ action: 'update', subject: 'Deployment' })
  setDeploymentMonitoring(@Ctx() ctx: RequestContext, @Arg('input', () => DeploymentMonitoringInput, { description: 'The deployment and the settings to change' }) input: DeploymentMonitoringInput) {
    return monitoring.setDeploymentMonitoring(ctx, input.deployment, monitoring.monitoringPatch(input));
  }

  @Mutation(() => ProductionSample, {
    nullable: true,
    description:
      "Samples a deployment's labelled production traffic into dataset versions of its team's `<deployment>-production` dataset, split by time " +
      '(the latest `holdoutShare` of the rows held out), classified at least as strictly as the training data of the versions that answered; ' +
      'the lineage records Deployment –SAMPLED→ DatasetVersion. Needs `update` on the deployment and `create` on dataset versions',
  })
  @Policy({ action: 'update', subject: 'Deployment' })
  sampleProductionData(@Ctx() ctx: RequestContext, @Arg('input', () => SampleProductionDataInput, { description: 'The deployment, the time range and the holdout share' }) input: SampleProductionDataInput) {
    return samples.sampleProductionData(ctx, input);
  }

  @Mutation(() => ModelVersionChallenge, {
    nullable: true,
    description:
      'Judges a candidate model version against the champion on the same holdout (a DatasetVersion: input columns, then `label`), both run by this server: ' +
      "accuracy, ROC AUC, McNemar's exact test and a paired bootstrap interval of the AUC difference; PASSED or REJECTED with reasons, stored on the candidate (`ModelVersion.challenge`). " +
      'Needs `update` on the candidate and `read` on the champion and the holdout',
  })
  @Policy({ action: 'update', subject: 'ModelVersion' })
  challengeModelVersion(@Ctx() ctx: RequestContext, @Arg('input', () => ChallengeModelVersionInput, { description: 'The candidate, the champion, the holdout and the thresholds' }) input: ChallengeModelVersionInput) {
    return challenger.challengeModelVersion(ctx, input);
  }

  @Mutation(() => Alert, { nullable: true, description: 'Marks an open alert as seen (it stays until resolved or cleared)' })
  @Policy({ action: 'update', subject: 'Alert' })
  acknowledgeAlert(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The Alert id; it must be OPEN' }) id: string, @Arg('note', () => String, { nullable: true, description: 'A note for the audit event' }) note?: string | null) {
    return monitoring.acknowledgeAlert(ctx, id, note ?? null);
  }

  @Mutation(() => Alert, { nullable: true, description: 'Closes an alert by hand' })
  @Policy({ action: 'update', subject: 'Alert' })
  resolveAlert(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The Alert id; it must not be RESOLVED already' }) id: string, @Arg('reason', () => String, { description: 'Why it is closed (not blank); kept as its resolution' }) reason: string) {
    return monitoring.resolveAlert(ctx, id, reason);
  }

  @Subscription(() => Alert, {
    name: 'alerts',
    description:
      'Alerts as they open, escalate, are acknowledged or resolve, from every instance. Checked when the subscription starts and for every event: ' +
      'an alert about a deployment the caller may not read is never sent, even when rights change mid-stream.',
    subscribe: async ({ args, context }) => {
      const ctx = context as RequestContext;
      authorizeField(ctx, ALERT_READ);
      const filter = (args.filter ?? {}) as AlertFilter;
      const deploymentId = filter.deployment ? expectId(filter.deployment, 'Deployment', 'filter.deployment') : null;
      if (deploymentId) await queries.readableDeployment(ctx, filter.deployment!, 'filter.deployment');
      const minRank = filter.minSeverity ? SEVERITY_RANK[filter.minSeverity] : 0;
      return filtered(ctx, ctx.app.events!.subscribe(TOPICS.alertChanged, 'all') as AsyncIterable<unknown> as AsyncIterable<{ alert: Alert }>, (event, now) => {
        const a = event.alert;
        if (deploymentId && a.deploymentId !== deploymentId) return false;
        if (filter.kinds?.length && !filter.kinds.includes(a.kind)) return false;
        if (filter.statuses?.length && !filter.statuses.includes(a.status)) return false;
        if (SEVERITY_RANK[a.severity] < minRank) return false;
        return now.ability.can('read', subjectOf('Alert', a) as never);
      });
    },
  })
  @Policy(ALERT_READ)
  alertsChanged(@Root() event: { alert: Alert }, @Arg('filter', () => AlertFilter, { nullable: true, description: 'Only alerts matching it; all readable ones when left out' }) _filter?: AlertFilter): Alert {
    return reviveAlert(event.alert);
  }

  @Subscription(() => MonitorRun, {
    description: "A deployment's drift report each time a monitor pass over it finishes",
    subscribe: async ({ args, context }) => monitorRuns(context as RequestContext, args.deployment as string),
  })
  @Policy(DEPLOYMENT_READ)
  async driftReport(@Root() event: { runId: string }, @Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id to follow' }) _deployment: string) {
    return queries.monitorRun(ctx, event.runId);
  }

  @Subscription(() => MonitorRun, {
    description: "A deployment's latency and error report each time a monitor pass over it finishes",
    subscribe: async ({ args, context }) => monitorRuns(context as RequestContext, args.deployment as string),
  })
  @Policy(DEPLOYMENT_READ)
  async latencyReport(@Root() event: { runId: string }, @Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id to follow' }) _deployment: string) {
    return queries.monitorRun(ctx, event.runId);
  }

  @Subscription(() => QualityReport, {
    name: 'qualityReport',
    description: "A deployment's quality report (over its quality lookback ending now) each time a monitor pass over it finishes",
    subscribe: async ({ args, context }) => monitorRuns(context as RequestContext, args.deployment as string),
  })
  @Policy(DEPLOYMENT_READ)
  qualityReportChanged(@Root() _event: { runId: string }, @Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id to follow' }) deployment: string) {
    return quality.qualityReport(ctx, deployment);
  }
}

async function monitorRuns(ctx: RequestContext, deployment: string) {
  authorizeField(ctx, DEPLOYMENT_READ);
  const d = await queries.readableDeployment(ctx, deployment, 'deployment');
  return filtered(ctx, ctx.app.events!.subscribe(TOPICS.monitorRan, d.id), (_event, now) => now.ability.can('read', subjectOf('Deployment', d) as never));
}

const DATES = ['createdAt', 'windowStart', 'windowEnd', 'lastSeenAt', 'acknowledgedAt', 'resolvedAt'] as const;

/** An alert as it crossed Redis (JSON) back into an entity, dates included. */
export function reviveAlert(raw: Alert): Alert {
  const a = Object.assign(new Alert(), raw);
  for (const k of DATES) if (a[k]) (a as unknown as Record<string, unknown>)[k] = new Date(a[k] as unknown as string);
  return a;
}

@Resolver(() => Alert)
export class AlertFieldResolver {
  @FieldResolver(() => Deployment, { nullable: true, description: 'The deployment it was found on; null if the caller may not read it, or for an alert about no deployment (NOTIFICATION_FAILED)' })
  deployment(@Root() a: Alert, @Ctx() ctx: RequestContext) {
    return a.deploymentId ? ctx.loaders.byId(Deployment, 'Deployment').load(a.deploymentId) : null;
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version it was found on (the candidate, for APPROVAL_REQUIRED); null if the caller may not read it' })
  modelVersion(@Root() a: Alert, @Ctx() ctx: RequestContext) {
    return a.modelVersionId ? ctx.loaders.byId(ModelVersion, 'ModelVersion').load(a.modelVersionId) : null;
  }

  @FieldResolver(() => JSONObjectScalar, {
    description:
      "The statistics behind it (counts, quantiles, the whole feature result); for NOTIFICATION_FAILED the channel's name, kind, last error and lost delivery, shown only to callers who may read the team's channels (others get the channel's id)",
  })
  details(@Root() a: Alert, @Ctx() ctx: RequestContext): Record<string, unknown> {
    // A channel's name and its receivers' errors are the team's, like the channel itself.
    if (a.kind !== AlertKind.NOTIFICATION_FAILED || ctx.ability.can('read', subjectOf('NotificationChannel', { teamId: a.teamId }) as never)) return a.details;
    return { channel: a.details?.channel ?? null };
  }

  @FieldResolver(() => TrainingRun, { nullable: true, description: 'The training run this alert started (retrain policy)' })
  retrainRun(@Root() a: Alert, @Ctx() ctx: RequestContext) {
    return a.retrainRunId ? ctx.loaders.byId(TrainingRun, 'TrainingRun').load(a.retrainRunId) : null;
  }
}

@Resolver(() => MonitorRun)
export class MonitorRunFieldResolver {
  @FieldResolver(() => Deployment, { nullable: true, description: 'The deployment the pass judged; null if the caller may not read it' })
  deployment(@Root() r: MonitorRun, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Deployment, 'Deployment').load(r.deploymentId);
  }
}

@Resolver(() => Deployment)
export class DeploymentMonitoringResolver {
  @FieldResolver(() => JSONObjectScalar, { description: "The deployment's monitor settings, defaults filled in" })
  monitoring(@Root() d: Deployment, @Ctx() ctx: RequestContext) {
    return monitoring.monitoringOf(ctx.app, d);
  }

  @FieldResolver(() => [Alert], { description: 'Open and acknowledged alerts of this deployment' })
  async openAlerts(@Root() d: Deployment, @Ctx() ctx: RequestContext) {
    const all = await ctx.loaders.byColumn(Alert, 'Alert', 'deployment_id', { created_at: 'DESC' }).load(d.id);
    return all.filter((a) => a.status !== AlertStatus.RESOLVED);
  }
}

