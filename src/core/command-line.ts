import { parseArgs } from 'node:util';

/** One option a command accepts, as `util.parseArgs` declares it, with the words its help shows. */
export interface CommandOption {
  type: 'string' | 'boolean';
  /** May be given more than once; the values arrive as an array. */
  multiple?: boolean;
  /** The placeholder shown after a string option in help (`<file>`). */
  value?: string;
  /** What the option does, in one line. */
  help: string;
}

/** A positional argument a command takes, in order. */
export interface CommandPositional {
  name: string;
  required: boolean;
  help: string;
}

/** What a command's `run` receives: its options by name and its positionals by name. */
export interface CommandArgs {
  options: Record<string, string | boolean | string[] | undefined>;
  positionals: Record<string, string | undefined>;
}

/** A command-line usage error: said on stderr with the command's usage, exit status 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage follows the message, when one was reached. */
    readonly command?: Command,
  ) {
    super(message);
  }
}

/** A subcommand: the words that name it, its help and what it does. */
export interface Command {
  /** The words after the program's name, space-separated (`audit verify`). */
  name: string;
  /** One line: what it does, for the command list. */
  summary: string;
  /** Further paragraphs of its help (exit codes, where it reads from). */
  details?: string;
  options?: Record<string, CommandOption>;
  positionals?: CommandPositional[];
  /** Example invocations, without the program's name. */
  examples: string[];
  /**
   * Does the work; returns the exit status. Called only once the arguments have been checked, and
   * never for `--help`, so nothing is read, connected to or written before then.
   */
  run(args: CommandArgs): Promise<number>;
}

/** A program: its name as typed, a sentence on what it is, and its commands. */
export interface Program {
  name: string;
  description: string;
  commands: readonly Command[];
}

/** Where a program writes; the real process's streams by default. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const HELP_FLAGS = new Set(['-h', '--help']);

/**
 * Runs the command `argv` names, or prints help (`--help`/`-h` anywhere before `--`, exit 0, the
 * command not run), or says on stderr what was wrong with the words typed and the closest valid
 * one (exit 2). Errors the command itself throws propagate.
 */
export async function runCommandLine(program: Program, argv: readonly string[], io: CommandIo): Promise<number> {
  try {
    return await dispatch(program, argv, io);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const usage = e.command ? usageLine(program, e.command) : `usage: ${program.name} <command> [options]`;
    const more = e.command ? `${program.name} ${e.command.name} --help` : `${program.name} --help`;
    io.stderr(`${program.name}: ${e.message}\n${usage}\n(see ${more})\n`);
    return 2;
  }
}

async function dispatch(program: Program, argv: readonly string[], io: CommandIo): Promise<number> {
  const end = argv.indexOf('--');
  const words = end === -1 ? [...argv] : argv.slice(0, end);
  const wantsHelp = words.some((w) => HELP_FLAGS.has(w));
  const named = words.filter((w) => !w.startsWith('-'));

  // The longest command whose words begin what was typed: `audit verify-export` before `audit`.
  const command = [...program.commands]
    .sort((a, b) => b.name.split(' ').length - a.name.split(' ').length)
    .find((c) => c.name.split(' ').every((w, i) => argv[i] === w));

  if (!command) {
    const group = groupOf(program, named[0]);
    if (wantsHelp && (argv.length === 0 || HELP_FLAGS.has(argv[0]))) {
      io.stdout(programHelp(program));
      return 0;
    }
    if (group && (HELP_FLAGS.has(argv[1] ?? '') || (argv.length === 2 && wantsHelp))) {
      io.stdout(groupHelp(program, group));
      return 0;
    }
    if (argv.length === 0) throw new UsageError('missing command');
    if (argv[0].startsWith('-')) throw new UsageError(`unknown option ${argv[0]} before a command (did you mean --help?)`);
    if (group) {
      const subs = program.commands.filter((c) => c.name.startsWith(`${group} `));
      if (!argv[1]) throw new UsageError(`"${group}" needs a subcommand: ${subs.map((c) => c.name.slice(group.length + 1)).join(', ')}`);
      const typed = `${group} ${argv[1]}`;
      throw new UsageError(`unknown command "${typed}" (did you mean "${closest(typed, subs.map((c) => c.name))}"?)`);
    }
    const names = program.commands.map((c) => c.name);
    throw new UsageError(`unknown command "${argv[0]}" (did you mean "${closest(argv[0], [...names, ...groups(program)])}"?)`);
  }

  if (wantsHelp) {
    io.stdout(commandHelp(program, command));
    return 0;
  }
  return command.run(parseCommandArgs(command, argv.slice(command.name.split(' ').length)));
}

