// Everything that happened to one object, newest first, with who did it and whether it was
// allowed. Needs a token that may read the audit trail (role auditor or admin).
//
//   MODELGOV_TOKEN=<auditor token> node client-examples/audit-trail.mjs <id>
import { gql } from './lib.mjs';

const subject = process.argv[2];
let after = null;
do {
  const { auditEvents } = await gql(
    `query AuditTrailPage($filter: AuditEventFilter, $after: String) {
      auditEvents(filter: $filter, first: 100, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { seq occurredAt actorId action subjectType subjectId decision reason hash }
      }
    }`,
    { filter: subject ? { subject } : null, after },
  );
  if (!after) console.log(`${auditEvents.totalCount} events`);
  for (const e of auditEvents.nodes) {
    console.log(`#${e.seq} ${e.occurredAt} ${e.actorId} ${e.action} ${e.subjectType} ${e.decision}${e.reason ? ` (${e.reason})` : ''} ${e.hash.slice(0, 12)}`);
  }
  after = auditEvents.pageInfo.hasNextPage ? auditEvents.pageInfo.endCursor : null;
} while (after);
