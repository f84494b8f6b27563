import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

// Outside src, so that this resolves to the same directory from src/*.ts (jest) and dist/*.js.
const PAGE_DIR = fileURLToPath(new URL('../page/', import.meta.url));

// The page loads its own files only and talks to this origin only: a script or stylesheet from
// anywhere else (a CDN) is refused by the browser, and no other site can frame the business data.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The analyst's web page at `/`, its scripts and styles under `/assets/`. The browser reads the
 * figures from the API's own routes; nothing here computes any.
 */
export function registerPage(app: FastifyInstance): void {
  void app.register(fastifyStatic, {
    root: PAGE_DIR,
    // One route per file found at start (`/`, `/index.html`, `/assets/…`) instead of a catch-all:
    // no route competes with the API's, and an unknown path keeps the API's 404.
    wildcard: false,
    dotfiles: 'ignore',
    setHeaders: (response) => {
      response.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
      response.setHeader('x-content-type-options', 'nosniff');
    },
  });
}
