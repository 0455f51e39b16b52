import { Field, ID, Int, ObjectType } from 'type-graphql';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { SamplePart } from '../lineage/dataset-version-sample.entity';

@ObjectType({ description: 'Rows of the sampled range that no part holds, by cause; each row is counted under the first cause that applies, in this order' })
export class UnusableRows {
  @Field(() => Int, { description: 'Answered rows without a label' })
  unlabelled!: number;

  @Field(() => Int, { description: 'Labelled rows whose inputs were logged only as their hash (their training data is classified above what the server logs)' })
  inputsHashOnly!: number;

  @Field(() => Int, { description: "Labelled rows answered by a version whose reference profile names no input columns, or other columns than the sample's" })
  otherColumns!: number;

  @Field(() => Int, { description: 'Labelled rows with a value a CSV cannot hold: a comma, quote or line break in a string, a non-scalar, a missing or non-finite value' })
  unstorableValue!: number;
}

@ObjectType({ description: 'One part of a production sample: a dataset version of the rows that occurred in its time range' })
export class ProductionSamplePart {
  @Field(() => SamplePart, { description: 'TRAIN (the earlier rows) or HOLDOUT (the latest rows)' })
  part!: SamplePart;

  @Field(() => DatasetVersion, { description: "The dataset version holding the part's rows" })
  datasetVersion!: DatasetVersion;

  @Field(() => Int, { description: 'Rows in this part' })
  rows!: number;

  @Field({ description: 'When the earliest prediction of this part occurred' })
  sampledFrom!: Date;

  @Field({ description: 'When the latest prediction of this part occurred (inclusive)' })
  sampledTo!: Date;

  @Field({ description: 'The same content had been sampled from this deployment before: its existing version is returned' })
  reused!: boolean;
}

@ObjectType({ description: "Labelled production traffic of a deployment as dataset versions, split by time: the earlier rows to train on, the latest held out" })
export class ProductionSample {
  @Field(() => ID, { description: 'The Deployment sampled' })
  deploymentId!: string;

  @Field(() => ID, { description: "The team's dataset of this deployment's production samples" })
  datasetId!: string;

  @Field({ description: 'The range sampled: predictions that occurred in [from, to)' })
  from!: Date;

  @Field({ description: 'End of the range sampled (exclusive)' })
  to!: Date;

  @Field(() => ProductionSamplePart, { nullable: true, description: 'The earlier rows; null when there are none' })
  train!: ProductionSamplePart | null;

  @Field(() => ProductionSamplePart, { nullable: true, description: 'The latest `holdoutShare` of the rows; null when there are none' })
  holdout!: ProductionSamplePart | null;

  @Field(() => UnusableRows, { description: 'Rows in the range left out of both parts, by cause' })
  unusable!: UnusableRows;
}
