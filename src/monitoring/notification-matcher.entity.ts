import { Field, ObjectType } from 'type-graphql';
import { Column } from 'typeorm';
import { NotificationKind } from '../core/notify/notification.entity';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { DeploymentEnvironment } from '../rollouts/deployment.entity';
import { AlertKind } from './alert.entity';

/** What routing rules and silences match a team's notifications on; empty lists and nulls match all. */
// Not itself in the schema: its fields are inherited by NotificationRule and NotificationSilence.
@ObjectType()
export abstract class NotificationMatcher extends TeamOwnedEntity {
  /** Only notifications about this deployment; null: any of the team's. */
  @Column('uuid', { nullable: true })
  deploymentId!: string | null;

  @Field(() => DeploymentEnvironment, { nullable: true, description: 'Only notifications about deployments of this environment; null: any (and notifications about no deployment)' })
  @Column({ type: 'text', nullable: true })
  environment!: DeploymentEnvironment | null;

  @Field(() => [NotificationKind], { description: 'Only these kinds of notification; empty: every kind' })
  @Column({ type: 'text', array: true, default: () => "'{}'" })
  kinds!: NotificationKind[];

  @Field(() => [AlertKind], { description: 'Only notifications about alerts of these kinds (then no notification about something else matches); empty: any notification' })
  @Column({ type: 'text', array: true, default: () => "'{}'" })
  alertKinds!: AlertKind[];
}
