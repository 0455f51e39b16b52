import { Role } from '../../access/role.entity';
import { DEFAULT_ROLES, SUPERSEDED_DEFAULT_RULES } from '../../access/policy-rules';
import { canonicalJson } from '../../core/canonical-json';
import { audit } from '../../core/audit/audit-chain';
import { inTransaction, type AppServices } from '../../core/context';
import { toGlobalId } from '../../core/global-id';
import { systemContext } from '../../access/system-context';
import { announceAccessChange } from '../../access/principal-cache';

/** Seeds the default roles that do not exist yet (never overwrites an admin's edits). */
export async function seedBaseline(app: AppServices): Promise<void> {
  const ctx = systemContext(app, {}, 'seed-baseline');
  const changed = await inTransaction(ctx, async (em, ctx) => {
    let changed = false;
    // Serialise concurrent starts on one database.
    await em.query('SELECT pg_advisory_xact_lock(7001)');
    const existing = new Map((await em.find(Role)).map((r) => [r.name, r]));
    for (const role of DEFAULT_ROLES) {
      const stored = existing.get(role.name);
      if (stored) {
        const superseded = (SUPERSEDED_DEFAULT_RULES[role.name] ?? []).some((old) => canonicalJson(old) === canonicalJson(stored.rules));
        if (stored.builtIn && superseded) {
          await em.update(Role, { name: role.name }, { rules: role.rules, description: role.description });
          changed = true;
          await audit(ctx, { action: 'upgradeRole', subjectType: 'Role', subjectId: toGlobalId('Role', role.name), before: { rules: stored.rules, description: stored.description }, after: role });
        }
        continue;
      }
      await em.insert(Role, { name: role.name, description: role.description, rules: role.rules, builtIn: true });
      changed = true;
      await audit(ctx, { action: 'seedRole', subjectType: 'Role', subjectId: toGlobalId('Role', role.name), after: role });
    }
    return changed;
  });
  // Instances already running (a rolling upgrade) drop principals read with the rules before.
  if (changed) announceAccessChange(app);
}
