import type { Credentials } from './types';

/** The `Authorization` header for `access.users` credentials, or none. */
export function authHeaders(credentials: Credentials | undefined): Record<string, string> {
  if (!credentials) return {};
  const token = Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64');
  return { authorization: `Basic ${token}` };
}
