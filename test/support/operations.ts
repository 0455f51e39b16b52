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

/** One operation per root field of `root`, with every required argument given a sample value. */
export function operationsFor(schema: GraphQLSchema, root: 'Query' | 'Mutation'): RootOperation[] {
  const type = (root === 'Query' ? schema.getQueryType() : schema.getMutationType()) as GraphQLObjectType;
  return Object.values(type.getFields()).map((field) => {
    const args = field.args.filter((a: GraphQLArgument) => isNonNullType(a.type));
    const decl = args.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
    const pass = args.map((a) => `${a.name}: $${a.name}`).join(', ');
    const variables = Object.fromEntries(args.map((a) => [a.name, sampleValue(a.type)]));
    const query = `${root === 'Query' ? 'query' : 'mutation'} Op${decl ? `(${decl})` : ''} { ${field.name}${pass ? `(${pass})` : ''}${selection(field)} }`;
    return { field: field.name, query, variables };
  });
}
