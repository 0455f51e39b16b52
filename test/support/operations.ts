import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isAbstractType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLSchema,
} from 'graphql';

/** A plausible value of any input type: what a client might send, well-typed but meaningless. */
export function sampleValue(type: GraphQLInputType): unknown {
  if (isNonNullType(type)) return sampleValue(type.ofType);
  if (isListType(type)) return [sampleValue(type.ofType)];
  if (isEnumType(type)) return type.getValues()[0].value;
  if (isInputObjectType(type)) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(type.getFields())) if (isNonNullType(f.type)) out[f.name] = sampleValue(f.type);
    return out;
  }
  if (isScalarType(type)) {
    switch (type.name) {
      case 'Int':
      case 'Float':
        return 1;
      case 'Boolean':
        return true;
      case 'JSON':
      case 'JSONObject':
        return { a: 1 };
      case 'DateTimeISO':
        return '2026-01-01T00:00:00.000Z';
      case 'ID':
        return 'VGVhbTowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA';
      default:
        return 'x';
    }
  }
  throw new Error(`no sample for ${String(type)}`);
}

export interface RootOperation {
  field: string;
  query: string;
  variables: Record<string, unknown>;
}

function selection(field: GraphQLField<unknown, unknown>): string {
  const t = getNamedType(field.type);
  return isObjectType(t) || isAbstractType(t) ? ' { __typename }' : '';
}

/**
 * Chooses the value of an argument, or of a field inside an input argument, at `path` (argument
 * name first) of root field `field`; undefined leaves a required one its sample and an optional one out.
 */
export type ArgumentChooser = (field: GraphQLField<unknown, unknown>, path: string[], type: GraphQLInputType) => unknown;

function argumentValue(field: GraphQLField<unknown, unknown>, path: string[], type: GraphQLInputType, choose: ArgumentChooser | undefined): unknown {
  const chosen = choose?.(field, path, type);
  if (chosen !== undefined) return chosen;
  const required = isNonNullType(type);
  const named = required ? type.ofType : type;
  if (choose && isInputObjectType(named)) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(named.getFields())) {
      const v = argumentValue(field, [...path, f.name], f.type, choose);
      if (v !== undefined) out[f.name] = v;
    }
    return required || Object.keys(out).length ? out : undefined;
  }
  return required ? sampleValue(type) : undefined;
}

/**
 * One operation per root field of `root`, with every required argument given a sample value, or
 * the value `choose` picks (which may also fill optional arguments and input fields).
 */
export function operationsFor(schema: GraphQLSchema, root: 'Query' | 'Mutation' | 'Subscription', choose?: ArgumentChooser): RootOperation[] {
  const type = { Query: schema.getQueryType(), Mutation: schema.getMutationType(), Subscription: schema.getSubscriptionType() }[root] as GraphQLObjectType;
  return Object.values(type.getFields()).map((field) => {
    const values = field.args.map((a: GraphQLArgument) => [a, argumentValue(field, [a.name], a.type, choose)] as const).filter(([, v]) => v !== undefined);
    const decl = values.map(([a]) => `$${a.name}: ${String(a.type)}`).join(', ');
    const pass = values.map(([a]) => `${a.name}: $${a.name}`).join(', ');
    const variables = Object.fromEntries(values.map(([a, v]) => [a.name, v]));
    const query = `${root.toLowerCase()} Op${decl ? `(${decl})` : ''} { ${field.name}${pass ? `(${pass})` : ''}${selection(field)} }`;
    return { field: field.name, query, variables };
  });
}
