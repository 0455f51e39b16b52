import { registerEnumType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** What a notification is about; routing rules and silences match on it. */
export enum NotificationKind {
  ALERT_OPENED = 'ALERT_OPENED',
  ALERT_ESCALATED = 'ALERT_ESCALATED',
  ALERT_ACKNOWLEDGED = 'ALERT_ACKNOWLEDGED',
  ALERT_RESOLVED = 'ALERT_RESOLVED',
  ALERT_UNACKNOWLEDGED = 'ALERT_UNACKNOWLEDGED',
  VERSION_AWAITING_APPROVAL = 'VERSION_AWAITING_APPROVAL',
  ROLLOUT_PAUSED = 'ROLLOUT_PAUSED',
  ROLLOUT_ROLLED_BACK = 'ROLLOUT_ROLLED_BACK',
  TRAINING_RUN_FAILED = 'TRAINING_RUN_FAILED',
  AUDIT_EXPORT_READY = 'AUDIT_EXPORT_READY',
  DIGEST = 'DIGEST',
}
registerEnumType(NotificationKind, {
  name: 'NotificationKind',
  description: 'What a notification tells: an alert opening, escalating, acknowledged or resolved, an unacknowledged CRITICAL alert re-notified, or a lifecycle event; DIGEST is a batch of others',
  valuesConfig: {
    ALERT_OPENED: { description: 'An alert opened (drift, latency, error rate, quality, a stalled rollout, an approval awaited, a failing channel…)' },
    ALERT_ESCALATED: { description: 'An open alert rose in severity, or an acknowledged one was found worse and reopened' },
    ALERT_ACKNOWLEDGED: { description: 'Someone acknowledged an alert' },
    ALERT_RESOLVED: { description: 'An alert was resolved: by hand, by the monitor when the condition cleared, or by the iteration loop' },
    ALERT_UNACKNOWLEDGED: { description: "A CRITICAL alert nobody acknowledged within its rule's escalation delay, sent to the rule's escalation channel" },
    VERSION_AWAITING_APPROVAL: { description: 'A model version was submitted (CANDIDATE) and waits for a reviewer' },
    ROLLOUT_PAUSED: { description: 'A rollout paused: by a person, or held because a step never had its evidence' },
    ROLLOUT_ROLLED_BACK: { description: 'A rollout was rolled back: by its health check, by a person or by a newer rollout' },
    TRAINING_RUN_FAILED: { description: 'A training run failed' },
    AUDIT_EXPORT_READY: { description: "An audit export's file is ready to download (INFO: sent only by a rule that asks for it)" },
    DIGEST: { description: 'A batch of notifications held for a channel by DIGEST rules, sent as one message' },
  },
});

/** How serious a notification is, lowest first (the same scale as alerts). */
export type NotificationSeverity = 'INFO' | 'WARNING' | 'CRITICAL';
export const NOTIFICATION_SEVERITY_RANK: Record<NotificationSeverity, number> = { INFO: 0, WARNING: 1, CRITICAL: 2 };

/**
 * One thing to tell a team, written in the transaction of the change it is about (an alert opening,
 * a rollout rolled back…) so that it exists exactly when the change commits. Routed to channels by
 * the team's rules after the commit (`routedAt` set once it has been).
 */
@Entity()
@Index(['alertId'])
// The sweep's look for unrouted notifications and for those past retention.
@Index(['createdAt'])
export class Notification {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('uuid')
  teamId!: string;

  @Column({ type: 'text' })
  kind!: NotificationKind;

  @Column({ type: 'text' })
  severity!: NotificationSeverity;

  /** A condition starting, seen, or ending (PagerDuty's event actions). */
  @Column({ type: 'text' })
  action!: 'trigger' | 'acknowledge' | 'resolve';

  /** What it is about, as a global ID (the alert, the rollout, the run…). */
  @Column({ type: 'text' })
  subject!: string;

  /** Notifications with the same key are one incident (an alert's id). */
  @Column({ type: 'text' })
  dedupKey!: string;

  @Column('uuid', { nullable: true })
  deploymentId!: string | null;

  /** The deployment's environment, when it is about one. */
  @Column({ type: 'text', nullable: true })
  environment!: string | null;

  @Column('uuid', { nullable: true })
  alertId!: string | null;

  /** The alert's kind, when it is about one. */
  @Column({ type: 'text', nullable: true })
  alertKind!: string | null;

  /** One line a person reads first. */
  @Column({ type: 'text' })
  summary!: string;

  /** The figures behind it (no secret, nothing a reader of the subject could not read). */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  data!: Record<string, unknown>;

  /** The request that caused it, to follow it through the audit trail. */
  @Column({ type: 'text', nullable: true })
  requestId!: string | null;

  /** When the change it tells of happened. */
  @Column({ type: 'timestamptz', precision: 3 })
  occurredAt!: Date;

  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  routedAt!: Date | null;

  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
