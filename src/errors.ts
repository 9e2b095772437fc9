/**
 * An error caused by the user's input (a file, a flag): the CLI prints its message as one line
 * and exits non-zero, without a stack trace. Messages name the file and say how to fix it.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}
