import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { CspDirectives } from '@lifecycle/access';
import type { FastifyInstance } from 'fastify';

// Outside src, so that this resolves to the same directory from src/*.ts (jest) and dist/*.js.
const PAGE_DIR = fileURLToPath(new URL('../page/', import.meta.url));

/**
 * The page loads its own files only and talks to this origin only: a script or stylesheet from
 * anywhere else (a CDN) is refused by the browser, and no other site can frame the business data.
 * Sent by helmet on every answer of the service (access.guardHttp), the page's files included.
 */
export const PAGE_CONTENT_SECURITY_POLICY: CspDirectives = {
  defaultSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
};

/**
 * The analyst's web page at `/`, its scripts and styles under `/assets/`. The browser reads the
 * figures from the API's own routes; nothing here computes any. The files are open (they hold no
 * data); the routes they read need a key with the `read` scope, which the page asks for.
 */
export function registerPage(app: FastifyInstance): void {
  void app.register(fastifyStatic, {
    root: PAGE_DIR,
    // One route per file found at start (`/`, `/index.html`, `/assets/…`) instead of a catch-all:
    // no route competes with the API's, and an unknown path keeps the API's 404.
    wildcard: false,
    dotfiles: 'ignore',
  });
}
