import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';

/** The gate's verdict on a candidate judged against its champion. */
export enum ChallengeDecision {
  PASSED = 'PASSED',
  REJECTED = 'REJECTED',
}
registerEnumType(ChallengeDecision, { name: 'ChallengeDecision', description: 'PASSED: the candidate may replace the champion; REJECTED: `reasons` say why not' });

/** One model's figures on the holdout. */
@ObjectType({ description: "One model's figures on the holdout, scored by the server's own inference threads" })
export class ChallengeModelFigures {
  @Field(() => ID)
  modelVersion!: string;

  @Field(() => Float, { description: 'Score at or above it: predicted class 1' })
  decisionThreshold!: number;

  @Field(() => Float)
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
  @Field(() => Float)
  difference!: number;

  @Field(() => Float)
  lower!: number;

  @Field(() => Float)
  upper!: number;

  @Field(() => Float)
  level!: number;

  @Field(() => Int, { description: 'Resamples that held both classes' })
  resamples!: number;

  @Field(() => Int)
  seed!: number;
}

/** The policy a challenge was judged by, defaults filled in. */
@ObjectType({ description: 'The policy the challenge was judged by' })
export class ChallengePolicyApplied {
  @Field(() => Int)
  minRows!: number;

  @Field(() => Float, { description: "Largest relative accuracy drop below the champion's tolerated" })
  maxAccuracyDrop!: number;

  @Field(() => Float)
  alpha!: number;

  @Field({ description: "The candidate had to be significantly better than the champion (McNemar's one-sided test at alpha), not merely not worse" })
  requireImprovement!: boolean;
}

/** A candidate model version judged against the champion on one holdout, as stored on the candidate. */
@ObjectType({ description: 'A candidate judged against the champion on the same holdout, both run through the server’s inference threads' })
export class ModelVersionChallenge {
  @Field(() => ID)
  candidate!: string;

  @Field(() => ID, { nullable: true, description: 'null: there was no champion, and the candidate was judged on its own figures' })
  champion!: string | null;

  @Field(() => ID, { description: 'The DatasetVersion held out' })
  holdout!: string;

  @Field(() => Int)
  rows!: number;

  @Field(() => Int)
  positives!: number;

  @Field(() => ChallengeModelFigures)
  candidateFigures!: ChallengeModelFigures;

  @Field(() => ChallengeModelFigures, { nullable: true })
  championFigures!: ChallengeModelFigures | null;

  @Field(() => ChallengeMcNemar, { nullable: true })
  mcnemar!: ChallengeMcNemar | null;

  @Field(() => ChallengeAucInterval, { nullable: true, description: 'null without a champion, or when the holdout lacks a class' })
  aucDifference!: ChallengeAucInterval | null;

  @Field(() => ChallengePolicyApplied)
  policy!: ChallengePolicyApplied;

  @Field(() => ChallengeDecision)
  decision!: ChallengeDecision;

  @Field(() => [String], { description: 'Why it was rejected, or what the pass rests on' })
  reasons!: string[];

  @Field()
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
