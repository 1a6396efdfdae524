import { BacktrackError } from '@backtrack/core';
import { describe, expect, it } from 'vitest';
import { CLI_ERROR_CODES, CliError, EXIT } from './errors.js';

describe('CliError', () => {
  it('is a BacktrackError with its own brand, so a catch on BacktrackError sees it', () => {
    const error = new CliError('the queue orders.dlq does not exist');
    expect(error).toBeInstanceOf(BacktrackError);
    expect(error).toBeInstanceOf(CliError);
    expect(Object.hasOwn(CliError, 'brand')).toBe(true);
    expect(CliError.brand).toBe('@backtrack/cli.CliError');
    expect(error.retriable).toBe(false);
    expect(error.toJSON()).toMatchObject({
      name: 'CliError',
      code: CLI_ERROR_CODES.FAILED,
      message: 'the queue orders.dlq does not exist',
    });
  });

  it('keeps its exit codes: 1 with BT_ERR_CLI by default, 2 with BT_ERR_CLI_USAGE for usage', () => {
    expect(new CliError('failed')).toMatchObject({ exitCode: EXIT.Error, code: 'BT_ERR_CLI' });
    expect(new CliError('bad flag', EXIT.Usage)).toMatchObject({
      exitCode: EXIT.Usage,
      code: 'BT_ERR_CLI_USAGE',
    });
    const locked = new CliError('held', EXIT.Locked, 'BT_ERR_ROLLBACK_RUN_LOCKED', 'wait');
    expect(locked).toMatchObject({ exitCode: 3, code: 'BT_ERR_ROLLBACK_RUN_LOCKED', hint: 'wait' });
  });

  it('tells itself apart from another class named CliError', () => {
    class Other extends BacktrackError {}
    Object.defineProperty(Other, 'name', { value: 'CliError' });
    expect(new Other('BT_ERR_CLI', 'x')).not.toBeInstanceOf(CliError);
    expect(new CliError('x')).not.toBeInstanceOf(Other);
  });

  it('redacts the password of a URL in its message and hint', () => {
    const error = new CliError(
      'cannot connect to redis://app:s3cret@redis.internal:6379',
      EXIT.Error,
      CLI_ERROR_CODES.CONNECTION,
      'check redis://app:s3cret@redis.internal:6379',
    );
    expect(error.message).not.toContain('s3cret');
    expect(error.hint).not.toContain('s3cret');
    expect(error.message).toContain('app');
  });
});
