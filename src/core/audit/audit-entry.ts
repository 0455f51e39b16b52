import type { AuditDecision } from './audit-event.entity';

/** One audit event as a service describes it; the chain adds actor, time, request and hashes. */
export interface AuditEntry {
  action: string;
  subjectType: string;
  subjectId?: string | null;
  decision?: AuditDecision;
  reason?: string | null;
  before?: unknown;
  after?: unknown;
}

/** A refused attempt, before it is written (or folded into one counted event). */
export interface DeniedAttempt {
  action: string;
  subjectType: string;
  subjectId?: string | null;
  reason: string;
  /** What was refused, when the reason alone does not say (kept on the written event). */
  after?: Record<string, unknown> | null;
}

