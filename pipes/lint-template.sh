#!/usr/bin/env bash
# Lints every CloudFormation/SAM template in pipes/ (*.yaml, *.yml) with cfn-lint.
# Fails on any error or warning; informational findings are allowed.
#
#   pipes/lint-template.sh            # cfn-lint must be on PATH
#   pipes/lint-template.sh --install  # first pip-installs cfn-lint==$CFN_LINT_VERSION
set -euo pipefail

CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ "${1:-}" == "--install" ]]; then
  python3 -m pip install --quiet "cfn-lint==${CFN_LINT_VERSION}"
  shift
fi
if [[ $# -ne 0 ]]; then
  echo "usage: $0 [--install]" >&2
  exit 64
fi

if ! command -v cfn-lint >/dev/null 2>&1; then
  echo "cfn-lint not found: pip install cfn-lint==${CFN_LINT_VERSION} (or run $0 --install)" >&2
  exit 127
fi

shopt -s nullglob
templates=("$here"/*.yaml "$here"/*.yml)
if [[ ${#templates[@]} -eq 0 ]]; then
  echo "no templates found in $here" >&2
  exit 1
fi

echo "$(cfn-lint --version) on ${#templates[@]} template(s):"
printf '  %s\n' "${templates[@]#"$here"/}"

# cfn-lint's exit code is a bit mask: 2 = error, 4 = warning, 8 = informational,
# 1 = it could not run (bad arguments, unreadable template).
rc=0
cfn-lint -- "${templates[@]}" || rc=$?
if (( rc & ~8 )); then
  echo "cfn-lint failed (exit code $rc)" >&2
  exit 1
fi
echo "cfn-lint: no errors, no warnings"
