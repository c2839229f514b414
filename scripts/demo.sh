#!/usr/bin/env bash
# A demo that needs no cloud account: starts the local identity provider (oidc-provider,
# set up like an AWS Cognito domain) on 127.0.0.1, runs the real mcp-credd against it in a
# temporary HOME, and shows `status` and the files it wrote. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/test-deps.sh
echo "== building mcp-credd" >&2
cargo build --quiet --bin mcp-credd
bin="$root/target/debug/mcp-credd"

home=$(mktemp -d)
idp_pid=""
cleanup() {
  if [ -n "$idp_pid" ]; then kill "$idp_pid" 2>/dev/null || true; wait "$idp_pid" 2>/dev/null || true; fi
  rm -rf "$home"
}
trap cleanup EXIT

# Start the identity provider by PID and read its port from its first line.
fifo="$home/idp.out"
mkfifo "$fifo"
(cd tests/idp && TOKEN_TTL=3600 exec node oidc-server.mjs >"$fifo" 2>"$home/idp.log") &
idp_pid=$!
read -r -t 20 ready port <"$fifo" || { echo "demo: the identity provider did not start" >&2; cat "$home/idp.log" >&2; exit 1; }
[ "$ready" = READY ] || { echo "demo: unexpected output from the identity provider" >&2; exit 1; }
echo "== identity provider listening on 127.0.0.1:$port (pid $idp_pid)"

mkdir -p "$home/.config/mcp-credd"
cat >"$home/.config/mcp-credd/config.yaml" <<YAML
# Demo configuration: a Cognito-style machine-to-machine client on a local domain.
gateway_url: https://gateway.example.com
ingress:
  kind: cognito_m2m
  region: us-east-1
  user_pool_id: us-east-1_Demo
  client_id: m2m-client
  client_secret: {env: INGRESS_OAUTH_CLIENT_SECRET}
  scopes: [mcp-servers-unrestricted/read, mcp-servers-unrestricted/execute]
  domain: http://127.0.0.1:$port
servers:
  - name: currenttime
  - name: fininfo
YAML
echo "== config ($home/.config/mcp-credd/config.yaml)"
cat "$home/.config/mcp-credd/config.yaml"

# A VS Code file of "yours", with a comment and a server of your own: mcp-credd adds its
# entries and leaves the rest byte for byte.
mkdir -p "$home/.config/Code/User"
cat >"$home/.config/Code/User/mcp.json" <<'JSONC'
{
  // my own servers
  "servers": {
    "mine": {"type": "stdio", "command": "node", "args": ["server.js"]},
  },
}
JSONC

# XDG_CONFIG_HOME too: the editors' files must land in the temporary HOME, not yours.
run() { (cd "$home" && HOME="$home" XDG_CONFIG_HOME="$home/.config" INGRESS_OAUTH_CLIENT_SECRET=m2m-secret "$bin" "$@"); }
echo
echo "== mcp-credd (one-shot)"
run
echo
echo "== mcp-credd again (the stored token is reused)"
run
echo
echo "== mcp-credd status"
run status
echo
echo "== files"
ls -la "$home/.oauth-tokens"
shorten() { sed -E 's/(eyJ[A-Za-z0-9_-]{12})[A-Za-z0-9._-]+/\1.../g'; }
for f in ingress.json vscode_mcp.json mcp.json; do
  echo "-- $f (tokens shortened)"
  shorten <"$home/.oauth-tokens/$f"
done
echo "-- ~/.config/Code/User/mcp.json (tokens shortened)"
shorten <"$home/.config/Code/User/mcp.json"
echo
echo "== mcp-credd headers currenttime (for Claude Code's headersHelper)"
run headers currenttime | shorten
