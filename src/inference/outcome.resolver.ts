import { Arg, Ctx, Field, ID, Int, Mutation, ObjectType, Resolver, registerEnumType } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { ErrorCode } from '../core/errors';
import { Policy } from '../core/policy';
import { RecordOutcomesInput } from './outcome.inputs';
import { recordOutcomes, type OutcomeStatus } from './outcome.service';

export enum OutcomeStatusEnum {
  RECORDED = 'RECORDED',
  DUPLICATE = 'DUPLICATE',
  CORRECTED = 'CORRECTED',
  REJECTED = 'REJECTED',
}
registerEnumType(OutcomeStatusEnum, {
  name: 'OutcomeStatus',
  description: 'RECORDED: new; DUPLICATE: the same label was already recorded (counted once); CORRECTED: replaced a different label (`correct: true`, audited); REJECTED: see `code` and `reason`',
  valuesConfig: {
    RECORDED: { description: 'A new label, recorded' },
    DUPLICATE: { description: 'The same label was already recorded for the row; counted once' },
    CORRECTED: { description: 'Replaced a different label already recorded (`correct: true`; audited)' },
    REJECTED: { description: 'Not recorded; `code`, `reason`, `message` and `field` say why' },
  },
});

@ObjectType({ description: 'What became of one outcome of the call' })
export class OutcomeResultItem {
  @Field(() => Int, { description: 'Its index in the call\'s list, from 0' })
  index!: number;

  @Field(() => OutcomeStatusEnum, { description: 'What became of it' })
  status!: OutcomeStatus;

  @Field(() => ID, { nullable: true, description: 'The prediction it was joined to' })
  prediction!: string | null;

  @Field(() => Int, { nullable: true, description: "The row of the prediction's batch it was joined to, from 0; null when it could not be joined" })
  row!: number | null;

  @Field(() => ErrorCode, { nullable: true, description: 'REJECTED: why, as `extensions.code` would say' })
  code!: ErrorCode | null;

  @Field(() => String, { nullable: true, description: 'REJECTED: the reason of the error catalogue' })
  reason!: string | null;

  @Field(() => String, { nullable: true, description: 'REJECTED: the error message; null otherwise' })
  message!: string | null;

  @Field(() => String, { nullable: true, description: 'REJECTED: the input field at fault' })
  field!: string | null;
}

@ObjectType({ description: 'The outcomes of one call, counted; recorded in one audit event with the digest' })
export class RecordOutcomesResult {
  @Field(() => Int, { description: 'Outcomes sent in the call' })
  received!: number;

  @Field(() => Int, { description: 'Of them, RECORDED' })
  recorded!: number;

  @Field(() => Int, { description: 'Of them, DUPLICATE' })
  duplicate!: number;

  @Field(() => Int, { description: 'Of them, CORRECTED' })
  corrected!: number;

  @Field(() => Int, { description: 'Of them, REJECTED' })
  rejected!: number;

  @Field({ description: 'sha256 over the results in order, as the audit event records it' })
  digest!: string;

  @Field(() => [OutcomeResultItem], { description: 'One per outcome sent, in order' })
  results!: OutcomeResultItem[];
}

@Resolver()
export class OutcomeResolver {
  @Mutation(() => RecordOutcomesResult, {
    nullable: true,
    description:
      'Records observed outcomes (ground truth) of logged predictions of one deployment, joined by prediction id and row or by request key; each is answered on its own, and the call writes one audit event.',
  })
  @Policy({ action: 'recordOutcome', subject: 'Deployment' })
  async recordOutcomes(@Ctx() ctx: RequestContext, @Arg('input', () => RecordOutcomesInput, { description: 'The deployment and its outcomes' }) input: RecordOutcomesInput): Promise<RecordOutcomesResult> {
    const summary = await recordOutcomes(ctx, input);
    return Object.assign(new RecordOutcomesResult(), {
      ...summary,
      results: summary.results.map((r) =>
        Object.assign(new OutcomeResultItem(), {
          index: r.index,
          status: r.status,
          prediction: r.prediction,
          row: r.row,
          code: r.error?.code ?? null,
          reason: r.error?.reason ?? null,
          message: r.error?.message ?? null,
          field: r.error?.field ?? null,
        }),
      ),
    });
  }
}
