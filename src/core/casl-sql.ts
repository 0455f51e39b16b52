import { rulesToAST } from '@casl/ability/extra';
import type { AppAbility } from './ability';
import { POLICY_ATTRIBUTES, UUID_ATTRIBUTES, type SubjectName } from './subjects';

interface AstNode {
  operator: string;
  field?: string;
  value: unknown;
}

/** Placeholder factory: registers a value and returns its placeholder ($3, :p3, …). */
export type Bind = (value: unknown) => string;

const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

// What CASL's comparison (ucast's `compare`) answers for a NULL attribute against `v`: -1, 0 or 1.
function compareNull(v: unknown): number {
  if (v === null) return 0;
  return (null as unknown as number) > (v as number) ? 1 : -1;
}

function column(subjectName: SubjectName, attribute: string, alias: string): string {
  if (!POLICY_ATTRIBUTES[subjectName].includes(attribute)) {
    // validateRules refuses such rules; a stored one that slipped through must deny, not widen.
    throw new Error(`policy attribute ${attribute} is not mapped for ${subjectName}`);
  }
  if (subjectName === 'Team' && attribute === 'teamId') return `${alias}."id"`;
  return `${alias}."${snake(attribute)}"`;
}

/**
 * The SQL boolean that selects exactly the rows of `subjectName` the ability allows for `action`,
 * from the same rules CASL evaluates in memory. Every leaf is NULL-safe, so that NOT and NULL
 * columns behave as CASL does (CASL's `$ne: x` keeps rows whose value is NULL).
 */
export function accessibleSql(ability: AppAbility, action: string, subjectName: SubjectName, alias: string, bind: Bind): string {
  const ast = rulesToAST(ability, action, subjectName) as AstNode | null;
  if (!ast) return 'FALSE';
  return toSql(ast, subjectName, alias, bind);
}

function toSql(node: AstNode, s: SubjectName, alias: string, bind: Bind): string {
  const parts = () => (node.value as AstNode[]).map((n) => toSql(n, s, alias, bind));
  switch (node.operator) {
    case 'and': {
      const p = parts();
      return p.length === 0 ? 'TRUE' : `(${p.join(' AND ')})`;
    }
    case 'or': {
      const p = parts();
      return p.length === 0 ? 'FALSE' : `(${p.join(' OR ')})`;
    }
    case 'not': {
      const inner = Array.isArray(node.value) ? parts() : [toSql(node.value as AstNode, s, alias, bind)];
      return `NOT (${inner.join(' AND ')})`;
    }
  }
  const raw = column(s, node.field as string, alias);
  // uuid columns are compared as they are (their indexes stay usable); every other attribute as text,
  // as CASL compares strings: an enum column would order by declaration and reject unknown values.
  const col = UUID_ATTRIBUTES.has(node.field as string) ? raw : `${raw}::text`;
  const ordered = UUID_ATTRIBUTES.has(node.field as string) ? raw : `(${raw}::text COLLATE "C")`;
  const v = node.value;
  switch (node.operator) {
    case 'eq':
      return v === null ? `(${col} IS NULL)` : `COALESCE(${col} = ${bind(v)}, FALSE)`;
    case 'ne':
      return v === null ? `(${col} IS NOT NULL)` : `(${col} IS DISTINCT FROM ${bind(v)})`;
    case 'in':
      return `COALESCE(${col} = ANY(${bind(asArray(v))}), ${asArray(v).includes(null) ? `${col} IS NULL` : 'FALSE'})`;
    case 'nin':
      return `NOT COALESCE(${col} = ANY(${bind(asArray(v))}), ${asArray(v).includes(null) ? `${col} IS NULL` : 'FALSE'})`;
    // A NULL attribute takes CASL's answer, which for a NULL value is not always false.
    case 'lt':
      return `COALESCE(${ordered} < ${bind(v)}, ${compareNull(v) < 0})`;
    case 'lte':
      return `COALESCE(${ordered} <= ${bind(v)}, ${compareNull(v) <= 0})`;
    case 'gt':
      return `COALESCE(${ordered} > ${bind(v)}, ${compareNull(v) > 0})`;
    case 'gte':
      return `COALESCE(${ordered} >= ${bind(v)}, ${compareNull(v) >= 0})`;
    // Rows always carry every column (NULL included), and CASL's $exists tests presence, not value.
    case 'exists':
      return v ? 'TRUE' : 'FALSE';
    default:
      throw new Error(`operator ${node.operator} cannot be turned into SQL`);
  }
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [v];
}

/** A Bind for hand-written SQL with positional parameters. */
export function positional(params: unknown[]): Bind {
  return (value) => {
    params.push(value);
    return `$${params.length}`;
  };
}

/** A Bind for TypeORM query builders (named parameters). */
export function named(params: Record<string, unknown>, prefix = 'casl'): Bind {
  let n = Object.keys(params).length;
  return (value) => {
    const name = `${prefix}_${n++}`;
    params[name] = value;
    return `:${name}`;
  };
}
