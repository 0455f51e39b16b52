import { Field, ID, InputType, Int } from 'type-graphql';
import { JSONScalar } from '../core/scalars';

@InputType({ description: 'The observed outcome of one row of a logged prediction' })
export class OutcomeInput {
  @Field(() => ID, { nullable: true, description: 'The prediction (`Prediction.id`, the Open Inference Protocol\'s `parameters.prediction_id`); or give requestKey' })
  prediction?: string | null;

  @Field(() => Int, { nullable: true, description: 'The row of the prediction\'s batch, from 0; may be left out when the prediction had one row' })
  row?: number | null;

  @Field(() => String, { nullable: true, description: 'The request key the prediction was sent with, when exactly one prediction of the deployment carries it; or give prediction' })
  requestKey?: string | null;

  @Field(() => JSONScalar, { description: 'What the model should have answered: a class, a number, any JSON value but null' })
  label!: unknown;

  @Field(() => Date, { nullable: true, description: 'When the outcome was observed' })
  observedAt?: Date | null;

  @Field(() => Boolean, { nullable: true, description: 'Replace a different label already recorded for the row (audited); without it a different label is a CONFLICT' })
  correct?: boolean | null;
}

@InputType({ description: "Observed outcomes of a deployment's logged predictions, up to 1,000 a call" })
export class RecordOutcomesInput {
  @Field(() => ID, { description: 'The Deployment id whose predictions the outcomes belong to' })
  deployment!: string;

  @Field(() => [OutcomeInput], { description: 'At most 1,000; backfills go to POST /outcomes' })
  outcomes!: OutcomeInput[];
}
