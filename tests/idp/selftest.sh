#!/usr/bin/env bash
# Self-test of the local OpenID provider (oidc-server.mjs) using curl only.
# Starts the server(s) by PID, checks client_credentials (basic + post, with and
# without scope, wrong secret), discovery, and the full authorization-code +
# PKCE flow through the dev login/consent forms, then refresh-token rotation
# and reuse detection. Exits non-zero on the first failure.
set -Eeuo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
SERVER_PID=""
CURL=(curl -sS --max-time 5)
REDIRECT_URI="http://127.0.0.1:8976/callback"
PASSED=0

cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'fail "unexpected command failure at line $LINENO"' ERR

fail() {
  echo "FAIL: $*" >&2
  if [[ -f "$WORK/server.err" ]]; then
    echo "--- server stderr (tail) ---" >&2
    tail -n 30 "$WORK/server.err" >&2 || true
  fi
  echo "selftest: $PASSED passed, 1 failed" >&2
  exit 1
}
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }

# json FILE EXPR: evaluate a JS expression over the parsed JSON `j` (prints "" for undefined).
json() {
  node -e '
    const fs = require("fs");
    const j = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const v = (new Function("j", "return (" + process.argv[2] + ")"))(j);
    process.stdout.write(v === undefined || v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v)));
  ' -- "$1" "$2"
}
# jwt_payload TOKEN > FILE
jwt_payload() {
  node -e 'process.stdout.write(Buffer.from(process.argv[1].split(".")[1], "base64url").toString())' -- "$1"
}

start_server() { # env assignments are passed through by the caller
  : >"$WORK/server.out"
  : >"$WORK/server.err"
  env "$@" node "$DIR/oidc-server.mjs" >"$WORK/server.out" 2>"$WORK/server.err" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 150); do # up to 15 s
    if read -r word port <"$WORK/server.out" 2>/dev/null && [[ "$word" == "READY" ]]; then
      PORT="$port"
      break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited before READY"
    sleep 0.1
  done
  [[ -n "$PORT" ]] || fail "no READY line within 15 s"
  [[ "$(wc -l <"$WORK/server.out")" -eq 1 ]] || fail "stdout must hold exactly one line"
  BASE="http://127.0.0.1:$PORT"
  echo "# server pid $SERVER_PID listening on $BASE"
}

stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    local pid="$SERVER_PID"
    SERVER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do # up to 5 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      fail "server did not exit on SIGTERM"
    fi
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    [[ "$rc" -eq 0 ]] || fail "server exited with status $rc on SIGTERM"
  fi
}

# post_token OUTFILE curl-args... ; prints the HTTP status
post_token() {
  local out="$1"; shift
  "${CURL[@]}" -o "$out" -w '%{http_code}' "$@" "$BASE/oauth2/token"
}

# check_cc_token FILE EXPECTED_SCOPE EXPECTED_TTL CLIENT_ID
check_cc_token() {
  local f="$1" scope="$2" ttl="$3" cid="$4"
  [[ "$(json "$f" 'j.token_type')" == "Bearer" ]] || fail "token_type: $(cat "$f")"
  [[ "$(json "$f" 'j.expires_in')" == "$ttl" ]] || fail "expires_in != $ttl: $(cat "$f")"
  [[ "$(json "$f" 'j.scope')" == "$scope" ]] || fail "scope != '$scope': $(cat "$f")"
  local at; at="$(json "$f" 'j.access_token')"
  [[ "$(tr -cd . <<<"$at" | wc -c)" -eq 2 ]] || fail "access_token is not a JWT: $at"
  jwt_payload "$at" >"$WORK/payload.json"
  [[ "$(json "$WORK/payload.json" 'typeof j.exp === "number" && j.exp - j.iat')" == "$ttl" ]] \
    || fail "JWT exp-iat != $ttl: $(cat "$WORK/payload.json")"
  [[ "$(json "$WORK/payload.json" 'j.client_id')" == "$cid" ]] || fail "JWT client_id: $(cat "$WORK/payload.json")"
  [[ "$(json "$WORK/payload.json" 'j.iss')" == "$BASE" ]] || fail "JWT iss: $(cat "$WORK/payload.json")"
  [[ "$(json "$WORK/payload.json" 'j.scope')" == "$scope" ]] || fail "JWT scope: $(cat "$WORK/payload.json")"
}

if [[ ! -d "$DIR/node_modules/oidc-provider" ]]; then
  echo "# installing node modules (npm ci)"
  (cd "$DIR" && timeout 300 npm ci --no-audit --no-fund >&2) || fail "npm ci"