/** Checks `args` against what `command` declares; throws a `UsageError` naming the first problem. */
export function parseCommandArgs(command: Command, args: readonly string[]): CommandArgs {
  const declared = command.options ?? {};
  const { tokens, values, positionals } = parseArgs({
    args: [...args],
    options: Object.fromEntries(Object.entries(declared).map(([name, o]) => [name, { type: o.type, multiple: o.multiple ?? false }])),
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const known = Object.keys(declared).map((n) => `--${n}`);
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const option = declared[t.name];
    if (!option) {
      const hint = known.length ? ` (did you mean ${closest(t.rawName, known)}?)` : ` ("${command.name}" takes no options)`;
      throw new UsageError(`unknown option ${t.rawName} for "${command.name}"${hint}`, command);
    }
    if (t.rawName !== `--${t.name}`) throw new UsageError(`unknown option ${t.rawName} for "${command.name}" (did you mean --${t.name}?)`, command);
    if (option.type === 'string' && (t.value === undefined || t.value === '')) {
      throw new UsageError(`option --${t.name} needs a value${option.value ? ` (${option.value})` : ''}`, command);
    }
    if (option.type === 'boolean' && t.inlineValue) throw new UsageError(`option --${t.name} takes no value`, command);
  }
  const expected = command.positionals ?? [];
  if (positionals.length > expected.length) {
    throw new UsageError(`unexpected argument "${positionals[expected.length]}" for "${command.name}"`, command);
  }
  const missing = expected.find((p, i) => p.required && positionals[i] === undefined);
  if (missing) throw new UsageError(`"${command.name}" needs <${missing.name}>`, command);
  return {
    options: values,
    positionals: Object.fromEntries(expected.map((p, i) => [p.name, positionals[i]])),
  };
}

/** The candidate nearest to `typed` by edit distance (ties: the first listed). */
export function closest(typed: string, candidates: readonly string[]): string {
  let best = candidates[0];
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(typed, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

/** The first words shared by several commands (`audit`), which answer help with their subcommands. */
function groups(program: Program): string[] {
  return [...new Set(program.commands.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]))];
}

function groupOf(program: Program, word: string | undefined): string | undefined {
  return groups(program).find((g) => g === word);
}

function usageLine(program: Program, command: Command): string {
  const options = Object.entries(command.options ?? {}).map(([name, o]) => {
    const flag = o.type === 'string' ? `--${name} ${o.value ?? '<value>'}` : `--${name}`;
    return `[${flag}]${o.multiple ? '...' : ''}`;
  });
  const positionals = (command.positionals ?? []).map((p) => (p.required ? `<${p.name}>` : `[<${p.name}>]`));
  return ['usage:', program.name, command.name, ...positionals, ...options].join(' ');
}

function table(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}\n`).join('');
}

/** The help `<program> <command> --help` prints. */
export function commandHelp(program: Program, command: Command): string {
  const options: Array<[string, string]> = Object.entries(command.options ?? {}).map(([name, o]) => [
    o.type === 'string' ? `--${name} ${o.value ?? '<value>'}` : `--${name}`,
    o.help + (o.multiple ? ' (repeatable)' : ''),
  ]);
  options.push(['-h, --help', 'print this help and exit without doing anything']);
  const positionals: Array<[string, string]> = (command.positionals ?? []).map((p) => [`<${p.name}>`, p.help]);
  return (
    `${usageLine(program, command)}\n\n${command.summary}\n` +
    (command.details ? `\n${command.details}\n` : '') +
    (positionals.length ? `\narguments:\n${table(positionals)}` : '') +
    `\noptions:\n${table(options)}` +
    `\nexample${command.examples.length > 1 ? 's' : ''}:\n${command.examples.map((e) => `  ${program.name} ${e}\n`).join('')}`
  );
}

function programHelp(program: Program): string {
  return (
    `usage: ${program.name} <command> [options]\n\n${program.description}\n\ncommands:\n` +
    table(program.commands.map((c) => [c.name, c.summary])) +
    `\nRun "${program.name} <command> --help" for a command's options and an example; help does nothing else.\n`
  );
}

function groupHelp(program: Program, group: string): string {
  const subs = program.commands.filter((c) => c.name.startsWith(`${group} `));
  return (
    `usage: ${program.name} ${group} <command> [options]\n\ncommands:\n` +
    table(subs.map((c) => [c.name, c.summary])) +
    `\nRun "${program.name} ${group} <command> --help" for a command's options and an example.\n`
  );
}
