import { ArrayMaxSize, ArrayMinSize, IsOptional, IsISO8601, Length, Matches, MaxLength } from 'class-validator';
import { Field, ID, InputType, ObjectType } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONScalar } from '../core/scalars';
import { NAME, NAME_MSG } from '../core/validation';
import { ApiKey } from './api-key.entity';
import { Role } from './role.entity';
import { Team } from './team.entity';

@InputType({ description: 'A role to create, or to replace by name' })
export class UpsertRoleInput {
  @Field({ description: 'The role to create or replace; 1–40 lowercase letters, digits or "-", starting with a letter' })
  @Matches(/^[a-z][a-z0-9-]{0,39}$/, { message: 'name must be 1–40 lowercase letters, digits or "-"' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'Up to 2,000 characters; null keeps the existing description' })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;

  @Field(() => JSONScalar, { description: 'A list of CASL rules; see the README for the subjects, actions and attributes' })
  rules!: unknown;
}

@InputType({ description: 'Which roles to list; every condition given must hold' })
export class RoleFilter {
  @Field(() => String, { nullable: true, description: 'Only the role of this exact name' })
  name?: string | null;

  @Field(() => Boolean, { nullable: true, description: 'Only built-in roles (true) or only the others (false)' })
  builtIn?: boolean | null;
}

@InputType({ description: 'A service-account key to create' })
export class CreateApiKeyInput {
  @Field({ description: 'A label to recognise the key by; 1–100 characters' })
  @Length(1, 100)
  name!: string;

  @Field(() => [String], { description: 'Names of existing roles the key holds, 1–20; only roles its creator holds (unless an admin)' })
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  roles!: string[];

  @Field(() => [String], { description: 'Team names the key acts for' })
  @ArrayMaxSize(50)
  teams!: string[];

  @Field(() => String, { nullable: true, description: 'ISO 8601 time, in the future, after which the key is refused; null: it does not expire' })
  @IsOptional()
  @IsISO8601()
  expiresAt?: string | null;
}

@InputType({ description: 'The API key to revoke' })
export class RevokeApiKeyInput {
  @Field(() => ID, { description: 'Global ID of the ApiKey' })
  apiKey!: string;
}

@ObjectType({ description: 'A new API key. `key` is shown this once and cannot be retrieved again.' })
export class CreatedApiKey {
  @Field({ description: 'The secret, sent as `Authorization: ApiKey <key>`; stored only hashed' })
  key!: string;

  @Field(() => ApiKey, { description: 'The key as stored' })
  apiKey!: ApiKey;
}

@ObjectType({ description: 'Who the caller is, as the server sees it' })
export class Viewer {
  @Field({ description: "The principal's id: what audit events record as actorId, and createdBy fields hold" })
  id!: string;

  @Field({ description: 'user or service' })
  kind!: string;

  @Field(() => [String], { description: 'Names of the roles the credential holds' })
  roles!: string[];

  @Field(() => [String], { description: 'Team names from the credential' })
  teams!: string[];

  @Field(() => JSONScalar, { description: 'The CASL rules in force for this request, with attributes filled in' })
  rules!: unknown;
}

@InputType({ description: 'A team to create' })
export class CreateTeamInput {
  @Field({ description: `Unique; ${NAME_MSG}` })
  @Matches(NAME, { message: `name ${NAME_MSG}` })
  name!: string;

  @Field(() => String, { nullable: true, description: 'Free text, up to 2,000 characters' })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;
}

@InputType({ description: 'Which teams to list' })
export class TeamFilter {
  @Field(() => String, { nullable: true, description: 'Only the team of this exact name' })
  name?: string | null;
}

/** Pages of teams, API keys and roles. */
export const TeamConnection = Connection(Team);
export const ApiKeyConnection = Connection(ApiKey);
export const RoleConnection = Connection(Role);
