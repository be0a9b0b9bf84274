# The host side of a local sandbox, started detached (in a session of its own) by the creator,
# as root, with the run log as its output (and so the container's).
#
# Starts the sandbox's container with runc and reports on fd 9 (run/status): `holder PID`,
# then `pid PID` (the sandbox's PID 1 on the host) or `failed WHY`. Connects the sandbox's
# network with pasta when given pasta's command line. Then, once a second, writes the
# kernel's out-of-memory kills in the sandbox's cgroup into the run log (and run/oom-kills),
# until the sandbox ends: its PID 1 is gone, its state folder was removed without
# `delete_app`, or its expiry passed (then it removes the folder and the name claim itself).
# Then removes what runc made (container state, cgroups), stops pasta and, when the folder is
# gone, the bundle and the uid range claim too.
#
# Arguments: state folder, bundle, container id, runc, runc's root, uid claim file, memory
# limit (MiB, for messages), then pasta's command line, if any.
set -u
S=$1 B=$2 ID=$3 RUNC=$4 ROOT=$5 CLAIM=$6 MEMORY_MIB=$7
shift 7
cd /
exec 7<"$S" 9>>"$S/run/status"
echo "holder $$" >&9
# PID 1 gets fd 3 (the status file, to report `ready`) and fd 4 (a FIFO nobody writes).
if ! "$RUNC" --root "$ROOT" run --detach --bundle "$B" --pid-file "$S/run/init.pid" \
  --preserve-fds 2 "$ID" 3>&9 4<>"$S/run/init.fifo" 7<&- 9>&- </dev/null; then
  echo "failed the container runtime (runc) could not start the sandbox" >&9
  "$RUNC" --root "$ROOT" delete --force "$ID" >/dev/null 2>&1
  exit 1
fi
read -r pid <"$S/run/init.pid"
echo "pid $pid" >&9
exec 9>&- 8<>"$S/run/init.fifo"
# `runc run --detach` may return while runc's init is still turning into the sandbox's PID 1;
# until its execve the process is not dumpable, and pasta (which keeps no CAP_SYS_PTRACE)
# could not open its namespace. Wait for the execve, at most 10 s.
for _ in {1..1000}; do
  read -r comm <"/proc/$pid/comm" 2>/dev/null || break
  case $comm in
    runc:*) read -r -t 0.01 -u 8 _ ;;
    *) break ;;
  esac
done
pasta=
if [ "$#" -gt 0 ]; then
  "$@" --netns "/proc/$pid/ns/net" </dev/null 7<&- 8<&- &
  pasta=$!
fi

oom_file=
while IFS=: read -r _ controller path; do
  case $controller in
    memory) oom_file=/sys/fs/cgroup/memory$path/memory.oom_control ;;
    "") [ -n "$oom_file" ] || oom_file=/sys/fs/cgroup$path/memory.events ;;
  esac
done <"/proc/$pid/cgroup"
alive() {
  local state
  read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null && [ "$state" != Z ] && [ "$state" != X ]
}
kills=0
# An expiry (Unix seconds, written at creation from the spec's marker) ends the sandbox with
# no client running: see src/expiry.rs.
expires= expired=
read -r expires <"$S/expires" 2>/dev/null
while alive && [ -e /proc/self/fd/7/state.json ]; do
  if [ -n "$expires" ]; then
    printf -v now '%(%s)T' -1
    if [ "$now" -ge "$expires" ]; then expired=1; break; fi
  fi
  read -r -t 1 -u 8 _
  count=0
  if [ -r "$oom_file" ]; then
    while read -r key value; do
      if [ "$key" = oom_kill ]; then count=$value; fi
    done <"$oom_file"
  fi
  if [ "$count" -gt "$kills" ]; then
    echo "sandbox: out of memory: the kernel killed $((count - kills)) process(es) of this sandbox (memory limit ${MEMORY_MIB} MiB)"
    kills=$count
    echo "$kills" >"$S/run/oom-kills" 2>/dev/null
  fi
done
"$RUNC" --root "$ROOT" delete --force "$ID" >/dev/null 2>&1
if [ -n "$pasta" ]; then kill "$pasta" 2>/dev/null; fi
if [ -n "$expired" ]; then
  names=${S%/*}
  for claim in "${names%/*}"/names/*; do
    if [ "$(cat "$claim" 2>/dev/null)" = "$ID" ]; then rm -f "$claim"; fi
  done
  chmod -R u+w "$S" 2>/dev/null
  rm -rf "$S"
fi
if [ ! -e /proc/self/fd/7/state.json ]; then
  rm -rf "$B"
  if [ "$(cat "$CLAIM" 2>/dev/null)" = "$ID" ]; then rm -f "$CLAIM"; fi
fi
