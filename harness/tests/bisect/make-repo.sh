#!/usr/bin/env bash
# The bisect tests' repository: a real kernel tree committed as it is, then
# five commits on top, one of which breaks module BTF for real and one of
# which does not build:
#
#   c0  Linux <version> (the tree as given)                  good
#   c1  Documentation: a harmless change                     good
#   c2  bpf: a helper with a syntax error                    does not build
#   c3  bpf: fix the build                                   good
#   c4  bpf: inverted check, no module gets its BTF          BAD (the answer)
#   c5  Documentation: another harmless change               bad
#
# git bisect's first pick between c0 and c5 is c2, so the unbuildable
# commit is always tested (and skipped). Authors and dates are fixed, so
# the same tree always gives the same commit hashes, and btfvm's build
# cache serves a second run. The tree is read in place (--work-tree), never
# copied: the repository is its .git alone (~530 MB for Linux 6.1).
#
# usage: make-repo.sh TREE DEST
set -euo pipefail
tree=$(cd "$1" && pwd)
dest=$2
[ -f "$tree/kernel/bpf/btf.c" ] || { echo "$tree: no kernel/bpf/btf.c: not a kernel tree" >&2; exit 2; }
[ ! -e "$dest" ] || { echo "$dest exists; remove it first" >&2; exit 2; }
tmp="$dest.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
export GIT_AUTHOR_NAME=btfvm GIT_AUTHOR_EMAIL=btfvm@localhost \
       GIT_COMMITTER_NAME=btfvm GIT_COMMITTER_EMAIL=btfvm@localhost \
       GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
git init -q -b main "$tmp"
g() { git -C "$tmp" -c core.autocrlf=false "$@"; }
version=$(awk -F' = ' '/^VERSION/{v=$2} /^PATCHLEVEL/{p=$2} /^SUBLEVEL/{s=$2} END{print v"."p"."s}' "$tree/Makefile")
# -f: Debian's linux-source .gitignore ignores everything at the top.
g --work-tree="$tree" add -A -f
g commit -q -m "Linux $version"

# edit PATH SED-EXPRESSION MESSAGE: a commit changing one file, made in
# the index alone (nothing is checked out).
edit() {
  local path=$1 expr=$2 msg=$3 blob
  blob=$(g show "HEAD:$path" | sed -e "$expr" | g hash-object -w --stdin)
  g update-index --cacheinfo "100644,$blob,$path"
  g commit -q -m "$msg"
}
btf=kernel/bpf/btf.c
grep -q 'if (mod->btf_data_size == 0 ||' "$tree/$btf" \
  || { echo "$tree/$btf: no 'if (mod->btf_data_size == 0 ||' in btf_module_notify" >&2; exit 2; }
edit Documentation/bpf/btf.rst '$a\
\
.. btfvm bisect test: a harmless change.' "Documentation/bpf: a harmless change"
edit "$btf" '/^static int btf_module_notify(/i\
static int btfvm_unbuildable(void) { return }\
' "bpf: add a helper (this commit does not build)"
edit "$btf" '/^static int btfvm_unbuildable(void)/,+1d' "bpf: fix the build"
edit "$btf" 's/if (mod->btf_data_size == 0 ||/if (mod->btf_data_size != 0 ||/' \
  "bpf: btf_module_notify: skip modules that have BTF (breaks module BTF)"
edit Documentation/bpf/btf.rst '$a\
.. Another harmless change.' "Documentation/bpf: another harmless change"
mv "$tmp" "$dest"
trap - EXIT
git -C "$dest" log --format='%H %s'
