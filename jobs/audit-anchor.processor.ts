import type { AppServices } from '../src/core/context';
import { AnchorRefusedError, publishAnchor } from '../src/audit/audit-anchor.service';
import { anchorPublishers } from '../src/audit/audit-anchor.publisher';

/**
 * The periodic anchor: signs the chain head and publishes it wherever the configuration says.
 * Idempotent: a head already published there is not published again. A refusal (the chain lost an
 * anchored event) is logged as an error and fails the job, at every run until someone looks.
 */
export function auditAnchorProcessor(app: AppServices) {
  return async (): Promise<void> => {
    for (const publisher of anchorPublishers(app.config)) {
      try {
        const r = await publishAnchor(app, publisher);
        if (r.published) app.log.info({ seq: r.anchor!.seq, hash: r.anchor!.hash, target: r.target }, 'audit chain head anchored');
      } catch (e) {
        if (e instanceof AnchorRefusedError) app.log.error({ target: publisher.target, problem: e.message }, 'audit chain not anchored');
        throw e;
      }
    }
  };
}
