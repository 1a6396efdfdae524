#!/usr/bin/env node
import { main } from './program.js';

// Set the exit code and let Node exit by itself once stdout is flushed (never process.exit,
// which can cut piped output short).
process.exitCode = await main(process.argv.slice(2));
