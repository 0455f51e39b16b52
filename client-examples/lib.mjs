// Minimal helpers shared by the examples: a GraphQL call that throws on errors, with the
// server's error code and request id in the message (quote the request id when reporting).

export const URL_BASE = process.env.MODELGOV_URL ?? 'http://localhost:4000';
export const TOKEN = process.env.MODELGOV_TOKEN;

export function authHeader(token = TOKEN) {
  if (!token) throw new Error('set MODELGOV_TOKEN (npm start prints one per role)');
  return token.startsWith('mgk_') ? `ApiKey ${token}` : `Bearer ${token}`;
}

export async function gql(query, variables = {}, token = TOKEN) {
  const res = await fetch(`${URL_BASE}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: authHeader(token) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors?.length) {
    const e = body.errors[0];
    throw new Error(`${e.extensions?.code}${e.extensions?.reason ? `/${e.extensions.reason}` : ''}: ${e.message} (request ${e.extensions?.requestId})`);
  }
  return body.data;
}