fi

SCOPES="mcp-servers-unrestricted/read mcp-servers-unrestricted/execute"

############ instance 1: built-in clients, short TOKEN_TTL ############
start_server PORT=0 TOKEN_TTL=5 AC_TTL=120 RT_TTL=600

# discovery
code=$("${CURL[@]}" -o "$WORK/disc.json" -w '%{http_code}' "$BASE/.well-known/openid-configuration")
[[ "$code" == 200 ]] || fail "discovery HTTP $code"
[[ "$(json "$WORK/disc.json" 'j.issuer')" == "$BASE" ]] || fail "discovery issuer"
[[ "$(json "$WORK/disc.json" 'j.token_endpoint')" == "$BASE/oauth2/token" ]] || fail "discovery token_endpoint"
[[ "$(json "$WORK/disc.json" 'j.authorization_endpoint')" == "$BASE/oauth2/authorize" ]] || fail "discovery authorization_endpoint"
[[ "$(json "$WORK/disc.json" 'j.grant_types_supported.includes("client_credentials")')" == true ]] || fail "discovery grant types"
[[ "$(json "$WORK/disc.json" 'j.scopes_supported.includes("mcp-servers-unrestricted/execute")')" == true ]] || fail "discovery scopes"
ok "discovery"

# client_credentials, client_secret_basic, explicit scopes
code=$(post_token "$WORK/t1.json" -u m2m-client:m2m-secret -d grant_type=client_credentials --data-urlencode "scope=$SCOPES")
[[ "$code" == 200 ]] || fail "cc basic HTTP $code: $(cat "$WORK/t1.json")"
check_cc_token "$WORK/t1.json" "$SCOPES" 5 m2m-client
ok "client_credentials client_secret_basic with scope"

# single scope
code=$(post_token "$WORK/t1b.json" -u m2m-client:m2m-secret -d grant_type=client_credentials -d "scope=mcp-servers-unrestricted/read")
[[ "$code" == 200 ]] || fail "cc single scope HTTP $code: $(cat "$WORK/t1b.json")"
check_cc_token "$WORK/t1b.json" "mcp-servers-unrestricted/read" 5 m2m-client
ok "client_credentials single scope"

# client_credentials, client_secret_post, explicit scopes
code=$(post_token "$WORK/t2.json" -d grant_type=client_credentials -d client_id=m2m-post -d client_secret=post-secret --data-urlencode "scope=$SCOPES")
[[ "$code" == 200 ]] || fail "cc post HTTP $code: $(cat "$WORK/t2.json")"
check_cc_token "$WORK/t2.json" "$SCOPES" 5 m2m-post
ok "client_credentials client_secret_post with scope"

# without scope: all of the client's scopes
code=$(post_token "$WORK/t3.json" -u m2m-client:m2m-secret -d grant_type=client_credentials)
[[ "$code" == 200 ]] || fail "cc no scope HTTP $code: $(cat "$WORK/t3.json")"
check_cc_token "$WORK/t3.json" "$SCOPES" 5 m2m-client
code=$(post_token "$WORK/t3b.json" -d grant_type=client_credentials -d client_id=m2m-post -d client_secret=post-secret)
[[ "$code" == 200 ]] || fail "cc post no scope HTTP $code: $(cat "$WORK/t3b.json")"
check_cc_token "$WORK/t3b.json" "$SCOPES" 5 m2m-post
ok "client_credentials without scope"

# wrong secret -> 401 invalid_client
code=$(post_token "$WORK/t4.json" -u m2m-client:wrong -d grant_type=client_credentials)
[[ "$code" == 401 && "$(json "$WORK/t4.json" 'j.error')" == invalid_client ]] || fail "wrong secret: HTTP $code $(cat "$WORK/t4.json")"
code=$(post_token "$WORK/t4b.json" -d grant_type=client_credentials -d client_id=m2m-post -d client_secret=wrong)
[[ "$code" == 401 && "$(json "$WORK/t4b.json" 'j.error')" == invalid_client ]] || fail "wrong post secret: HTTP $code $(cat "$WORK/t4b.json")"
# wrong auth method for the client -> invalid_client too
code=$(post_token "$WORK/t4c.json" -d grant_type=client_credentials -d client_id=m2m-client -d client_secret=m2m-secret)
[[ "$code" == 401 && "$(json "$WORK/t4c.json" 'j.error')" == invalid_client ]] || fail "basic client via post: HTTP $code $(cat "$WORK/t4c.json")"
ok "wrong secret / wrong auth method -> 401 invalid_client"

