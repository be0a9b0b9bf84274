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
  python) echo "Python: $(python3 --version 2>&1)" ;;
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
