#!/bin/sh
# Deliver GitHub's push webhook for DIR/app's main branch, signed as GitHub signs it
# (X-Hub-Signature-256: HMAC-SHA256 of the body under the Secret web-webhook's token).
# Usage: push.sh DIR [GATEWAY_URL]     (GATEWAY_URL: http://127.0.0.1:8080 by default)
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [GATEWAY_URL]" >&2; exit 2; }
work=$(cd "$1" && pwd)
gateway=${2:-http://127.0.0.1:8080}
secret=${WEBHOOK_SECRET:-gitops-loop-example-secret}
commit=$(git -C "$work/app" rev-parse main)
body=$(mktemp)
trap 'rm -f "$body"' EXIT
printf '{"ref": "refs/heads/main", "after": "%s", "head_commit": {"id": "%s"}, "repository": {"name": "app", "clone_url": "file://%s/app", "default_branch": "main"}}' \
  "$commit" "$commit" "$work" > "$body"
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -r "$body" | cut -d' ' -f1)"
curl -sS "$gateway/hooks/" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $sig" --data-binary "@$body"
echo
