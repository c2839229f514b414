#!/usr/bin/env bash
# Self-test of the local OpenID provider (oidc-server.mjs) and of the login
# helpers for integration tests. Starts the server(s) by PID, checks
# client_credentials (basic + post, with and without scope, wrong secret),
# discovery, and the full authorization-code + PKCE flow through the dev
# login/consent forms with curl, then refresh-token rotation and reuse
# detection. Then, against a stand-in for the client's loopback listener:
# drive-login.mjs (plain HTTP, also --deny), browser-login.mjs (headless
# Chromium; skipped when /usr/bin/chromium is missing), and the device
# authorization grant with curl + drive-device.mjs. Exits non-zero on the
# first failure.
set -Eeuo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
SERVER_PID=""
CB_PID=""
CURL=(curl -sS --max-time 5)
REDIRECT_URI="http://127.0.0.1:8976/callback"
PASSED=0

cleanup() {
  stop_cb
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

# await_line FILE WORD PID TENTHS WHAT: waits (checking every 0.1 s, TENTHS times) until
# FILE's first line starts with WORD and sets LINE_VALUE to its second word; fails if PID
# exits first (with WHAT's stderr, $WORK/<errfile>) or when the time is up.
await_line() {
  local file="$1" want="$2" pid="$3" tries="$4" what="$5" errfile="$6" word value
  LINE_VALUE=""
  for _ in $(seq 1 "$tries"); do
    if read -r word value <"$file" 2>/dev/null && [[ "$word" == "$want" ]]; then
      LINE_VALUE="$value"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "$what exited before $want: $(cat "$errfile" 2>/dev/null)"
    sleep 0.1
  done
  fail "$what: no $want line within $((tries / 10)) s"
}

start_server() { # env assignments are passed through by the caller
  : >"$WORK/server.out"
  : >"$WORK/server.err"
  env "$@" node "$DIR/oidc-server.mjs" >"$WORK/server.out" 2>"$WORK/server.err" &
  SERVER_PID=$!
  await_line "$WORK/server.out" READY "$SERVER_PID" 150 server "$WORK/server.err"
  PORT="$LINE_VALUE"
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

# A stand-in for mcp-credd's loopback listener: answers every request with a
# small HTML page and appends {"method", "url"} as a JSON line to $WORK/cb.log.
start_cb() {
  : >"$WORK/cb.out"
  : >"$WORK/cb.log"
  node -e '
    const http = require("http"), fs = require("fs");
    const log = process.argv[1];
    const srv = http.createServer((req, res) => {
      fs.appendFileSync(log, JSON.stringify({ method: req.method, url: req.url }) + "\n");
      res.setHeader("content-type", "text/html; charset=utf-8");
      res.end("<!DOCTYPE html><html><head><title>done</title></head><body><h1>Login complete</h1><p>You can close this window.</p></body></html>");
    });
    srv.keepAliveTimeout = 500;
    srv.listen(0, "127.0.0.1", () => process.stdout.write("LISTENING " + srv.address().port + "\n"));
    process.on("SIGTERM", () => process.exit(0));
  ' -- "$WORK/cb.log" >"$WORK/cb.out" 2>"$WORK/cb.err" &
  CB_PID=$!
  await_line "$WORK/cb.out" LISTENING "$CB_PID" 50 "callback listener" "$WORK/cb.err"
  CB_PORT="$LINE_VALUE"
  echo "# callback listener pid $CB_PID on 127.0.0.1:$CB_PORT"
}

stop_cb() {
  if [[ -n "$CB_PID" ]]; then
    local pid="$CB_PID"
    CB_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
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

if [[ ! -d "$DIR/node_modules/oidc-provider" || ! -d "$DIR/node_modules/playwright-core" ]]; then
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

############ instance 3: login helpers against a loopback listener; device flow ############
start_cb
CB_URI="http://127.0.0.1:$CB_PORT/callback"
# A port nobody listens on (bound and released just now), for the "client not listening" case.
DEAD_PORT="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { process.stdout.write(String(s.address().port)); s.close(); })')"
DEAD_URI="http://127.0.0.1:$DEAD_PORT/callback"
CLI_CLIENT="$(node -e '
  process.stdout.write(JSON.stringify([{ client_id: "cli-client", token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
    redirect_uris: process.argv.slice(1), scope: "openid offline_access profile" }]));
' -- "$CB_URI" "$DEAD_URI")"
start_server CLIENTS_JSON="$CLI_CLIENT"

code=$("${CURL[@]}" -o "$WORK/disc3.json" -w '%{http_code}' "$BASE/.well-known/openid-configuration")
[[ "$code" == 200 ]] || fail "discovery HTTP $code"
[[ "$(json "$WORK/disc3.json" 'j.device_authorization_endpoint')" == "$BASE/device/auth" ]] \
  || fail "discovery device_authorization_endpoint: $(cat "$WORK/disc3.json")"
[[ "$(json "$WORK/disc3.json" 'j.grant_types_supported.includes("urn:ietf:params:oauth:grant-type:device_code")')" == true ]] \
  || fail "discovery lacks the device_code grant: $(cat "$WORK/disc3.json")"
ok "discovery lists device_authorization_endpoint and the device_code grant"

# new_authorize_url REDIRECT_URI: sets AUTH_URL (cli-client, PKCE S256), VERIFIER and STATE
new_authorize_url() {
  VERIFIER="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
  STATE="st-$RANDOM$RANDOM"
  AUTH_URL="$BASE/oauth2/authorize?$(node -e '
    const [ru, v, st] = process.argv.slice(1);
    const ch = require("crypto").createHash("sha256").update(v).digest("base64url");
    process.stdout.write(new URLSearchParams({ client_id: "cli-client", response_type: "code", redirect_uri: ru,
      scope: "openid offline_access profile", state: st, code_challenge: ch, code_challenge_method: "S256" }).toString());
  ' -- "$1" "$VERIFIER" "$STATE")"
}
# last_cb_param NAME: query parameter NAME of the last request the listener got
last_cb_param() {
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
    const last = lines.length ? JSON.parse(lines[lines.length - 1]) : { url: "/" };
    process.stdout.write(new URL(last.url, "http://x").searchParams.get(process.argv[2]) ?? "");
  ' -- "$WORK/cb.log" "$1"
}
# check_callback OUTFILE TEXT_FIELD N_BEFORE: the helper's JSON line says the callback
# got 200 + the listener's page, and the listener got exactly that one GET, with our state.
check_callback() {
  local out="$1" field="$2" before="$3" n cb_url
  [[ "$(wc -l <"$out")" -eq 1 ]] || fail "helper stdout must be one JSON line: $(cat "$out")"
  [[ "$(json "$out" 'j.status')" == 200 ]] || fail "callback status: $(cat "$out")"
  [[ "$(json "$out" "typeof j.$field === 'string' && j.$field.includes('Login complete')")" == true ]] || fail "callback $field: $(cat "$out")"
  cb_url="$(json "$out" 'j.callback_url')"
  [[ "$cb_url" == "$CB_URI?"* ]] || fail "callback_url: $cb_url"
  n="$(wc -l <"$WORK/cb.log")"
  [[ "$n" -eq $((before + 1)) ]] || fail "the listener got $((n - before)) requests, expected 1: $(cat "$WORK/cb.log")"
  tail -n 1 "$WORK/cb.log" >"$WORK/cb.last"
  [[ "$(json "$WORK/cb.last" 'j.method + " " + j.url')" == "GET ${cb_url#"http://127.0.0.1:$CB_PORT"}" ]] \
    || fail "listener saw $(cat "$WORK/cb.last"), helper reported $cb_url"
  [[ "$(last_cb_param state)" == "$STATE" ]] || fail "callback state: $(cat "$WORK/cb.last")"
}
# exchange_code OUTFILE EXPECTED_SUB: redeem the last callback's code for cli-client, check sub
exchange_code() {
  local out="$1" sub="$2" code
  code=$(post_token "$out" -d grant_type=authorization_code -d client_id=cli-client -d "code=$(last_cb_param code)" \
    --data-urlencode "redirect_uri=$CB_URI" -d "code_verifier=$VERIFIER")
  [[ "$code" == 200 ]] || fail "code exchange HTTP $code: $(cat "$out")"
  [[ -n "$(json "$out" 'j.refresh_token')" ]] || fail "no refresh_token: $(cat "$out")"
  jwt_payload "$(json "$out" 'j.access_token')" >"$WORK/xp.json"
  [[ "$(json "$WORK/xp.json" 'j.sub')" == "$sub" ]] || fail "access token sub != $sub: $(cat "$WORK/xp.json")"
}

# drive-login.mjs: login + consent over HTTP, then the GET on the callback
new_authorize_url "$CB_URI"
before="$(wc -l <"$WORK/cb.log")"
timeout 40 node "$DIR/drive-login.mjs" "$AUTH_URL" >"$WORK/dl1.out" 2>"$WORK/dl1.err" || fail "drive-login: $(cat "$WORK/dl1.err")"
check_callback "$WORK/dl1.out" body "$before"
[[ -n "$(last_cb_param code)" && -z "$(last_cb_param error)" ]] || fail "no code in callback: $(cat "$WORK/cb.last")"
exchange_code "$WORK/dl1.tok" alice
ok "drive-login.mjs: code+state reach the listener, code redeems (sub alice)"

new_authorize_url "$CB_URI"
before="$(wc -l <"$WORK/cb.log")"
timeout 40 node "$DIR/drive-login.mjs" "$AUTH_URL" --user bob --password pw >"$WORK/dl2.out" 2>"$WORK/dl2.err" || fail "drive-login --user: $(cat "$WORK/dl2.err")"
check_callback "$WORK/dl2.out" body "$before"
exchange_code "$WORK/dl2.tok" bob
ok "drive-login.mjs --user bob"

new_authorize_url "$CB_URI"
before="$(wc -l <"$WORK/cb.log")"
timeout 40 node "$DIR/drive-login.mjs" "$AUTH_URL" --deny >"$WORK/dl3.out" 2>"$WORK/dl3.err" || fail "drive-login --deny: $(cat "$WORK/dl3.err")"
check_callback "$WORK/dl3.out" body "$before"
[[ "$(last_cb_param error)" == access_denied && -z "$(last_cb_param code)" ]] || fail "--deny callback: $(cat "$WORK/cb.last")"
ok "drive-login.mjs --deny: error=access_denied reaches the listener"

new_authorize_url "$DEAD_URI"
rc=0
timeout 40 node "$DIR/drive-login.mjs" "$AUTH_URL" >"$WORK/dl4.out" 2>"$WORK/dl4.err" || rc=$?
[[ "$rc" -eq 1 && ! -s "$WORK/dl4.out" ]] && grep -q 'callback GET failed' "$WORK/dl4.err" \
  || fail "drive-login without a listener: rc=$rc stdout=$(cat "$WORK/dl4.out") stderr=$(cat "$WORK/dl4.err")"
rc=0
timeout 40 node "$DIR/drive-login.mjs" "$BASE/oauth2/authorize?client_id=nope&response_type=code" >/dev/null 2>"$WORK/dl5.err" || rc=$?
[[ "$rc" -eq 1 ]] && grep -q 'invalid_client' "$WORK/dl5.err" || fail "drive-login with a bad client: rc=$rc $(cat "$WORK/dl5.err")"
ok "drive-login.mjs exits 1 with a message when the callback GET fails or the provider refuses"

# browser-login.mjs: the same in headless Chromium
if [[ -x /usr/bin/chromium ]]; then
  new_authorize_url "$CB_URI"
  before="$(wc -l <"$WORK/cb.log")"
  t0="$(date +%s%N)"
  timeout 90 node "$DIR/browser-login.mjs" "$AUTH_URL" --user carol --screenshot "$WORK/browser.png" >"$WORK/bl.out" 2>"$WORK/bl.err" \
    || fail "browser-login: $(cat "$WORK/bl.err")"
  ms=$((($(date +%s%N) - t0) / 1000000))
  check_callback "$WORK/bl.out" text "$before"
  [[ -n "$(last_cb_param code)" ]] || fail "no code in callback: $(cat "$WORK/cb.last")"
  exchange_code "$WORK/bl.tok" carol
  [[ "$(head -c 8 "$WORK/browser.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || fail "--screenshot did not write a PNG"
  ok "browser-login.mjs (headless Chromium, ${ms} ms): code+state reach the listener, code redeems (sub carol)"
else
  echo "# skipped browser-login.mjs: /usr/bin/chromium not found (scripts/test-deps.sh installs it)"
fi

# device authorization grant (RFC 8628)
DC_GRANT="urn:ietf:params:oauth:grant-type:device_code"
DEVICE_SCOPE="openid offline_access profile"
# device_auth OUTFILE curl-args... ; prints the HTTP status
device_auth() { local out="$1"; shift; "${CURL[@]}" -o "$out" -w '%{http_code}' "$@" --data-urlencode "scope=$DEVICE_SCOPE" "$BASE/device/auth"; }
# poll_device OUTFILE DEVICE_CODE curl-args... ; polls every second (10 tries) while authorization_pending, prints the last HTTP status
poll_device() {
  local out="$1" dc="$2" code
  shift 2
  for _ in $(seq 1 10); do
    code=$(post_token "$out" "$@" -d "grant_type=$DC_GRANT" -d "device_code=$dc")
    [[ "$code" == 400 && "$(json "$out" 'j.error')" == authorization_pending ]] || break
    sleep 1
  done
  echo "$code"
}

code=$(device_auth "$WORK/da1.json" -u device-client:device-secret)
[[ "$code" == 200 ]] || fail "device authorization HTTP $code: $(cat "$WORK/da1.json")"
for k in device_code user_code verification_uri verification_uri_complete expires_in interval; do
  [[ -n "$(json "$WORK/da1.json" "j.$k")" ]] || fail "device authorization reply lacks $k: $(cat "$WORK/da1.json")"
done
[[ "$(json "$WORK/da1.json" 'j.verification_uri')" == "$BASE/device" && "$(json "$WORK/da1.json" 'j.interval')" == 1 \
  && "$(json "$WORK/da1.json" 'j.expires_in')" == 600 ]] || fail "device authorization reply: $(cat "$WORK/da1.json")"
DC="$(json "$WORK/da1.json" 'j.device_code')"
UC="$(json "$WORK/da1.json" 'j.user_code')"
code=$(post_token "$WORK/dp0.json" -u device-client:device-secret -d "grant_type=$DC_GRANT" -d "device_code=$DC")
[[ "$code" == 400 && "$(json "$WORK/dp0.json" 'j.error')" == authorization_pending ]] || fail "early poll: HTTP $code $(cat "$WORK/dp0.json")"
ok "device authorization (device-client), then authorization_pending"

timeout 40 node "$DIR/drive-device.mjs" "$BASE" "$UC" --user dave >"$WORK/dd1.out" 2>"$WORK/dd1.err" || fail "drive-device: $(cat "$WORK/dd1.err")"
[[ "$(wc -l <"$WORK/dd1.out")" -eq 1 && "$(json "$WORK/dd1.out" 'j.result')" == approved ]] || fail "drive-device output: $(cat "$WORK/dd1.out")"
code=$(poll_device "$WORK/dt1.json" "$DC" -u device-client:device-secret)
[[ "$code" == 200 ]] || fail "device token HTTP $code: $(cat "$WORK/dt1.json")"
for k in access_token refresh_token id_token expires_in token_type scope; do
  [[ -n "$(json "$WORK/dt1.json" "j.$k")" ]] || fail "device token reply lacks $k: $(cat "$WORK/dt1.json")"
done
[[ "$(json "$WORK/dt1.json" 'j.scope.split(" ").includes("offline_access")')" == true ]] || fail "device token scope: $(cat "$WORK/dt1.json")"
jwt_payload "$(json "$WORK/dt1.json" 'j.access_token')" >"$WORK/dtp.json"
[[ "$(json "$WORK/dtp.json" 'j.sub')" == dave && "$(json "$WORK/dtp.json" 'j.client_id')" == device-client ]] || fail "device access token: $(cat "$WORK/dtp.json")"
ok "drive-device.mjs --user dave, then polling gets access, refresh and id tokens"

DRT0="$(json "$WORK/dt1.json" 'j.refresh_token')"
code=$(post_token "$WORK/dr1.json" -u device-client:device-secret -d grant_type=refresh_token -d "refresh_token=$DRT0")
[[ "$code" == 200 && -n "$(json "$WORK/dr1.json" 'j.access_token')" ]] || fail "device refresh HTTP $code: $(cat "$WORK/dr1.json")"
[[ -n "$(json "$WORK/dr1.json" 'j.refresh_token')" && "$(json "$WORK/dr1.json" 'j.refresh_token')" != "$DRT0" ]] || fail "device refresh did not rotate: $(cat "$WORK/dr1.json")"
ok "device-flow refresh token works and rotates"

code=$(post_token "$WORK/dt2.json" -u device-client:device-secret -d "grant_type=$DC_GRANT" -d "device_code=$DC")
[[ "$code" == 400 && "$(json "$WORK/dt2.json" 'j.error')" == invalid_grant ]] || fail "device code reuse: HTTP $code $(cat "$WORK/dt2.json")"
rc=0
timeout 40 node "$DIR/drive-device.mjs" "$BASE" "$UC" >/dev/null 2>"$WORK/dd2.err" || rc=$?
[[ "$rc" -eq 1 ]] && grep -q 'not accepted' "$WORK/dd2.err" || fail "drive-device with a used code: rc=$rc $(cat "$WORK/dd2.err")"
code=$(device_auth "$WORK/da2.json" -d client_id=device-client -d client_secret=device-secret)
[[ "$code" == 401 && "$(json "$WORK/da2.json" 'j.error')" == invalid_client ]] || fail "device auth with the wrong method: HTTP $code $(cat "$WORK/da2.json")"
ok "device code reuse -> invalid_grant; used user code refused; wrong client auth method -> invalid_client"

# public client, verification_uri as drive-device's first argument
code=$(device_auth "$WORK/da3.json" -d client_id=device-public)
[[ "$code" == 200 ]] || fail "device authorization (public) HTTP $code: $(cat "$WORK/da3.json")"
timeout 40 node "$DIR/drive-device.mjs" "$(json "$WORK/da3.json" 'j.verification_uri')" "$(json "$WORK/da3.json" 'j.user_code')" \
  >"$WORK/dd3.out" 2>"$WORK/dd3.err" || fail "drive-device (public): $(cat "$WORK/dd3.err")"
code=$(poll_device "$WORK/dt3.json" "$(json "$WORK/da3.json" 'j.device_code')" -d client_id=device-public)
[[ "$code" == 200 && -n "$(json "$WORK/dt3.json" 'j.refresh_token')" ]] || fail "device token (public) HTTP $code: $(cat "$WORK/dt3.json")"
jwt_payload "$(json "$WORK/dt3.json" 'j.access_token')" >"$WORK/dtp3.json"
[[ "$(json "$WORK/dtp3.json" 'j.sub')" == alice ]] || fail "device access token (public): $(cat "$WORK/dtp3.json")"
ok "device flow with the public client device-public (default user alice)"

code=$(device_auth "$WORK/da4.json" -d client_id=device-public)
[[ "$code" == 200 ]] || fail "device authorization (deny) HTTP $code: $(cat "$WORK/da4.json")"
timeout 40 node "$DIR/drive-device.mjs" "$BASE" "$(json "$WORK/da4.json" 'j.user_code')" --deny >"$WORK/dd4.out" 2>"$WORK/dd4.err" \
  || fail "drive-device --deny: $(cat "$WORK/dd4.err")"
[[ "$(json "$WORK/dd4.out" 'j.result')" == denied ]] || fail "drive-device --deny output: $(cat "$WORK/dd4.out")"
code=$(poll_device "$WORK/dt4.json" "$(json "$WORK/da4.json" 'j.device_code')" -d client_id=device-public)
[[ "$code" == 400 && "$(json "$WORK/dt4.json" 'j.error')" == access_denied ]] || fail "poll after deny: HTTP $code $(cat "$WORK/dt4.json")"
ok "drive-device.mjs --deny -> polling gets access_denied"

stop_server
stop_cb

echo "selftest: $PASSED passed, 0 failed"
