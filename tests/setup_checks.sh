#!/usr/bin/env bash
# Checks that `make setup` fails with one clear sentence when a prerequisite is missing, and
# that re-running it on a complete install does no work. Prints "N passed, M failed" last.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# expect_failure NAME EXPECTED_TEXT COMMAND...: COMMAND must fail, and its last line of
# stderr must be setup's sentence containing EXPECTED_TEXT.
expect_failure() {
  local name=$1 expected=$2
  shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAILED  $name: setup succeeded"
    failed=$((failed + 1))
  elif grep -q "^setup failed: .*$expected" "$tmp/err"; then
    echo "ok      $name"
    passed=$((passed + 1))
  else
    echo "FAILED  $name: expected '$expected' in:"
    cat "$tmp/err"
    failed=$((failed + 1))
  fi
}

# A PATH holding only the tools named, to hide python3 or cargo.
path_with() {
  local dir=$tmp/bin-$1
  mkdir -p "$dir"
  shift
  for tool in bash env dirname mkdir "$@"; do
    ln -sf "$(command -v "$tool")" "$dir/$tool"
  done
  # python3 may be a version manager's shim that needs more tools: link the interpreter.
  [ -e "$dir/python3" ] && ln -sf "$(python3 -c 'import sys; print(sys.executable)')" "$dir/python3"
  echo "$dir"
}

expect_failure "no python3" "python3 was not found on PATH" \
  env PATH="$(path_with nopython cargo flock)" scripts/setup
expect_failure "no cargo" "cargo was not found on PATH" \
  env PATH="$(path_with nocargo python3 flock)" scripts/setup
expect_failure "no git" "git was not found on PATH" \
  env PATH="$(path_with nogit python3 cargo flock)" scripts/setup
printf 'torch==0.0.1\n' >"$tmp/requirements.txt"
expect_failure "torch wheel unavailable" "PyPI has no torch==0.0.1 wheel" \
  env MECHLENS_VENV="$tmp/venv" MECHLENS_REQUIREMENTS="$tmp/requirements.txt" scripts/setup

expect_failure "no browser" "Chromium could not be installed" \
  env MECHLENS_CHROMIUM="$tmp/no-chromium" scripts/setup

# On a complete install every step but the build (which cargo checks itself) is skipped.
if scripts/setup >"$tmp/out" 2>&1 &&
  grep -q "already done" "$tmp/out" &&
  ! grep -E '^  [a-z_]+ +done' "$tmp/out" | grep -qv '^  build '; then
  echo "ok      re-run does no work"
  passed=$((passed + 1))
else
  echo "FAILED  re-run does no work:"
  cat "$tmp/out"
  failed=$((failed + 1))
fi

# A user's clone has only itself: no file of the repository may name a path outside it (data
# comes from datasets/ through mechlens::datasets).
outside=$(git grep -nIE '\.\./\.\./\.\./|\.\./shared|shared/data|/work/|/home/[a-z]' -- . ':!*.lock' ':!tests/setup_checks.sh' 2>/dev/null)
if [ -z "$outside" ]; then
  echo "ok      no path outside the checkout"
  passed=$((passed + 1))
else
  echo "FAILED  no path outside the checkout:"
  echo "$outside"
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
