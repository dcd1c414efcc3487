#!/bin/bash
# Install Autobahn|Testsuite 0.8.2 (`wstest`, the WebSocket conformance suite) into a
# private prefix, for scripts/autobahn.py.
#
# wstest runs only on Python 2.7, which Debian 12 no longer ships. So:
#   1. Debian 11 (bullseye) python2.7 packages, plus the two libraries bookworm lacks
#      (libssl1.1, libffi7), are taken from a cache dir (--debs) or fetched with a
#      private apt configuration (nothing under /etc/apt, /var/lib/apt or /usr changes),
#      and unpacked with `dpkg -x` under PREFIX/root (no dpkg database is touched);
#   2. the last pip/setuptools/wheel that support 2.7 are fetched from PyPI as wheels
#      by the machine's python3 pip;
#   3. autobahntestsuite==0.8.2 and its dependencies are installed from PyPI with that
#      pip into the unpacked python2.7's dist-packages (wsaccel/ujson/cffi compile with
#      gcc against the unpacked headers).
# Result: PREFIX/py2 (python2.7 wrapper) and PREFIX/wstest.
#
# Usage: scripts/setup_autobahn.sh [--prefix DIR] [--debs DIR] [--force]
#   --prefix DIR  install location (env AUTOBAHN_PREFIX; default /tmp/ratchet_sel-conformance/py27)
#   --debs DIR    cache dir of the nine .deb files (env DEBS). Used when it holds them
#                 all; otherwise they are downloaded, and saved into DIR when it is
#                 writable so later runs can reuse them.
#   --force       reinstall even if PREFIX/wstest already works
# Idempotent: exits at once when `PREFIX/wstest --autobahnversion` already works.
# Needs: gcc, python3 with pip, PyPI; the Debian mirror only when no .deb cache is given.
# Non-interactive (reads no stdin); safe to run as root under CI=true.
set -euo pipefail

PREFIX=${AUTOBAHN_PREFIX:-/tmp/ratchet_sel-conformance/py27}
DEBS=${DEBS:-}
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --debs) DEBS=${2:?--debs needs a directory}; shift 2 ;;
    --debs=*) DEBS=${1#*=}; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup_autobahn.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
exec </dev/null                      # never wait for input (CI has no stdin)
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)        # absolute: it is baked into the wrappers
log() { echo "setup_autobahn: $*" >&2; }

# One install at a time per prefix (a second caller waits, then finds it installed).
exec 9>"$PREFIX/.setup.lock"
flock -w 1800 9 || { log "timed out waiting for another setup_autobahn.sh on $PREFIX"; exit 1; }

if [ "$FORCE" = 0 ] && [ -x "$PREFIX/wstest" ] \
   && VERSION=$(timeout 60 "$PREFIX/wstest" --autobahnversion 2>&1); then
  log "wstest already installed in $PREFIX ($(echo $VERSION))"
  exit 0
fi
rm -f "$PREFIX/wstest"               # written last: its presence marks a finished install

ROOT=$PREFIX/root                    # the unpacked Debian 11 file system
APTDIR=$PREFIX/apt                   # private apt state (lists, cache)
WHEELS=$PREFIX/wheels
mkdir -p "$ROOT" "$WHEELS" "$PREFIX/debs"

# The packages, as pinned by the bullseye release (the .deb cache should hold these).
PKGS=(python2.7 python2.7-minimal python2.7-dev
      libpython2.7 libpython2.7-minimal libpython2.7-stdlib libpython2.7-dev
      libssl1.1 libffi7)

# Does directory $1 hold one .deb for every package in PKGS?
have_all_debs() {
  local p
  for p in "${PKGS[@]}"; do
    compgen -G "$1/${p}_*.deb" >/dev/null || return 1
  done
}

if [ -n "$DEBS" ] && have_all_debs "$DEBS"; then
  log "using .deb files from $DEBS"
  for p in "${PKGS[@]}"; do cp -f "$DEBS/${p}"_*.deb "$PREFIX/debs/"; done
elif have_all_debs "$PREFIX/debs"; then
  log "using .deb files already in $PREFIX/debs"
else
  # A private apt setup pointing at bullseye on the machine's own Debian mirror.
  # Dir::State::status=/dev/null: resolve nothing against the installed system;
  # APT::Sandbox::User=root: the _apt user could not write into $PREFIX.
  MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  if [ -z "$MIRROR" ]; then
    MIRROR=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
               /etc/apt/sources.list 2>/dev/null || true)
  fi
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
  echo "deb [signed-by=$KEYRING] $MIRROR bullseye main" > "$APTDIR/sources.list"
  APT=(apt-get -q -o Dir::Etc::SourceList="$APTDIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o Dir::State::Lists="$APTDIR/lists" -o Dir::Cache="$APTDIR/cache"
       -o Dir::State::status=/dev/null -o APT::Sandbox::User=root
       -o Acquire::Retries=3 -o Acquire::http::Timeout=60)
  log "downloading ${#PKGS[@]} bullseye packages from $MIRROR"
  timeout 600 "${APT[@]}" update
  (cd "$PREFIX/debs" && timeout 600 "${APT[@]}" download "${PKGS[@]}")
  have_all_debs "$PREFIX/debs" || { log "download incomplete: $(ls "$PREFIX/debs")"; exit 1; }
  if [ -n "$DEBS" ] && mkdir -p "$DEBS" 2>/dev/null && [ -w "$DEBS" ]; then
    cp -f "$PREFIX"/debs/*.deb "$DEBS/" && log "saved the .deb files into $DEBS"
  fi
fi

for d in "$PREFIX"/debs/*.deb; do dpkg -x "$d" "$ROOT"; done

# Directory of the unpacked shared libraries (x86_64-linux-gnu on amd64).
TRIPLET=$(gcc -print-multiarch 2>/dev/null || true)
[ -n "$TRIPLET" ] || TRIPLET=$(basename "$(dirname "$(ls "$ROOT"/usr/lib/*/libpython2.7.so.1.0)")")
LIBDIR=$ROOT/usr/lib/$TRIPLET

