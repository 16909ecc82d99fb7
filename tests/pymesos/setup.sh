#!/usr/bin/env bash
# Installs pymesos from PyPI into a virtualenv for the pymesos tests
# (crates/holdfast/tests/pymesos.rs). Safe to run again: it returns at once when the venv
# already holds these versions.
#
# pymesos needs http-parser, whose only release builds a C extension that no longer
# compiles on Python 3.11 (its generated parser.c includes longintrepr.h). The package also
# ships a pure-Python parser, which http_parser.http falls back to when the extension is
# absent, but its setup.py has no switch for it: it leaves the extension out only on PyPy,
# through run_setup(with_binary=False). So the sdist from PyPI is built into a wheel by
# calling that function directly, and pymesos is installed against that wheel.
#
# env: HOLDFAST_PYMESOS_VENV  where the venv goes (default target/pymesos-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${HOLDFAST_PYMESOS_VENV:-$PWD/target/pymesos-venv}
# Debian's interpreter, not whatever python3 comes first on PATH: CI and the VM have only it.
PYTHON=/usr/bin/python3
PINS=(pymesos==0.3.15 http-parser==0.9.0 six==1.17.0 addict==2.4.0 kazoo==2.11.0)
# bdist_wheel for setuptools before 70.1 (Debian 12's venvs bring 66); later wheels
# releases leave that command to setuptools.
WHEEL=wheel==0.45.1
STAMP=$VENV/.holdfast-pymesos

want="$PYTHON ${PINS[*]} $WHEEL"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c 'import pymesos' 2>/dev/null; then
  exit 0
fi

[ -x "$PYTHON" ] || { echo "pymesos setup: $PYTHON is missing (apt-get install python3)" >&2; exit 1; }
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  echo "pymesos setup: installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends python3-venv >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends python3-venv >&2; }
fi

echo "pymesos setup: creating $VENV" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check --no-input)
"${PIP[@]}" install "$WHEEL"

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
"${PIP[@]}" download --no-deps --no-binary :all: --dest "$BUILD" http-parser==0.9.0
tar -xzf "$BUILD"/http-parser-0.9.0.tar.gz -C "$BUILD"
(
  cd "$BUILD/http-parser-0.9.0"
  "$VENV/bin/python" - bdist_wheel --dist-dir "$BUILD/dist" >"$BUILD/build.log" 2>&1 <<'PY' ||
import runpy
runpy.run_path("setup.py", run_name="holdfast_pure_build")["run_setup"](False)
PY
    { cat "$BUILD/build.log" >&2; exit 1; }
)
# pymesos is an sdist only; building it against the venv's setuptools spares a download.
"${PIP[@]}" install --no-build-isolation "$BUILD"/dist/http_parser-0.9.0-py3-none-any.whl "${PINS[@]}"

# The pure-Python parser is the one in use, and pymesos imports.
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
import pymesos
from http_parser.http import HttpParser
if importlib.util.find_spec("http_parser.parser") is not None or HttpParser.__module__ != "http_parser.pyparser":
    sys.exit("pymesos setup: http-parser's C extension is installed; expected its pure-Python parser")
PY
echo "$want" >"$STAMP"
echo "pymesos setup: pymesos ready in $VENV" >&2
