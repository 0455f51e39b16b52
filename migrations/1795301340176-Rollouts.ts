import { MigrationInterface, QueryRunner } from "typeorm";

/** Rollouts (one in flight per deployment), shadow shares, serving statistics, and each deployment's last stable version. */
export class Rollouts1795301340176 implements MigrationInterface {
    name = 'Rollouts1795301340176'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TYPE "public"."rollout_strategy" AS ENUM('CANARY', 'SHADOW', 'BLUE_GREEN')`);
        await queryRunner.query(`CREATE TYPE "public"."rollout_status" AS ENUM('IN_PROGRESS', 'PAUSED', 'SUCCEEDED', 'ABORTED', 'ROLLED_BACK')`);
        await queryRunner.query(`CREATE TABLE "rollout" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "team_id" uuid NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "deployment_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "strategy" "public"."rollout_strategy" NOT NULL, "status" "public"."rollout_status" NOT NULL, "steps" integer array NOT NULL, "current_step" integer NOT NULL DEFAULT '0', "bake_seconds" integer NOT NULL, "baseline_split" jsonb NOT NULL, "generation" integer NOT NULL DEFAULT '0', "step_started_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "finished_at" TIMESTAMP(3) WITH TIME ZONE, "reason" text, "updated_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_96a66b8ca2a1fb3c7d647b00762" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE UNIQUE INDEX "IDX_b9e7f0dbdbd6461332999c0c37" ON "rollout"  ("deployment_id") WHERE "status" IN ('IN_PROGRESS', 'PAUSED')`);
        await queryRunner.query(`CREATE INDEX "IDX_327b5b1865a683aede0a2cc9b2" ON "rollout"  ("deployment_id", "created_at") `);
        await queryRunner.query(`CREATE TABLE "shadow_share" ("deployment_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, CONSTRAINT "PK_71b179763a2a305eadcde07a591" PRIMARY KEY ("deployment_id", "model_version_id"))`);
        await queryRunner.query(`CREATE TABLE "prediction_window" ("id" BIGSERIAL NOT NULL, "deployment_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "window_start" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "window_seconds" integer NOT NULL, "requests" integer NOT NULL, "errors" integer NOT NULL, "latency_p95_ms" double precision, "drift_score" double precision, CONSTRAINT "PK_51cb1bfc6905909dfd021b12cb6" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_894786eb93f59952d3fcb99c95" ON "prediction_window"  ("deployment_id", "model_version_id", "window_start") `);
        await queryRunner.query(`ALTER TABLE "deployment" ADD "last_stable_version_id" uuid`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD CONSTRAINT "FK_f242181644b7d0cb2f396e792b8" FOREIGN KEY ("team_id") REFERENCES "team"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD CONSTRAINT "FK_c8a114c4dfdece7ff2360b04f95" FOREIGN KEY ("deployment_id") REFERENCES "deployment"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD CONSTRAINT "FK_32950bb043e7250ca27ec6d75dd" FOREIGN KEY ("model_version_id") REFERENCES "model_version"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "shadow_share" ADD CONSTRAINT "FK_1b1fdfade61e67ab07a458de6e4" FOREIGN KEY ("deployment_id") REFERENCES "deployment"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "shadow_share" ADD CONSTRAINT "FK_59d6ada8b9f59f46b77867c9ae6" FOREIGN KEY ("model_version_id") REFERENCES "model_version"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "shadow_share" DROP CONSTRAINT "FK_59d6ada8b9f59f46b77867c9ae6"`);
        await queryRunner.query(`ALTER TABLE "shadow_share" DROP CONSTRAINT "FK_1b1fdfade61e67ab07a458de6e4"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP CONSTRAINT "FK_32950bb043e7250ca27ec6d75dd"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP CONSTRAINT "FK_c8a114c4dfdece7ff2360b04f95"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP CONSTRAINT "FK_f242181644b7d0cb2f396e792b8"`);
        await queryRunner.query(`ALTER TABLE "deployment" DROP COLUMN "last_stable_version_id"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_894786eb93f59952d3fcb99c95"`);
        await queryRunner.query(`DROP TABLE "prediction_window"`);
        await queryRunner.query(`DROP TABLE "shadow_share"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_327b5b1865a683aede0a2cc9b2"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_b9e7f0dbdbd6461332999c0c37"`);
        await queryRunner.query(`DROP TABLE "rollout"`);
        await queryRunner.query(`DROP TYPE "public"."rollout_status"`);
        await queryRunner.query(`DROP TYPE "public"."rollout_strategy"`);
    }

}
