import { Arg, Ctx, Field, ID, InputType, Int, Mutation, ObjectType, Resolver } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { Policy } from '../core/policy';
import { JSONObjectScalar } from '../core/scalars';
import { toGlobalId } from '../core/global-id';
import type { RollupRebuild } from '../inference/rollup-rebuild';
import { rebuildDeploymentRollups } from './rollup.service';

@InputType({ description: 'Which windows of a deployment to recompute from the raw prediction log and outcomes' })
export class RebuildRollupsInput {
  @Field(() => ID, { description: 'The Deployment id' })
  deployment!: string;

  @Field({ description: 'The first window recomputed is the one holding this time' })
  from!: Date;

  @Field({ nullable: true, description: 'Windows starting before this time (default: now); at most 31 days after `from`' })
  to?: Date;

  @Field({ nullable: true, description: 'Compare only: report the windows whose stored rollup differs, change nothing' })
  verifyOnly?: boolean;
}

@ObjectType({ description: 'A window whose stored rollup differed from the one recomputed from the raw log' })
export class DifferingRollup {
  @Field(() => ID, { description: 'The ModelVersion id of the rollup row' })
  modelVersion!: string;

  @Field({ description: 'The row counts mirrored (shadow) traffic, not served traffic' })
  shadow!: boolean;

  @Field({ description: 'Start of the window' })
  windowStart!: Date;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'The stored counts (requests, errors, fallbacks, rows, unbinned, labelled); null when no row was stored' })
  stored!: Record<string, number> | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'The recomputed counts; null when the raw log holds nothing for the stored row' })
  recomputed!: Record<string, number> | null;
}

@ObjectType({ description: 'What a rollup rebuild (or verification) found and did' })
export class RollupRebuildResult {
  @Field({ description: 'Start of the first window covered (from, aligned down to a window boundary)' })
  from!: Date;

  @Field({ description: 'Windows starting before this instant were covered' })
  to!: Date;

  @Field(() => Int, { description: "Length of a rollup window (the server's inference window)" })
  windowSeconds!: number;

  @Field(() => Int, { description: 'Rollup rows recomputed' })
  rows!: number;

  @Field(() => Int, { description: 'Prediction log records read' })
  records!: number;

  @Field(() => Int, { description: 'Outcomes read' })
  outcomes!: number;

  @Field(() => [DifferingRollup], { description: 'Windows whose stored rollup differed from the raw log (quality statistics and counts alike; label delays are not compared)' })
  differing!: DifferingRollup[];

  @Field({ description: 'Whether the recomputed rollups replaced the stored ones' })
  written!: boolean;
}

const shape = (r: RollupRebuild): RollupRebuildResult => ({
  ...r,
  differing: r.differing.map((d) => ({
    modelVersion: toGlobalId('ModelVersion', d.modelVersionId),
    shadow: d.shadow,
    windowStart: d.windowStart,
    stored: d.stored as Record<string, number> | null,
    recomputed: d.recomputed as Record<string, number> | null,
  })),
});

@Resolver()
export class RollupResolver {
  @Mutation(() => RollupRebuildResult, {
    nullable: true,
    description: "Recomputes a deployment's window rollups over a range from the raw prediction log and outcomes (after a backfill, or to verify them with verifyOnly); audited",
  })
  @Policy({ action: 'update', subject: 'Deployment' })
  async rebuildRollups(@Ctx() ctx: RequestContext, @Arg('input', () => RebuildRollupsInput, { description: 'The deployment, the range and whether only to compare' }) input: RebuildRollupsInput): Promise<RollupRebuildResult> {
    return shape(await rebuildDeploymentRollups(ctx, input));
  }
}
