#!/bin/sh
# Lay out the loop under DIR (created, or empty):
#   DIR/app            the web service's source, a git repository (where you push)
#   DIR/manifests.git  the manifests repository, bare, as a git server holds it
#   DIR/site           the mesh's directory for `ami up`: gateway, CI, the Application
# Usage: setup.sh DIR
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
work=$(cd "$1" && pwd)
for d in app manifests.git site; do
  [ ! -e "$work/$d" ] || { echo "$work/$d exists already: give an empty directory" >&2; exit 1; }
done
g() { git -c user.name=ami-example -c user.email=example@example.invalid "$@"; }

cp -R "$here/app" "$work/app"
g -C "$work/app" init --quiet --initial-branch=main
g -C "$work/app" add -A
g -C "$work/app" commit --quiet -m "web: v1 and v2"

seed=$(mktemp -d)
trap 'rm -rf "$seed"' EXIT
cp -R "$here/manifests/." "$seed/"
g -C "$seed" init --quiet --initial-branch=main
g -C "$seed" add -A
g -C "$seed" commit --quiet -m "web: v1 serves, v2 dark"
g init --quiet --bare --initial-branch=main "$work/manifests.git"
g -C "$seed" push --quiet "$work/manifests.git" main

mkdir "$work/site"
for f in "$here"/mesh/*.yaml; do
  sed "s|@WORK@|$work|g" "$f" > "$work/site/$(basename "$f")"
done
cp "$here/app/web.py" "$work/site/web.py"
echo "ready: ami up $work/site --gateway-port 8080"
