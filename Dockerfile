# syntax=docker/dockerfile:1
#
# modelgov image: the API (`node dist/src/main.js`, the default command) and the worker
# (`node dist/jobs/worker.js`) from one image.
#
#   docker build -t modelgov .                                  # CPU onnxruntime (default)
#   docker build -t modelgov:cuda --target runtime-cuda \
#     --build-arg ONNXRUNTIME_NODE_INSTALL=cuda12 .             # CUDA 12 execution provider
#
# The CUDA variant needs an NVIDIA CUDA 12 runtime base image with cuDNN 9 (CUDA_IMAGE) and the
# onnxruntime CUDA provider fetched at install (ONNXRUNTIME_NODE_INSTALL=cuda12, which overrides
# the repository's .npmrc `onnxruntime-node-install=skip`); run it with the NVIDIA container
# toolkit (`docker run --gpus all`, or a GPU resource request in Kubernetes).

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build: every dependency (TypeScript), then the compiled server in dist/ ----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# No scripts yet: `prepare` builds, and the sources are not here yet.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY jobs ./jobs
COPY migrations ./migrations
COPY schema ./schema
COPY test ./test
COPY bench ./bench
RUN npm run build

# ---- deps: production dependencies only ------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
# `skip` keeps the CPU onnxruntime bundled in the package; `cuda12` adds the CUDA 12 provider.
ARG ONNXRUNTIME_NODE_INSTALL=skip
ENV ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL}
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the package's own `prepare` (a TypeScript build) cannot run without the dev
# dependencies; onnxruntime-node's install step is then run on its own, honouring the flag above.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm rebuild onnxruntime-node \
  && npm cache clean --force

# ---- runtime (CPU): the default target ------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime-cpu
ENV NODE_ENV=production \
    PORT=4000 \
    DATA_DIR=/var/lib/modelgov \
    SECRETS_DIR=/var/lib/modelgov/.secrets \
    INFERENCE_PROVIDERS=cpu
WORKDIR /app
RUN groupadd --system --gid 10001 modelgov \
  && useradd --system --uid 10001 --gid modelgov --home-dir /var/lib/modelgov --shell /usr/sbin/nologin modelgov \
  && mkdir -p /var/lib/modelgov && chown modelgov:modelgov /var/lib/modelgov \
  && apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER 10001:10001
VOLUME ["/var/lib/modelgov"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini as PID 1 reaps the trainer process groups the worker kills; signals go straight to node.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]

# ---- runtime (CUDA 12): `--target runtime-cuda --build-arg ONNXRUNTIME_NODE_INSTALL=cuda12` ---------
FROM ${NODE_IMAGE} AS node
FROM ${CUDA_IMAGE} AS runtime-cuda
ENV NODE_ENV=production \
    PORT=4000 \
    DATA_DIR=/var/lib/modelgov \
    SECRETS_DIR=/var/lib/modelgov/.secrets \
    INFERENCE_PROVIDERS=cuda,cpu
WORKDIR /app
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 modelgov \
  && useradd --system --uid 10001 --gid modelgov --home-dir /var/lib/modelgov --shell /usr/sbin/nologin modelgov \
  && mkdir -p /var/lib/modelgov && chown modelgov:modelgov /var/lib/modelgov \
  && apt-get update && apt-get install -y --no-install-recommends tini ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER 10001:10001
VOLUME ["/var/lib/modelgov"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]

# The default target: `docker build .` gives the CPU image.
FROM runtime-cpu AS runtime
