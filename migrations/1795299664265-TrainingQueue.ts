import { MigrationInterface, QueryRunner } from "typeorm";

/** The outbox for queued work, stored dataset content, and what executed runs and their versions record. */
export class TrainingQueue1795299664265 implements MigrationInterface {
    name = 'TrainingQueue1795299664265'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "outbox_entry" ("id" BIGSERIAL NOT NULL, "queue" text NOT NULL, "job_name" text NOT NULL, "job_id" text NOT NULL, "payload" jsonb NOT NULL, "available_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "dispatched_at" TIMESTAMP(3) WITH TIME ZONE, "dispatch_attempts" integer NOT NULL DEFAULT '0', "last_error" text, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_c36b035258e274bd0b584015bed" UNIQUE ("job_id"), CONSTRAINT "PK_cc1823a87798db5e4bf91f7ec7c" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_532c166e2b8f24ad686324a733" ON "outbox_entry"  ("available_at") WHERE "dispatched_at" IS NULL`);
        await queryRunner.query(`CREATE TABLE "dataset_blob" ("sha256" character(64) NOT NULL, "size_bytes" bigint NOT NULL, "row_count" bigint NOT NULL, "columns" text array NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_1cc0fd56ad89e7a24570597cd82" PRIMARY KEY ("sha256"))`);
        await queryRunner.query(`ALTER TABLE "training_run" ADD "target_model_id" uuid`);
        await queryRunner.query(`ALTER TABLE "training_run" ADD "progress" double precision NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "training_run" ADD "log_tail" text`);
        await queryRunner.query(`ALTER TABLE "training_run" ADD "failure_reason" text`);
        await queryRunner.query(`ALTER TABLE "training_run" ADD "attempts" integer NOT NULL DEFAULT '0'`);
        await queryRunner.query(`ALTER TABLE "model_version" ADD "reference_profile" jsonb`);
        await queryRunner.query(`ALTER TABLE "model_version" ADD "evaluation" jsonb`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "model_version" DROP COLUMN "evaluation"`);
        await queryRunner.query(`ALTER TABLE "model_version" DROP COLUMN "reference_profile"`);
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "attempts"`);
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "failure_reason"`);
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "log_tail"`);
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "progress"`);
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "target_model_id"`);
        await queryRunner.query(`DROP TABLE "dataset_blob"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_532c166e2b8f24ad686324a733"`);
        await queryRunner.query(`DROP TABLE "outbox_entry"`);
    }

}
