#!/usr/bin/env bash
# Installs what the integration tests need, on a fresh machine: the local identity
# provider's Node packages (oidc-provider, playwright-core), Chromium (headless
# browser login), systemd-analyze, moto and the MCP Python SDK. Idempotent and quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test-deps: '$1' is required ($2)" >&2; exit 1; }; }
need node "Node.js 18+ runs the local identity provider"
need npm "npm installs the local identity provider"
need git "git decides which workspace files would be committed (tests/lifecycle.rs)"

# systemd-analyze checks the user unit; systemd --user and systemctl run it (tests/service.rs).
if ! command -v systemd-analyze >/dev/null 2>&1 || [ ! -x /usr/lib/systemd/systemd ] || ! command -v systemctl >/dev/null 2>&1; then
  echo "test-deps: installing systemd (a user manager for the service tests, systemd-analyze)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq systemd >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq systemd >/dev/null; fi
fi

# Chromium drives the real-browser login test (tests/idp/browser-login.mjs, via playwright-core).
if [ ! -x /usr/bin/chromium ]; then
  echo "test-deps: installing chromium (for the headless-browser login test)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; fi
fi

# Node packages for tests/idp, exactly as locked.
if [ ! -d tests/idp/node_modules/oidc-provider ] || [ tests/idp/package-lock.json -nt tests/idp/node_modules/.package-lock.json ]; then
  echo "test-deps: installing tests/idp (oidc-provider)" >&2
  (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi

# moto (a local Cognito API) for the service-account tests, in a private virtualenv.
MOTO_VERSION=5.2.5
venv=tests/moto/.venv
if ! "$venv/bin/python" -c "import moto, boto3, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  need python3 "Python 3 runs moto, the local Cognito API"
  echo "test-deps: installing moto $MOTO_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[cognitoidp,server]==$MOTO_VERSION"
fi

# The official MCP Python SDK: a protected MCP server and the client that must get in with
# what mcp-credd wrote (tests/mcp), in its own virtualenv.
MCP_VERSION=2.3.0
mvenv=tests/mcp/.venv
if ! "$mvenv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_VERSION')" 2>/dev/null; then
  need python3 "Python 3 runs the MCP test server and client"
  echo "test-deps: installing mcp $MCP_VERSION into $mvenv" >&2
  python3 -m venv "$mvenv"
  "$mvenv/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_VERSION"
fi
