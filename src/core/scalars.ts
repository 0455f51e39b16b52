import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { GraphQLJSON, GraphQLJSONObject } from 'graphql-scalars';
import { badInput } from './errors';
import { CoreReason } from './error-reasons';

/**
 * Bounds on every JSON value a client sends (variables and literals of the `JSON` and `JSONObject`
 * scalars): nesting depth and number of values. Larger or deeper values are refused with
 * BAD_USER_INPUT (`JSON_TOO_DEEP`, `JSON_TOO_LARGE`) before any recursive code sees them.
 */
export const JSON_LIMITS = { maxDepth: 64, maxValues: 5_000_000 } as const;

/** BAD_USER_INPUT (`JSON_TOO_DEEP`): a JSON value nested deeper than `limit` levels. */
export const jsonTooDeep = (limit: number = JSON_LIMITS.maxDepth) =>
  badInput(`JSON value is nested deeper than ${limit} levels`, { reason: CoreReason.JSON_TOO_DEEP, limit });
const tooLarge = () =>
  badInput(`JSON value holds more than ${JSON_LIMITS.maxValues} values`, { reason: CoreReason.JSON_TOO_LARGE, limit: JSON_LIMITS.maxValues });

/**
 * Throws BAD_USER_INPUT when `value` nests deeper or holds more values than {@link JSON_LIMITS}.
 * Walks with an explicit stack: a value nested 100,000 deep is refused, not a stack overflow.
 */
export function assertBoundedJson(value: unknown): void {
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  let values = 0;
  while (stack.length) {
    const { v, depth } = stack.pop()!;
    if (++values > JSON_LIMITS.maxValues) throw tooLarge();
    if (v === null || typeof v !== 'object') continue;
    if (depth >= JSON_LIMITS.maxDepth) throw jsonTooDeep();
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: child, depth: depth + 1 });
  }
}

/** The same bounds for a literal written in the query text. */
function assertBoundedLiteral(node: ValueNode): void {
  const stack: Array<{ n: ValueNode; depth: number }> = [{ n: node, depth: 0 }];
  let values = 0;
  while (stack.length) {
    const { n, depth } = stack.pop()!;
    if (++values > JSON_LIMITS.maxValues) throw tooLarge();
    if (n.kind !== Kind.OBJECT && n.kind !== Kind.LIST) continue;
    if (depth >= JSON_LIMITS.maxDepth) throw jsonTooDeep();
    if (n.kind === Kind.LIST) for (const child of n.values) stack.push({ n: child, depth: depth + 1 });
    else for (const field of n.fields) stack.push({ n: field.value, depth: depth + 1 });
  }
}

/** graphql-scalars' scalar, same name and description, checked against {@link JSON_LIMITS} first. */
function bounded(scalar: GraphQLScalarType): GraphQLScalarType {
  const config = scalar.toConfig();
  return new GraphQLScalarType({
    ...config,
    parseValue: (value) => {
      assertBoundedJson(value);
      return config.parseValue!(value);
    },
    parseLiteral: (ast, variables) => {
      assertBoundedLiteral(ast);
      return config.parseLiteral!(ast, variables);
    },
  });
}

export const JSONScalar = bounded(GraphQLJSON);
export const JSONObjectScalar = bounded(GraphQLJSONObject);

/** bigint columns come back from pg as strings; row counts and sizes fit a JS number. */
export const bigintAsNumber = {
  to: (v: number | null | undefined) => v,
  from: (v: string | null) => (v === null ? null : Number(v)),
};
