/**
 * `access.users` accounts for the suites that test access rules: a reader from anywhere, a writer from
 * loopback (the tests' own address), and a writer from a network the tests never come from.
 */
export const ACCESS_USERS = `
    - username: console
      password: read-only
      roles: [read]
      host: '*'
    - username: backend
      password: s3cret
      roles: [read, write]
      host: '127.*.*.*'
    - username: remote
      password: pw
      roles: [read, write]
      host: '10.*.*.*'`;

/** The Authorization header of HTTP Basic for `user`. */
export function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}
