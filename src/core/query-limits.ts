import type { ApolloServerPlugin } from '@apollo/server';
import { getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { getNamedType, GraphQLError, getNullableType, isListType, Kind, OperationTypeNode, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';
import { badInput, ErrorCode, type AppError } from './errors';
import { DEFAULT_PAGE } from './pagination';
import { CoreReason, type ErrorReason } from './error-reasons';

export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  /** Production: messages name nothing of the schema the caller did not write ("Did you mean …?"). */
  hideSchemaDetails?: boolean;
}

/** graphql-js suggests schema names to a caller who misspelt one; production keeps its schema to itself. */
export function withoutSuggestions(message: string): string {
  return message.replace(/ ?Did you mean(.+?)\?$/, '');
}

/** Depth of the deepest field path, following fragments (introspection's own fields count too). */
function depthOf(set: SelectionSetNode | undefined, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): number {
  if (!set) return 0;
  let max = 0;
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) max = Math.max(max, 1 + depthOf(sel.selectionSet, fragments, seen));
    else if (sel.kind === Kind.INLINE_FRAGMENT) max = Math.max(max, depthOf(sel.selectionSet, fragments, seen));
    else {
      const name = sel.name.value;
      if (seen.has(name)) continue; // a fragment cycle is refused by validation; do not loop on it here
      const frag = fragments.get(name);
      seen.add(name);
      max = Math.max(max, depthOf(frag?.selectionSet, fragments, seen));
      seen.delete(name);
    }
  }
  return max;
}

function aliasesOf(document: DocumentNode): number {
  let n = 0;
  const walk = (set: SelectionSetNode | undefined) => {
    for (const sel of set?.selections ?? []) {
      if (sel.kind === Kind.FIELD && sel.alias) n += 1;
      if ('selectionSet' in sel) walk(sel.selectionSet);
    }
  };
  for (const def of document.definitions) if ('selectionSet' in def) walk(def.selectionSet as SelectionSetNode);
  return n;
}

/** Nested lists without paging are counted as this many items each. */
export const UNPAGED_LIST_ITEMS = 10;

/**
 * Connections multiply their children's cost by their page size (`first`, default 50) — their
 * `edges` and `nodes` are that page, not a further multiple; other lists (nested relations,
 * lineage nodes) by {@link UNPAGED_LIST_ITEMS}.
 */
const pageEstimator: ComplexityEstimator = ({ type, args, childComplexity, field }) => {
  const returns = getNamedType(field.type);
  if (returns.name.endsWith('Connection')) return 1 + childComplexity * Math.max(1, Number(args.first ?? DEFAULT_PAGE));
  if (type.name.endsWith('Connection')) return 1 + childComplexity;
  if (isListType(getNullableType(field.type))) return 1 + childComplexity * UNPAGED_LIST_ITEMS;
  return undefined;
};

// Apollo answers an error thrown from didResolveOperation with HTTP 500 unless the error names a
// status; these are the client's fault, like a parse or validation failure (400).
const refuse = (message: string, details: AppError['details']) => badInput(message, { ...details, http: { status: 400 } });

/**
 * Throws BAD_USER_INPUT (with a `reason`) when an operation is too deep, uses too many aliases or
 * would cost too much. Shared by HTTP (an Apollo plugin) and WebSocket (graphql-ws onSubscribe).
 */
export function checkQueryLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | undefined,
  limits: QueryLimits,
): void {
  const fragments = new Map(
    document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
  );
  const depth = depthOf(operation.selectionSet, fragments, new Set());
  if (depth > limits.maxDepth) {
    throw refuse(`Query depth ${depth} exceeds the limit of ${limits.maxDepth}`, { reason: CoreReason.QUERY_TOO_DEEP, depth, limit: limits.maxDepth });
  }
  const aliases = aliasesOf(document);
  if (aliases > limits.maxAliases) {
    throw refuse(`Query uses ${aliases} aliases; the limit is ${limits.maxAliases}`, { reason: CoreReason.TOO_MANY_ALIASES, aliases, limit: limits.maxAliases });
  }
  let cost: number;
  try {
    cost = getComplexity({
      schema,
      query: document,
      operationName: operation.name?.value,
      variables: variables ?? {},
      estimators: [pageEstimator, simpleEstimator({ defaultComplexity: 1 })],
    });
  } catch (e) {
    // Costing coerces the variables first (the first walk of them, bounded by the scalars): a
    // variable of the wrong type, or a JSON value past its limits, is the client's error.
    if (e instanceof GraphQLError && (!e.extensions?.code || e.extensions.code === ErrorCode.BAD_USER_INPUT)) {
      const message = limits.hideSchemaDetails ? withoutSuggestions(e.message) : e.message;
      throw refuse(message, { reason: typeof e.extensions?.reason === 'string' ? (e.extensions.reason as ErrorReason) : CoreReason.BAD_VARIABLE });
    }
    throw e;
  }
  if (cost > limits.maxCost) {
    throw refuse(`Query cost ${cost} exceeds the limit of ${limits.maxCost}`, { reason: CoreReason.QUERY_TOO_COSTLY, cost, limit: limits.maxCost });
  }
}

/**
 * The limits as an Apollo plugin: refused before execution. A subscription is refused here too:
 * over HTTP it has no event stream to run on (it is served over WebSocket).
 */
export function queryLimitsPlugin(schema: GraphQLSchema, limits: QueryLimits): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, operation, request }) {
          if (operation?.operation === OperationTypeNode.SUBSCRIPTION) {
            throw refuse('Subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, not over HTTP', { reason: CoreReason.SUBSCRIPTION_OVER_HTTP });
          }
          checkQueryLimits(schema, document, operation as OperationDefinitionNode, request.variables ?? undefined, limits);
        },
      };
    },
  };
}
