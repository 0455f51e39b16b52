import { Arg, Ctx, Field, FieldResolver, Float, ID, Int, Mutation, ObjectType, Resolver, Root, registerEnumType } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { Policy } from '../core/policy';
import { JSONObjectScalar } from '../core/scalars';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment } from '../rollouts/deployment.entity';
import { predict, servingOf } from './inference.service';
import { checkRequestKey } from './request-key';
import { feedsFromRows, rowsOf } from './tensors';

export enum ServingRoleEnum {
  TRAFFIC = 'TRAFFIC',
  SHADOW = 'SHADOW',
  FALLBACK = 'FALLBACK',
}
registerEnumType(ServingRoleEnum, {
  name: 'ServingRole',
  description: 'TRAFFIC: receives its weight of the requests; SHADOW: receives copies, never answers; FALLBACK: answers when the routed version fails',
  valuesConfig: {
    TRAFFIC: { description: 'Receives its weight of the requests and answers them' },
    SHADOW: { description: 'Receives copies of the requests; its answers are logged, never returned' },
    FALLBACK: { description: 'Takes no share; answers when the routed version fails or times out' },
  },
});

export enum ServingState {
  LOADED = 'LOADED',
  LOADING = 'LOADING',
  FAILED = 'FAILED',
  UNLOADED = 'UNLOADED',
}
registerEnumType(ServingState, {
  name: 'ServingState',
  description: 'UNLOADED: its runs kept overrunning the run budget; back after the cool-down (`unloadedUntil`) or when a deployment routing to it changes',
  valuesConfig: {
    LOADED: { description: 'Loaded and answering' },
    LOADING: { description: 'Being loaded on this instance' },
    FAILED: { description: 'Could not be loaded; `error` says why' },
    UNLOADED: { description: 'Unloaded after its runs kept overrunning the run budget; loaded again after `unloadedUntil`, or when a deployment routing to it changes' },
  },
});

@ObjectType({ description: 'The answer to a prediction request' })
export class Prediction {
  @Field(() => ID, {
    description:
      'The id of the logged prediction: send it with outcomes (`recordOutcomes`, `POST /outcomes`) to join them to this answer; rows of a batch are (id, row index from 0)',
  })
  id!: string;

  @Field(() => JSONObjectScalar, { description: 'Each model output as nested rows, e.g. { "probability": [[0.93], [0.12]] }' })
  outputs!: Record<string, unknown>;

  @Field(() => ID, { description: 'The model version that answered (the fallback version when `fallback`)' })
  modelVersionId!: string;

  /** Raw id, for the field resolver. */
  versionUuid!: string;

  @Field(() => Int, { description: 'Rows answered' })
  rows!: number;

  @Field(() => Float, { description: 'Server-side time from accepting the request to having the outputs' })
  latencyMs!: number;

  @Field({ description: 'True when the routed version failed or timed out and the fallback version answered' })
  fallback!: boolean;

  @Field(() => ID, { description: 'The Deployment that routed the request' })
  deployment!: string;
}

@ObjectType({ description: 'A model version as this API instance serves it for a deployment' })
export class ServingVersion {
  @Field(() => ID, { description: 'The ModelVersion served' })
  modelVersionId!: string;

  versionUuid!: string;

  @Field(() => ServingRoleEnum, { description: 'How the deployment uses it' })
  role!: ServingRoleEnum;

  @Field(() => Int, { description: 'Percent of the traffic (TRAFFIC only)' })
  weight!: number;

  @Field(() => ServingState, { description: 'Whether it is loaded on this instance' })
  state!: ServingState;

  @Field(() => String, { nullable: true, description: 'Execution provider in use: cuda, tensorrt or cpu' })
  provider!: string | null;

  @Field(() => [String], { description: 'Providers tried first and why each could not be used' })
  providerFallbacks!: string[];

  @Field(() => Date, { nullable: true, description: 'When this instance loaded it; null until LOADED' })
  loadedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Why the version could not be loaded, or why it was unloaded' })
  error!: string | null;

  @Field(() => Date, { nullable: true, description: 'UNLOADED: when the cool-down ends and the version is loaded again' })
  unloadedUntil!: Date | null;
}

@Resolver()
export class InferenceResolver {
  @Mutation(() => Prediction, {
    nullable: true,
    description:
      'Runs the model version the deployment routes this request to (sticky by requestKey) and logs the prediction. ' +
      'Inputs map each model input to nested rows, e.g. { "features": [[0.1, 0.2, 0.3, 0.4]] }.',
  })
  @Policy({ action: 'predict', subject: 'Deployment' })
  async predict(
    @Ctx() ctx: RequestContext,
    @Arg('deployment', () => ID, { description: 'The Deployment id to send the request to' }) deployment: string,
    @Arg('inputs', () => JSONObjectScalar, { description: 'Each model input by name, as nested rows matching its shape; every input gets the same number of rows' }) inputs: Record<string, unknown>,
    @Arg('requestKey', () => String, { nullable: true, description: 'Requests with the same key go to the same version while the split holds' })
    requestKey?: string | null,
  ): Promise<Prediction> {
    if (requestKey != null) checkRequestKey(requestKey, 'requestKey');
    const result = await predict(ctx, {
      deploymentId: deployment,
      requestKey: requestKey ?? null,
      source: 'graphql',
      feeds: (spec, limits) => feedsFromRows(spec, inputs, limits),
      loggedInputs: () => inputs,
    });
    return Object.assign(new Prediction(), {
      id: toGlobalId('Prediction', result.predictionId),
      outputs: rowsOf(result.outputs),
      modelVersionId: result.version.nodeId,
      versionUuid: result.version.id,
      rows: result.rows,
      latencyMs: result.latencyMs,
      fallback: result.fallback,
      deployment: toGlobalId('Deployment', result.deploymentId),
    });
  }
}

@Resolver(() => Prediction)
export class PredictionFieldResolver {
  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The answering version, when the caller may read it' })
  modelVersion(@Root() p: Prediction, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(p.versionUuid);
  }
}

@Resolver(() => ServingVersion)
export class ServingVersionFieldResolver {
  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version, when the caller may read it' })
  modelVersion(@Root() s: ServingVersion, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(s.versionUuid);
  }
}

@Resolver(() => Deployment)
export class DeploymentServingResolver {
  @FieldResolver(() => [ServingVersion], { description: 'What this API instance has loaded for the deployment, and on which execution provider' })
  serving(@Root() d: Deployment, @Ctx() ctx: RequestContext): ServingVersion[] {
    return servingOf(ctx, d.id).map((s) =>
      Object.assign(new ServingVersion(), {
        modelVersionId: toGlobalId('ModelVersion', s.versionId),
        versionUuid: s.versionId,
        role: s.role as ServingRoleEnum,
        weight: s.weight,
        state: s.unloaded ? ServingState.UNLOADED : s.version ? ServingState.LOADED : s.error ? ServingState.FAILED : ServingState.LOADING,
        provider: s.version?.provider ?? null,
        providerFallbacks: s.version?.fellBack ?? [],
        loadedAt: s.version?.loadedAt ?? null,
        error: s.unloaded ?? s.error ?? null,
        unloadedUntil: s.unloadedUntil ?? null,
      }),
    );
  }
}
