import { Field, ID, InterfaceType } from 'type-graphql';

/** Relay's Node: every object with a global ID. */
@InterfaceType('Node', {
  description: 'An object with a global ID, which `node(id:)` fetches again',
  resolveType: (value: object) => (value.constructor as { name: string }).name,
})
export abstract class Node {
  @Field(() => ID, { name: 'id', description: 'Opaque global ID' })
  nodeId!: string;
}

/** The `id` field of a Node type: put it on a getter returning the global ID. */
export const NodeId = () => Field(() => ID, { name: 'id', description: 'Opaque global ID' });
