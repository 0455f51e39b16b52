import { GraphQLJSON, GraphQLJSONObject } from 'graphql-scalars';

export { GraphQLJSON as JSONScalar, GraphQLJSONObject as JSONObjectScalar };

/** bigint columns come back from pg as strings; row counts and sizes fit a JS number. */
export const bigintAsNumber = {
  to: (v: number | null | undefined) => v,
  from: (v: string | null) => (v === null ? null : Number(v)),
};