# scope not allowed -> 400 invalid_scope
code=$(post_token "$WORK/t5.json" -u m2m-client:m2m-secret -d grant_type=client_credentials -d scope=other/thing)
[[ "$code" == 400 && "$(json "$WORK/t5.json" 'j.error')" == invalid_scope ]] || fail "bad scope: HTTP $code $(cat "$WORK/t5.json")"
ok "unknown scope -> 400 invalid_scope"

############ authorization code + PKCE ############
JAR="$WORK/cookies.txt"
VERIFIER="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
CHALLENGE="$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(process.argv[1]).digest("base64url"))' -- "$VERIFIER")"
STATE="st-$RANDOM"

# GET URL -> prints "<status> <absolute redirect url>"
get() { "${CURL[@]}" -b "$JAR" -c "$JAR" -o "$WORK/page.html" -w '%{http_code} %{redirect_url}\n' "$1"; }
# POST URL form-args... -> prints "<status> <absolute redirect url>"
post() { local u="$1"; shift; "${CURL[@]}" -b "$JAR" -c "$JAR" -o "$WORK/page.html" -w '%{http_code} %{redirect_url}\n' "$@" "$u"; }

# PKCE is required: no code_challenge -> error redirect to the callback
read -r st loc < <(get "$BASE/oauth2/authorize?client_id=web-client&response_type=code&redirect_uri=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' -- "$REDIRECT_URI")&scope=openid&state=$STATE")
[[ "$st" == 303 && "$loc" == "$REDIRECT_URI?error=invalid_request"* ]] || fail "authorize without PKCE: $st $loc"
ok "PKCE required"

AUTH_URL="$BASE/oauth2/authorize?$(node -e '
  const [ru, ch, st] = process.argv.slice(1);
  process.stdout.write(new URLSearchParams({client_id: "web-client", response_type: "code", redirect_uri: ru,
    scope: "openid offline_access profile", state: st, code_challenge: ch, code_challenge_method: "S256"}).toString());
' -- "$REDIRECT_URI" "$CHALLENGE" "$STATE")"

read -r st loc < <(get "$AUTH_URL")
[[ "$st" == 303 && "$loc" == "$BASE/interaction/"* ]] || fail "authorize: $st $loc"
LOGIN_URL="$loc"
read -r st loc < <(get "$LOGIN_URL")
[[ "$st" == 200 ]] && grep -q 'name="login"' "$WORK/page.html" && grep -q 'name="prompt" value="login"' "$WORK/page.html" \
  || fail "login form: $st"
read -r st loc < <(post "$LOGIN_URL" -d prompt=login -d login=alice -d password=anything)
[[ "$st" == 303 && "$loc" == "$BASE/oauth2/authorize/"* ]] || fail "login submit: $st $loc"
read -r st loc < <(get "$loc")
[[ "$st" == 303 && "$loc" == "$BASE/interaction/"* ]] || fail "resume after login: $st $loc"
CONSENT_URL="$loc"
read -r st loc < <(get "$CONSENT_URL")
[[ "$st" == 200 ]] && grep -q 'name="prompt" value="consent"' "$WORK/page.html" || fail "consent form: $st"
read -r st loc < <(post "$CONSENT_URL" -d prompt=consent)
[[ "$st" == 303 && "$loc" == "$BASE/oauth2/authorize/"* ]] || fail "consent submit: $st $loc"
read -r st loc < <(get "$loc")
[[ "$st" == 303 && "$loc" == "$REDIRECT_URI?"* ]] || fail "final redirect: $st $loc"
CALLBACK="$loc"
CODE="$(node -e 'const u = new URL(process.argv[1]); process.stdout.write(u.searchParams.get("code") || "")' -- "$CALLBACK")"
GOT_STATE="$(node -e 'const u = new URL(process.argv[1]); process.stdout.write(u.searchParams.get("state") || "")' -- "$CALLBACK")"
[[ -n "$CODE" && "$GOT_STATE" == "$STATE" ]] || fail "callback without code/state: $CALLBACK"
ok "authorize -> login -> consent -> callback with code"

