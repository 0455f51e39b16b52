import { createMongoAbility, subject as asSubject, type MongoAbility, type RawRuleOf } from '@casl/ability';
import { ACTIONS, POLICY_ATTRIBUTES, PROTECTED_FIELDS, SUBJECTS, UUID_ATTRIBUTES, type PolicyRule, type SubjectName } from './subjects';

export type AppAbility = MongoAbility<[string, string | Record<string, unknown>]>;

/** Who is calling, as the server established it. */
export interface Principal {
  /** JWT `sub`, or `apikey:<id>` for service-account keys. */
  id: string;
  kind: 'user' | 'service' | 'system';
  roles: string[];
  /** Team names from the token or key. */
  teams: string[];
  /** Ids of those teams that exist. */
  teamIds: string[];
  /**
   * For an API key: the person accountable for it (whoever created it, followed through keys
   * created by keys). Rules that must tell people apart, such as four-eyes review, compare this.
   */
  onBehalfOf?: string;
}

export const SYSTEM_PRINCIPAL: Principal = { id: 'system', kind: 'system', roles: ['admin'], teams: [], teamIds: [] };

const PLACEHOLDER = /^\$\{user\.(id|teamIds|teams|roles)\}$/;

function interpolate(value: unknown, principal: Principal): unknown {
  if (typeof value === 'string') {
    const m = PLACEHOLDER.exec(value);
    if (m) return principal[m[1] as 'id' | 'teamIds' | 'teams' | 'roles'];
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, principal));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, principal)]));
  }
  return value;
}

/** The ability of a principal: the union of its roles' rules, with `${user.*}` filled in. */
export function buildAbility(principal: Principal | null, rolesRules: PolicyRule[][]): AppAbility {
  if (!principal) return createMongoAbility([]);
  const rules = rolesRules.flat().map((r) => interpolate(r, principal) as RawRuleOf<AppAbility>);
  return createMongoAbility(rules);
}

/** Wraps a row so CASL knows its subject type. */
export function subjectOf(type: SubjectName, row: object): Record<string, unknown> {
  return asSubject(type, row as Record<string, unknown>);
}

// CASL's Mongo matcher evaluates only these; it reads $and, $or and $not as plain field names, so a
// rule using them would never match in memory (an inverted one would never deny) while SQL refuses it.
const OPERATORS = new Set(['$eq', '$ne', '$in', '$nin', '$lt', '$lte', '$gt', '$gte', '$exists']);

/**
 * Checks a role's rules before they are stored: known actions and subjects, conditions only over
 * the subject's policy attributes with operators the SQL filter supports, known protected fields.
 * Returns the problems, empty when the rules are valid.
 */
export function validateRules(rules: unknown): string[] {
  const problems: string[] = [];
  if (!Array.isArray(rules)) return ['rules must be a list'];
  if (rules.length > 200) problems.push('at most 200 rules per role');
  rules.forEach((rule, i) => {
    const at = `rules[${i}]`;
    if (!rule || typeof rule !== 'object' || Array.isArray(rule)) {
      problems.push(`${at} must be an object`);
      return;
    }
    const r = rule as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!['action', 'subject', 'conditions', 'fields', 'inverted', 'reason'].includes(key)) problems.push(`${at}.${key} is not a rule property`);
    }
    const actions = Array.isArray(r.action) ? r.action : [r.action];
    if (actions.length === 0 || actions.some((a) => !(ACTIONS as readonly unknown[]).includes(a))) {
      problems.push(`${at}.action must be one of ${ACTIONS.join(', ')}`);
    }
    const subjects = Array.isArray(r.subject) ? r.subject : [r.subject];
    if (subjects.length === 0 || subjects.some((s) => s !== 'all' && !(SUBJECTS as readonly unknown[]).includes(s))) {
      problems.push(`${at}.subject must be "all" or one of ${SUBJECTS.join(', ')}`);
      return;
    }
    if (r.inverted !== undefined && typeof r.inverted !== 'boolean') problems.push(`${at}.inverted must be a boolean`);
    if (r.reason !== undefined && typeof r.reason !== 'string') problems.push(`${at}.reason must be a string`);
    if (r.fields !== undefined) {
      if (!Array.isArray(r.fields) || r.fields.length === 0 || r.fields.some((f) => typeof f !== 'string')) {
        problems.push(`${at}.fields must be a non-empty list of field names`);
      } else {
        for (const s of subjects as string[]) {
          const allowed = s === 'all' ? [] : (PROTECTED_FIELDS[s as SubjectName] ?? []);
          for (const f of r.fields as string[]) {
            if (!allowed.includes(f)) problems.push(`${at}.fields: ${f} is not a protected field of ${s}`);
          }
        }
      }
    }
    if (r.conditions !== undefined) {
      if (!r.conditions || typeof r.conditions !== 'object' || Array.isArray(r.conditions)) {
        problems.push(`${at}.conditions must be an object`);
      } else if (subjects.includes('all')) {
        problems.push(`${at}.conditions cannot apply to subject "all"`);
      } else {
        for (const s of subjects as SubjectName[]) checkCondition(r.conditions as Record<string, unknown>, s, `${at}.conditions`, problems);
      }
    }
  });
  if (problems.length === 0) {
    try {
      createMongoAbility(rules as RawRuleOf<AppAbility>[]);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return problems;
}

function checkCondition(cond: Record<string, unknown>, subjectName: SubjectName, at: string, problems: string[]): void {
  for (const [key, value] of Object.entries(cond)) {
    if (key.startsWith('$')) {
      problems.push(`${at}: operator ${key} is not supported here`);
      continue;
    }
    if (!POLICY_ATTRIBUTES[subjectName].includes(key)) {
      problems.push(`${at}: ${subjectName} has no policy attribute ${key} (allowed: ${POLICY_ATTRIBUTES[subjectName].join(', ') || 'none'})`);
      continue;
    }
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const op of Object.keys(value)) {
        if (!OPERATORS.has(op)) problems.push(`${at}.${key}: operator ${op} is not supported`);
      }
    }
    if (UUID_ATTRIBUTES.has(key)) checkUuidValues(value, `${at}.${key}`, problems);
  }
}

const UUID_VALUE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Id attributes hold uuids: a rule comparing one with anything else (a team name, say) could never
// match in SQL and would make every query of its holders fail, so it is refused when stored.
function checkUuidValues(value: unknown, at: string, problems: string[]): void {
  const ok = (v: unknown) => v === null || (typeof v === 'string' && (UUID_VALUE.test(v) || PLACEHOLDER.test(v)));
  const operands = value && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : [['$eq', value] as const];
  for (const [op, operand] of operands) {
    if (op === '$exists') continue;
    const list = Array.isArray(operand) ? operand : [operand];
    if (!list.every(ok)) problems.push(`${at}: ${op} needs uuids or \${user.*} placeholders`);
  }
}
