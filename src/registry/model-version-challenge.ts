import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';

/** The gate's verdict on a candidate judged against its champion. */
export enum ChallengeDecision {
  PASSED = 'PASSED',
  REJECTED = 'REJECTED',
}
registerEnumType(ChallengeDecision, {
  name: 'ChallengeDecision',
  description: 'PASSED: the candidate may replace the champion; REJECTED: `reasons` say why not',
  valuesConfig: {
    PASSED: { description: 'The candidate may replace the champion' },
    REJECTED: { description: 'It may not: `reasons` say why' },
  },
});

/** One model's figures on the holdout. */
@ObjectType({ description: "One model's figures on the holdout, scored by the server's own inference threads" })
export class ChallengeModelFigures {
  @Field(() => ID, { description: 'Global ID of the ModelVersion scored' })
  modelVersion!: string;

  @Field(() => Float, { description: 'Score at or above it: predicted class 1' })
  decisionThreshold!: number;

  @Field(() => Float, { description: 'Share of the holdout rows it predicted right, 0–1' })
  accuracy!: number;

  @Field(() => Float, { nullable: true, description: 'Exact ROC AUC, ties counted ½; null when the holdout lacks a class' })
  auc!: number | null;
}

/** McNemar's exact test on the paired decisions. */
@ObjectType({ description: "McNemar's exact test on the rows where exactly one of the two models was right" })
export class ChallengeMcNemar {
  @Field(() => Int, { description: 'Rows the champion got right and the candidate wrong' })
  b!: number;

  @Field(() => Int, { description: 'Rows the candidate got right and the champion wrong' })
  c!: number;

  @Field(() => Float, { description: 'Exact two-sided binomial p-value of b among b + c at ½' })
  pValue!: number;

  @Field(() => Float, { description: 'One-sided p-value of "the candidate is worse"' })
  pCandidateWorse!: number;

  @Field(() => Float, { nullable: true, description: 'One-sided p-value of "the candidate is better" (null on verdicts recorded before it was kept)' })
  pCandidateBetter!: number | null;
}

/** The paired bootstrap interval of the AUC difference. */
@ObjectType({ description: 'Percentile bootstrap interval of AUC(candidate) − AUC(champion), the same resampled rows for both' })
export class ChallengeAucInterval {
  @Field(() => Float, { description: 'AUC(candidate) − AUC(champion) on the whole holdout' })
  difference!: number;

  @Field(() => Float, { description: 'Lower bound of the interval' })
  lower!: number;

  @Field(() => Float, { description: 'Upper bound of the interval; below 0 rejects the candidate' })
  upper!: number;

  @Field(() => Float, { description: 'Confidence level of the interval, e.g. 0.95' })
  level!: number;

  @Field(() => Int, { description: 'Resamples that held both classes' })
  resamples!: number;

  @Field(() => Int, { description: 'Seed of the resampling: the same holdout always gives the same interval' })
  seed!: number;
}

/** The policy a challenge was judged by, defaults filled in. */
@ObjectType({ description: 'The policy the challenge was judged by' })
export class ChallengePolicyApplied {
  @Field(() => Int, { description: 'A holdout of fewer rows rejected the candidate' })
  minRows!: number;

  @Field(() => Float, { description: "Largest relative accuracy drop below the champion's tolerated" })
  maxAccuracyDrop!: number;

  @Field(() => Float, { description: "Significance level of McNemar's one-sided tests" })
  alpha!: number;

  @Field({ description: "The candidate had to be significantly better than the champion (McNemar's one-sided test at alpha), not merely not worse" })
  requireImprovement!: boolean;
}

/** A candidate model version judged against the champion on one holdout, as stored on the candidate. */
@ObjectType({ description: 'A candidate judged against the champion on the same holdout, both run through the server’s inference threads' })
export class ModelVersionChallenge {
  @Field(() => ID, { description: 'Global ID of the ModelVersion judged' })
  candidate!: string;

  @Field(() => ID, { nullable: true, description: 'null: there was no champion, and the candidate was judged on its own figures' })
  champion!: string | null;

  @Field(() => ID, { description: 'The DatasetVersion held out' })
  holdout!: string;

  @Field(() => Int, { description: 'Rows of the holdout scored' })
  rows!: number;

  @Field(() => Int, { description: 'Holdout rows labelled 1 (the positive class)' })
  positives!: number;

  @Field(() => ChallengeModelFigures, { description: "The candidate's figures" })
  candidateFigures!: ChallengeModelFigures;

  @Field(() => ChallengeModelFigures, { nullable: true, description: "The champion's figures; null without a champion" })
  championFigures!: ChallengeModelFigures | null;

  @Field(() => ChallengeMcNemar, { nullable: true, description: 'The paired test of the two; null without a champion' })
  mcnemar!: ChallengeMcNemar | null;

  @Field(() => ChallengeAucInterval, { nullable: true, description: 'null without a champion, or when the holdout lacks a class' })
  aucDifference!: ChallengeAucInterval | null;

  @Field(() => ChallengePolicyApplied, { description: 'The thresholds it was judged by, defaults filled in' })
  policy!: ChallengePolicyApplied;

  @Field(() => ChallengeDecision, { description: 'The verdict' })
  decision!: ChallengeDecision;

  @Field(() => [String], { description: 'Why it was rejected, or what the pass rests on' })
  reasons!: string[];

  @Field({ description: 'When it was judged' })
  evaluatedAt!: Date;
}

/** The challenge as stored in `model_version.challenge` (JSON: the instant as an ISO string). */
export type StoredChallenge = Omit<ModelVersionChallenge, 'evaluatedAt'> & { evaluatedAt: string };

/** A stored challenge as its GraphQL object. */
export function challengeOf(stored: StoredChallenge | null): ModelVersionChallenge | null {
  if (!stored) return null;
  // Verdicts recorded before the policy could require an improvement did not.
  const policy = { ...stored.policy, requireImprovement: stored.policy.requireImprovement ?? false };
  const mcnemar = stored.mcnemar ? { ...stored.mcnemar, pCandidateBetter: stored.mcnemar.pCandidateBetter ?? null } : null;
  return Object.assign(new ModelVersionChallenge(), { ...stored, policy, mcnemar, evaluatedAt: new Date(stored.evaluatedAt) });
}
