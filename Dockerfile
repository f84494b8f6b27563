# syntax=docker/dockerfile:1
# The `lifecycle` command in an image: docker compose runs it as the projector, ingest and api
# services (docker-compose.yml); `docker run IMAGE <subcommand> …` runs any other subcommand.

# ---- build: install every dependency and compile the workspace ---------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# turbo (the build runner) phones home unless told not to; it also warns without a .git: harmless.
ENV TURBO_TELEMETRY_DISABLED=1 \
    DO_NOT_TRACK=1 \
    CI=true
# The manifests and sources the build needs, nothing else (.dockerignore keeps node_modules,
# dist, .lifecycle, .git and .turbo out of the context).
COPY package.json package-lock.json turbo.json tsconfig.base.json ./
COPY packages ./packages
COPY services ./services
# The dependencies' patches, which the root `postinstall` (patch-package) applies during npm ci.
COPY patches ./patches
# npm ci installs exactly the lock file, patches it and runs the root `prepare` script: `turbo run build`.
RUN npm ci --no-audit --no-fund
# Check the build produced the entry point, then drop the dev dependencies (turbo, tsc, swc, jest).
RUN test -f services/cli/dist/main.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && node services/cli/dist/main.js --help >/dev/null

# ---- runtime: the built workspace and its production dependencies ------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# The workspace packages are reached through node_modules/@lifecycle/* links into packages/ and
# services/, so the whole tree is copied (sources included: they are small, and the maps point at them).
COPY --from=build --chown=node:node /app ./
# Not root. Without --database / LIFECYCLE_DATABASE_URL the embedded store goes to /app/.lifecycle.
USER node
ENTRYPOINT ["node", "services/cli/dist/main.js"]
CMD ["--help"]
