/** Reading the read-model API of this same origin; every failure becomes a sentence for the page. */

export class ApiError extends Error {
  /** @param {string} message @param {number | undefined} status */
  constructor(message, status) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

// The API key lives in this tab's sessionStorage only: never in a URL (which a log, the history or
// a Referer would keep), gone when the tab closes; it goes out as the Authorization header.
const KEY = 'lifecycle.apiKey';

export const apiKey = {
  /** @returns {string | null} */
  get: () => sessionStorage.getItem(KEY),
  /** @param {string} secret */
  set: (secret) => sessionStorage.setItem(KEY, secret),
  forget: () => sessionStorage.removeItem(KEY),
};

/** True for a refusal that a (better) key would fix: no key, a wrong one, one without the read scope. */
export const needsKey = (error) => error instanceof ApiError && (error.status === 401 || error.status === 403);

// The service runs a few computations at once and refuses more (503): the page asks two at a time
// (the service's default), and waits as told when others are computing too.
const AT_ONCE = 2;
const RETRIES = 8;
let running = 0;
const queue = [];

async function inTurn(work) {
  if (running >= AT_ONCE) await new Promise((resolve) => queue.push(resolve));
  running += 1;
  try {
    return await work();
  } finally {
    running -= 1;
    queue.shift()?.();
  }
}

const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/**
 * GET `path` with the given query parameters (undefined ones left out) and its JSON answer.
 * @param {string} path
 * @param {Record<string, string | undefined>} [params]
 */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== undefined)).toString();
  const url = query ? `${path}?${query}` : path;
  const headers = { accept: 'application/json' };
  const secret = apiKey.get();
  if (secret) headers.authorization = `Bearer ${secret}`;
  let response;
  try {
    response = await inTurn(async () => {
      for (let attempt = 0; ; attempt += 1) {
        const answer = await fetch(url, { headers });
        if (answer.status !== 503 || attempt === RETRIES) return answer;
        await pause(Math.min(10, Number(answer.headers.get('retry-after')) || 1));
      }
    });
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