# python2.7 wrapper. PYTHONHOME points the interpreter at the unpacked stdlib; the
# user site and any PYTHONPATH of the caller (likely meant for python3) are ignored.
cat > "$PREFIX/py2" <<EOF
#!/bin/sh
# python2.7 from Debian 11 packages unpacked under $ROOT (made by setup_autobahn.sh)
LD_LIBRARY_PATH=$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
PYTHONHOME=$ROOT/usr
PYTHONNOUSERSITE=1
export LD_LIBRARY_PATH PYTHONHOME PYTHONNOUSERSITE
unset PYTHONPATH PYTHONSTARTUP
exec $ROOT/usr/bin/python2.7 "\$@"
EOF
chmod +x "$PREFIX/py2"
"$PREFIX/py2" -c 'import ssl, zlib, ctypes; print("python2.7 ok, " + ssl.OPENSSL_VERSION)'

# pip 20.3.4 is the last pip for 2.7; python3's pip fetches it (pure-python wheels).
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
log "fetching pip/setuptools/wheel for python2.7"
timeout 600 python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version 2.7 --implementation cp --platform any -d "$WHEELS" \
  pip==20.3.4 setuptools==44.1.1 wheel==0.37.1
# dist-packages is a real site dir of this python (so the zope.* .pth files work).
SITE=$ROOT/usr/lib/python2.7/dist-packages
"$PREFIX/py2" "$WHEELS/pip-20.3.4-py2.py3-none-any.whl/pip" install -q \
  --no-warn-script-location --target "$SITE" --upgrade \
  "$WHEELS/pip-20.3.4-py2.py3-none-any.whl" \
  "$WHEELS/setuptools-44.1.1-py2.py3-none-any.whl" \
  "$WHEELS/wheel-0.37.1-py2.py3-none-any.whl"

# autobahntestsuite and its dependencies; C extensions build against the unpacked headers.
# The dependency versions are pinned to a set known to work (all are the last releases
# for Python 2.7 or close to them), so a late py2-compatible release cannot change the tool.
cat > "$PREFIX/constraints.txt" <<'EOF'
attrs==21.4.0
autobahn==0.10.9
Automat==22.10.0
cffi==1.15.1
constantly==15.1.0
cryptography==3.3.2
enum34==1.1.10
hyperlink==21.0.0
idna==2.10
incremental==22.10.0
ipaddress==1.0.23
Jinja2==2.11.3
klein==20.6.0
linecache2==1.0.0
MarkupSafe==1.1.1
pyasn1==0.5.1
pyasn1-modules==0.3.0
pycparser==2.21
PyHamcrest==1.10.1
pyOpenSSL==21.0.0
service-identity==21.1.0
six==1.17.0
traceback2==1.4.0
Tubes==0.2.1
Twisted==20.3.0
txaio==2.1.0
typing==3.10.0.0
ujson==2.0.3
unittest2==1.1.0
Werkzeug==1.0.1
wsaccel==0.6.6
zope.interface==5.5.2
EOF
log "installing autobahntestsuite==0.8.2 for python2.7"
export CFLAGS="-I$ROOT/usr/include -I$ROOT/usr/include/python2.7 -I$ROOT/usr/include/$TRIPLET/python2.7"
export LDFLAGS="-L$LIBDIR"
timeout 1200 "$PREFIX/py2" -m pip install -q --no-warn-script-location \
  --target "$SITE" --upgrade -c "$PREFIX/constraints.txt" autobahntestsuite==0.8.2

# wstest wrapper, written last (its presence marks a finished install). With -c the
# current directory is sys.path[0]; it is dropped so that a file there (such as this
# project's scripts/autobahn.py) cannot shadow the `autobahn` package.
cat > "$PREFIX/wstest.tmp" <<EOF
#!/bin/sh
# Autobahn|Testsuite 0.8.2 under the private python2.7 (made by setup_autobahn.sh)
exec $PREFIX/py2 -W ignore -c 'import sys; del sys.path[0]; from autobahntestsuite.wstest import run; sys.argv[0] = "wstest"; run()' "\$@"
EOF
chmod +x "$PREFIX/wstest.tmp"
"$PREFIX/wstest.tmp" --autobahnversion
mv -f "$PREFIX/wstest.tmp" "$PREFIX/wstest"
log "done: $PREFIX/wstest"