# wrong code_verifier -> invalid_grant (PKCE is checked before the code is consumed)
WRONG_VERIFIER="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
code=$(post_token "$WORK/acw.json" -u web-client:web-secret -d grant_type=authorization_code -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$WRONG_VERIFIER")
[[ "$code" == 400 && "$(json "$WORK/acw.json" 'j.error')" == invalid_grant ]] || fail "wrong verifier: HTTP $code $(cat "$WORK/acw.json")"
ok "wrong code_verifier rejected"

code=$(post_token "$WORK/ac.json" -u web-client:web-secret -d grant_type=authorization_code -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER")
[[ "$code" == 200 ]] || fail "code exchange HTTP $code: $(cat "$WORK/ac.json")"
for k in access_token refresh_token id_token expires_in token_type scope; do
  [[ -n "$(json "$WORK/ac.json" "j.$k")" ]] || fail "code exchange reply lacks $k: $(cat "$WORK/ac.json")"
done
[[ "$(json "$WORK/ac.json" 'j.expires_in')" == 120 ]] || fail "AC_TTL not applied: $(cat "$WORK/ac.json")"
jwt_payload "$(json "$WORK/ac.json" 'j.access_token')" >"$WORK/acp.json"
[[ "$(json "$WORK/acp.json" 'j.sub')" == alice && "$(json "$WORK/acp.json" 'j.exp - j.iat')" == 120 ]] || fail "AC access token JWT: $(cat "$WORK/acp.json")"
RT0="$(json "$WORK/ac.json" 'j.refresh_token')"
ok "code exchange with code_verifier (scope: $(json "$WORK/ac.json" 'j.scope'))"

refresh() { post_token "$1" -u web-client:web-secret -d grant_type=refresh_token -d "refresh_token=$2"; }

code=$(refresh "$WORK/r1.json" "$RT0")
[[ "$code" == 200 ]] || fail "refresh 1 HTTP $code: $(cat "$WORK/r1.json")"
RT1="$(json "$WORK/r1.json" 'j.refresh_token')"
[[ -n "$RT1" && "$RT1" != "$RT0" ]] || fail "refresh 1 did not rotate: $(cat "$WORK/r1.json")"
[[ -n "$(json "$WORK/r1.json" 'j.access_token')" && "$(json "$WORK/r1.json" 'j.expires_in')" == 120 ]] || fail "refresh 1 reply: $(cat "$WORK/r1.json")"
code=$(refresh "$WORK/r2.json" "$RT1")
[[ "$code" == 200 ]] || fail "refresh 2 HTTP $code: $(cat "$WORK/r2.json")"
RT2="$(json "$WORK/r2.json" 'j.refresh_token')"
[[ -n "$RT2" && "$RT2" != "$RT1" ]] || fail "refresh 2 did not rotate: $(cat "$WORK/r2.json")"
ok "refresh_token grant twice with rotation"

code=$(refresh "$WORK/r3.json" "$RT0")
[[ "$code" == 400 && "$(json "$WORK/r3.json" 'j.error')" == invalid_grant ]] || fail "replayed RT: HTTP $code $(cat "$WORK/r3.json")"
code=$(refresh "$WORK/r4.json" "$RT2")
[[ "$code" == 400 && "$(json "$WORK/r4.json" 'j.error')" == invalid_grant ]] || fail "newest RT after replay: HTTP $code $(cat "$WORK/r4.json")"
ok "replayed refresh token -> invalid_grant and the whole grant is revoked"

# code reuse -> invalid_grant (oidc-provider also revokes the grant on code reuse,
# so this comes after the refresh checks)
code=$(post_token "$WORK/ac2.json" -u web-client:web-secret -d grant_type=authorization_code -d "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER")
[[ "$code" == 400 && "$(json "$WORK/ac2.json" 'j.error')" == invalid_grant ]] || fail "code reuse: HTTP $code $(cat "$WORK/ac2.json")"
ok "authorization code reuse rejected"

stop_server
ok "server stopped on SIGTERM (exit 0)"

############ instance 2: CLIENTS_JSON ############
start_server TOKEN_TTL=7 CLIENTS_JSON='[{"client_id":"extra-m2m","client_secret":"extra-secret","grant_types":["client_credentials"],"response_types":[],"redirect_uris":[],"scope":"custom-api/write"}]'
code=$(post_token "$WORK/x1.json" -u extra-m2m:extra-secret -d grant_type=client_credentials)
[[ "$code" == 200 ]] || fail "CLIENTS_JSON client HTTP $code: $(cat "$WORK/x1.json")"
check_cc_token "$WORK/x1.json" "custom-api/write" 7 extra-m2m
code=$(post_token "$WORK/x2.json" -u m2m-client:m2m-secret -d grant_type=client_credentials)
[[ "$code" == 200 ]] || fail "built-in client with CLIENTS_JSON HTTP $code: $(cat "$WORK/x2.json")"
ok "CLIENTS_JSON adds clients (and their scopes)"
stop_server

echo "selftest: $PASSED passed, 0 failed"
