#!/usr/bin/env node
import { main } from './program.js';

const code = await main(process.argv.slice(2));
// Exit once stdout and stderr are flushed (an exit before that can cut piped output short), and
// do exit: a config that imports application code may keep a timer or a connection open, which
// would otherwise keep the command alive after its work is done.
const flushed = (stream: NodeJS.WriteStream) =>
  new Promise<void>((resolve) => stream.write('', () => resolve()));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
