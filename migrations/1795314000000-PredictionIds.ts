import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Prediction ids: a prediction's key becomes a uuid the server gives out in the answer before the
 * record is written (records already logged keep their number, written as a uuid); outcomes may
 * also join by request key within a deployment.
 */
export class PredictionIds1795314000000 implements MigrationInterface {
    name = 'PredictionIds1795314000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "prediction_log" ALTER COLUMN "id" DROP DEFAULT`);
        await queryRunner.query(`ALTER TABLE "prediction_log" ALTER COLUMN "id" TYPE uuid USING lpad(to_hex("id"), 32, '0')::uuid`);
        await queryRunner.query(`ALTER TABLE "prediction_log" ALTER COLUMN "id" SET DEFAULT gen_random_uuid()`);
        await queryRunner.query(`DROP SEQUENCE IF EXISTS "prediction_log_id_seq"`);
        await queryRunner.query(`CREATE INDEX "IDX_4bc44dfa8fdd7fc9dcda1e6d3f" ON "prediction_log"  ("deployment_id", "request_key") WHERE "request_key" IS NOT NULL`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."IDX_4bc44dfa8fdd7fc9dcda1e6d3f"`);
        // Logged records are kept, numbered anew.
        await queryRunner.query(`ALTER TABLE "prediction_log" DROP CONSTRAINT "PK_fc4dd346ceac5a3478d98a25ca7"`);
        await queryRunner.query(`ALTER TABLE "prediction_log" DROP COLUMN "id"`);
        await queryRunner.query(`ALTER TABLE "prediction_log" ADD "id" BIGSERIAL NOT NULL`);
        await queryRunner.query(`ALTER TABLE "prediction_log" ADD CONSTRAINT "PK_fc4dd346ceac5a3478d98a25ca7" PRIMARY KEY ("id")`);
    }

}
