import { Field, ObjectType, Query, registerEnumType, Resolver } from 'type-graphql';
import { ACCESS_REASONS } from '../access/access.errors';
import { AUDIT_REASONS } from '../audit/audit.errors';
import { CORE_REASONS, type ErrorReason, type ReasonInfo } from '../core/error-reasons';
import { ERROR_CODE_DESCRIPTIONS, ErrorCode } from '../core/errors';
import { Policy } from '../core/policy';
import { INFERENCE_REASONS } from '../inference/inference.errors';
import { LINEAGE_REASONS } from '../lineage/lineage.errors';
import { TRAINING_REASONS } from '../training/training.errors';
import { MONITORING_REASONS } from '../monitoring/monitoring.errors';
import { REGISTRY_REASONS } from '../registry/registry.errors';
import { ROLLOUTS_REASONS } from '../rollouts/rollouts.errors';

/** Every domain's part of the catalogue, core first, in the order of the layers. */
const PARTS = [
  CORE_REASONS,
  ACCESS_REASONS,
  LINEAGE_REASONS,
  REGISTRY_REASONS,
  TRAINING_REASONS,
  ROLLOUTS_REASONS,
  INFERENCE_REASONS,
  MONITORING_REASONS,
  AUDIT_REASONS,
] as const;

// Does not compile when a domain declares reasons (augments ErrorReasons) whose part is missing above.
type ReasonsOf<Part> = Part extends unknown ? keyof Part : never;
type Assembled = ReasonsOf<(typeof PARTS)[number]>;
const everyPartAssembled: [ErrorReason] extends [Assembled] ? true : never = true;
void everyPartAssembled;

function assemble(): Readonly<Record<ErrorReason, ReasonInfo>> {
  const all: Partial<Record<ErrorReason, ReasonInfo>> = {};
  for (const part of PARTS) {
    for (const [reason, info] of Object.entries(part) as Array<[ErrorReason, ReasonInfo]>) {
      // Two domains sending one reason would give it two meanings: it is declared once, where it belongs.
      if (all[reason]) throw new Error(`error reason ${reason} is declared twice`);
      all[reason] = info;
    }
  }
  return all as Record<ErrorReason, ReasonInfo>;
}

/** Every reason the server may send in `extensions.reason` (and `reason` in REST bodies), with its codes and description. */
export const ERROR_CATALOGUE = assemble();

/** The reasons, sorted, as an enum object (each value its own name) for the schema. */
export const ErrorReasonEnum = Object.fromEntries(
  (Object.keys(ERROR_CATALOGUE) as ErrorReason[]).sort().map((r) => [r, r]),
) as { readonly [R in ErrorReason]: R };

registerEnumType(ErrorReasonEnum, {
  name: 'ErrorReason',
  description:
    "Why a request failed, in `extensions.reason` (and `reason` in REST and Open Inference Protocol bodies) beside `extensions.code`: branch on it. The query `errorReasons` lists each with its codes.",
  valuesConfig: Object.fromEntries(Object.entries(ERROR_CATALOGUE).map(([r, info]) => [r, { description: info.description }])),
});

registerEnumType(ErrorCode, {
  name: 'ErrorCode',
  description: 'The closed set of codes in `extensions.code` (and `code` in REST bodies); `extensions.reason` narrows them.',
  valuesConfig: Object.fromEntries(Object.entries(ERROR_CODE_DESCRIPTIONS).map(([c, description]) => [c, { description }])),
});

@ObjectType({ description: 'One reason of the error catalogue' })
export class ErrorReasonInfo {
  @Field(() => ErrorReasonEnum, { description: 'The value of `extensions.reason`' })
  reason!: ErrorReason;

  @Field(() => [ErrorCode], { description: 'The `extensions.code` it is sent with; more than one only where the same reason answers different cases' })
  codes!: ErrorCode[];

  @Field({ description: 'When it happens and what the client should do' })
  description!: string;
}

@Resolver()
export class ErrorCatalogueResolver {
  @Query(() => [ErrorReasonInfo], { nullable: true, description: 'Every reason an error may carry in `extensions.reason`, with its codes and what to do' })
  @Policy({ public: 'describes the API, not its data: a client needs it to handle the errors of requests made without a credential, too' })
  errorReasons(): ErrorReasonInfo[] {
    return (Object.keys(ErrorReasonEnum) as ErrorReason[]).map((reason) => ({ reason, codes: [...ERROR_CATALOGUE[reason].codes], description: ERROR_CATALOGUE[reason].description }));
  }
}
