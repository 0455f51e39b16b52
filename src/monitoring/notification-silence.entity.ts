import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { NotificationMatcher } from './notification-matcher.entity';
import { AlertSeverity } from './alert.entity';

/**
 * A time-boxed hold on a team's notifications: while it is active, a notification it matches is not
 * sent by any rule (nor escalated); the deliveries it held back name it, and so do their alerts.
 */
@ObjectType({ implements: Node, description: "A time-boxed hold on a team's notifications matching it; what it held back names it" })
@Entity()
@Index(['teamId', 'endsAt'])
export class NotificationSilence extends NotificationMatcher implements Node {
  @Field(() => [AlertSeverity], { description: 'Only notifications of these severities; empty: every severity' })
  @Column({ type: 'text', array: true, default: () => "'{}'" })
  severities!: AlertSeverity[];

  @Field({ description: 'Why: shown to whoever wonders where their page went' })
  @Column({ type: 'text' })
  comment!: string;

  @Field({ description: 'From when it holds' })
  @Column({ type: 'timestamptz', precision: 3 })
  startsAt!: Date;

  @Field({ description: 'Until when it holds (earlier when expired by hand: see expiredAt)' })
  @Column({ type: 'timestamptz', precision: 3 })
  endsAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When someone ended it early; null otherwise' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  expiredAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Who ended it early' })
  @Column({ type: 'text', nullable: true })
  expiredBy!: string | null;
}
