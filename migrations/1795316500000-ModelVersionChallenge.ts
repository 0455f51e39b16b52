import { MigrationInterface, QueryRunner } from "typeorm";

/** The champion/challenger gate: the latest comparison of a candidate version, on the version. */
export class ModelVersionChallenge1795316500000 implements MigrationInterface {
    name = 'ModelVersionChallenge1795316500000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "model_version" ADD "challenge" jsonb`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "model_version" DROP COLUMN "challenge"`);
    }

}
