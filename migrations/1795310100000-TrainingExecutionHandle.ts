import { MigrationInterface, QueryRunner } from "typeorm";

/** Where a run's current execution runs (host, process group, start time), so that the execution taking it over can stop it. */
export class TrainingExecutionHandle1795310100000 implements MigrationInterface {
    name = 'TrainingExecutionHandle1795310100000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "training_run" ADD "execution_handle" jsonb`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "execution_handle"`);
    }
}
