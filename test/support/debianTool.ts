/**
 * Foreign clients from Debian for the tests (kcat, amqp-tools): the path of a command, installing
 * its package with apt when it is missing (the test machines run as root). Tests that need one
 * fail loudly when it cannot be installed: under CI=true nothing skips.
 */
import { spawnSync } from 'node:child_process';

const found = new Map<string, string>();

/** The path of `command`, installing the Debian package `pkg` when it is missing. Throws when it cannot. */
export function ensureDebianTool(command: string, pkg: string): string {
  const known = found.get(command);
  if (known) return known;
  const which = () =>
    spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).stdout.trim();
  if (!which()) {
    const install = `apt-get install -y ${pkg} || (apt-get update && apt-get install -y ${pkg})`;
    const r = spawnSync('sh', ['-c', install], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0)
      throw new Error(
        `${command} is missing and apt could not install ${pkg}: ${r.stderr.slice(-500)}`,
      );
  }
  const path = which();
  if (!path) throw new Error(`${command} not found after installing ${pkg}`);
  found.set(command, path);
  return path;
}
