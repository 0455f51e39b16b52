#!/bin/sh
# Prints a .env for compose.yaml with freshly generated secrets:  deploy/generate-env.sh > .env
# Keep the file private (chmod 600); it is git-ignored. Needs openssl.
set -eu
umask 077
echo "POSTGRES_PASSWORD=$(openssl rand -hex 24)"
echo "AUTH_JWT_SECRET=$(openssl rand -base64 48 | tr -d '\n')"
# Ed25519 private key, PKCS#8 PEM in base64 (one line), as AUDIT_SIGNING_KEY accepts.
echo "AUDIT_SIGNING_KEY=$(openssl genpkey -algorithm ed25519 | base64 | tr -d '\n')"
echo "NOTIFY_SECRET_KEY=$(openssl rand -hex 32)"
