# PID 1 of a local sandbox. runc starts it as user `sandbox` (uid 1000 of the sandbox's user
# namespace), without capabilities, with no_new_privs and the seccomp profile, in the
# sandbox's own namespaces and cgroup, with the environment every sandbox process gets.
#
# Prints the image's banner, starts the health server (services) and the spec's run command,
# reports `ready` on fd 3 (the state folder's run/status, passed by runc), then waits on fd 4
# (a FIFO nobody writes) for ever: bash reaps every orphan the sandbox leaves behind.
# Arguments: health server address and port (empty: none), runtime, run command (empty:
# none), the health server's source.
set -u
health_host=$1 health_port=$2 runtime=$3 run_command=$4 health_source=$5
mkdir -p /home/sandbox/app
cd /home/sandbox/app
case "$runtime" in
  python)
    version=$(python3 --version 2>&1)
    echo "Python: $version"
    # The image's virtual environment (first on PATH, VIRTUAL_ENV), over the system's
    # packages: what `python3 -m venv --without-pip --system-site-packages` makes, written
    # directly; `pip` runs the system's pip inside it.
    if [ -n "${VIRTUAL_ENV:-}" ] && [ ! -e "$VIRTUAL_ENV/pyvenv.cfg" ]; then
      version=${version#Python }
      short=${version%.*}
      mkdir -p "$VIRTUAL_ENV/bin" "$VIRTUAL_ENV/lib/python$short/site-packages"
      ln -s lib "$VIRTUAL_ENV/lib64"
      printf 'home = /usr/bin\ninclude-system-site-packages = true\nversion = %s\n' "$version" \
        >"$VIRTUAL_ENV/pyvenv.cfg"
      ln -s /usr/bin/python3 "$VIRTUAL_ENV/bin/python3"
      ln -s python3 "$VIRTUAL_ENV/bin/python"
      printf '#!/bin/sh\nexec %s/bin/python3 -m pip "$@"\n' "$VIRTUAL_ENV" >"$VIRTUAL_ENV/bin/pip"
      chmod 755 "$VIRTUAL_ENV/bin/pip"
      ln -s pip "$VIRTUAL_ENV/bin/pip3"
    fi
    ;;
  node) echo "Node.js: $(node --version 2>&1)" ;;
esac
if [ -n "$health_port" ]; then
  ( exec python3 -c "$health_source" "$health_host" "$health_port" 3>&- 4<&- ) &
fi
if [ -n "$run_command" ]; then
  echo "Running: $run_command"
  ( ( exec /bin/bash -c "$run_command" 3>&- 4<&- ); echo "run command exited with status $?" ) 3>&- 4<&- &
fi
echo "=========================================="
echo " Sandbox $HOSTNAME is ready"
echo " Working directory: /home/sandbox/app"
echo "=========================================="
echo ready >&3
exec 3>&-
while :; do
  read -r -u 4 _
done
