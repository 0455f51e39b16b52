import { ArrayMaxSize, ArrayMinSize, IsOptional, IsISO8601, Length, Matches, MaxLength } from 'class-validator';
import { Field, ID, InputType, ObjectType } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONScalar } from '../core/scalars';
import { NAME, NAME_MSG } from '../core/validation';
import { ApiKey } from './api-key.entity';
import { Role } from './role.entity';
import { Team } from './team.entity';

@InputType()
export class UpsertRoleInput {
  @Field()
  @Matches(/^[a-z][a-z0-9-]{0,39}$/, { message: 'name must be 1–40 lowercase letters, digits or "-"' })
  name!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;

  @Field(() => JSONScalar, { description: 'A list of CASL rules; see the README for the subjects, actions and attributes' })
  rules!: unknown;
}

@InputType()
export class RoleFilter {
  @Field(() => String, { nullable: true })
  name?: string | null;

  @Field(() => Boolean, { nullable: true })
  builtIn?: boolean | null;
}

@InputType()
export class CreateApiKeyInput {
  @Field()
  @Length(1, 100)
  name!: string;

  @Field(() => [String])
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  roles!: string[];

  @Field(() => [String], { description: 'Team names the key acts for' })
  @ArrayMaxSize(50)
  teams!: string[];

  @Field(() => String, { nullable: true })
  @IsOptional()
  @IsISO8601()
  expiresAt?: string | null;
}

@InputType()
export class RevokeApiKeyInput {
  @Field(() => ID)
  apiKey!: string;
}

@ObjectType({ description: 'A new API key. `key` is shown this once and cannot be retrieved again.' })
export class CreatedApiKey {
  @Field()
  key!: string;

  @Field(() => ApiKey)
  apiKey!: ApiKey;
}

@ObjectType({ description: 'Who the caller is, as the server sees it' })
export class Viewer {
  @Field()
  id!: string;

  @Field({ description: 'user or service' })
  kind!: string;

  @Field(() => [String])
  roles!: string[];

  @Field(() => [String], { description: 'Team names from the credential' })
  teams!: string[];

  @Field(() => JSONScalar, { description: 'The CASL rules in force for this request, with attributes filled in' })
  rules!: unknown;
}

@InputType()
export class CreateTeamInput {
  @Field()
  @Matches(NAME, { message: `name ${NAME_MSG}` })
  name!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;
}

@InputType()
export class TeamFilter {
  @Field(() => String, { nullable: true })
  name?: string | null;
}

/** Pages of teams, API keys and roles. */
export const TeamConnection = Connection(Team);
export const ApiKeyConnection = Connection(ApiKey);
export const RoleConnection = Connection(Role);
