import type { KindName } from '../subjects';
import type { AuditDecision } from './audit-event.entity';

/** One audit event as a service describes it; the chain adds actor, time, request and hashes. */
export interface AuditEntry {
  action: string;
  /** A kind of the subject table. */
  subjectType: KindName;
  subjectId?: string | null;
  decision?: AuditDecision;
  reason?: string | null;
  before?: unknown;
  after?: unknown;
}

/** A refused attempt, before it is written (or folded into one counted event). */
export interface DeniedAttempt {
  action: string;
  subjectType: KindName;
  subjectId?: string | null;
  reason: string;
  /** What was refused, when the reason alone does not say (kept on the written event). */
  after?: Record<string, unknown> | null;
}

