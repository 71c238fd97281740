#!/usr/bin/env bash
# Lints every CloudFormation/SAM template in pipes/ (*.yaml, *.yml) with cfn-lint.
# Fails on any error or warning; informational findings are allowed.
#
#   pipes/lint-template.sh            # cfn-lint from $CFN_LINT, else from PATH
#   pipes/lint-template.sh --install  # first installs cfn-lint==$CFN_LINT_VERSION (default: the
#                                     # one of tests/requirements.txt) into a virtualenv
#                                     # (~/.cache/fhir-pipes/cfn-lint-venv) and uses it
# The tests run it with CFN_LINT set to the cfn-lint they installed (tests/src/tools.rs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/../tests/requirements.txt"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-$(sed -n 's/^cfn-lint==//p' "$requirements")}"
cfn_lint="${CFN_LINT:-cfn-lint}"

if [[ "${1:-}" == "--install" ]]; then
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/fhir-pipes/cfn-lint-venv"
  if [[ "$("$venv/bin/cfn-lint" --version 2>/dev/null)" != "cfn-lint $CFN_LINT_VERSION" ]]; then
    python3 -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION"
  fi
  cfn_lint="$venv/bin/cfn-lint"
  shift
fi
if [[ $# -ne 0 ]]; then
  echo "usage: $0 [--install]" >&2
  exit 64
fi

if ! command -v "$cfn_lint" >/dev/null 2>&1; then
  echo "cfn-lint not found: pip install cfn-lint==$CFN_LINT_VERSION (or run $0 --install)" >&2
  exit 127
fi

shopt -s nullglob
templates=("$here"/*.yaml "$here"/*.yml)
if [[ ${#templates[@]} -eq 0 ]]; then
  echo "no templates found in $here" >&2
  exit 1
fi

echo "$("$cfn_lint" --version) on ${#templates[@]} template(s):"
printf '  %s\n' "${templates[@]#"$here"/}"

# cfn-lint's exit code is a bit mask: 2 = error, 4 = warning, 8 = informational,
# 1 = it could not run (bad arguments, unreadable template).
rc=0
"$cfn_lint" -- "${templates[@]}" || rc=$?
if (( rc & ~8 )); then
  echo "cfn-lint failed (exit code $rc)" >&2
  exit 1
fi
echo "cfn-lint: no errors, no warnings"
