/** Reading the read-model API of this same origin; every failure becomes a sentence for the page. */

export class ApiError extends Error {
  /** @param {string} message @param {number | undefined} status */
  constructor(message, status) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/**
 * GET `path` with the given query parameters (undefined ones left out) and its JSON answer.
 * @param {string} path
 * @param {Record<string, string | undefined>} [params]
 */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== undefined)).toString();
  const url = query ? `${path}?${query}` : path;
  let response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json' } });
  } catch {
    throw new ApiError(`The service did not answer ${path}: is it still running?`, undefined);
  }
  if (!response.ok) {
    // The API answers {error, message}; a proxy in between may answer anything.
    const body = await response.json().catch(() => ({}));
    const reason = typeof body.message === 'string' ? body.message : response.statusText;
    throw new ApiError(`${path} answered ${response.status}: ${reason}`, response.status);
  }
  return response.json();
}
