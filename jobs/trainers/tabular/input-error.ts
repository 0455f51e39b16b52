/** The trainer's bad-input error: its message becomes one stderr line, and the exit code is 2. */

export class InputError extends Error {}
