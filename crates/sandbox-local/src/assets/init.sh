# PID 1 of a local sandbox: builds the sandbox's root file system, then runs the image's
# entrypoint and stays alive, reaping orphans, until the sandbox is deleted.
#
# Started by `unshare` in fresh mount, UTS, IPC and PID namespaces (and user and network
# namespaces when configured). Reads its parameters from SBX_* variables; reports progress on
# file descriptor 9 (the state folder's `run/status`): `pid N`, then `ready` or `failed WHY`.
set -eu
S=$SBX_STATE
R=$S/root
exec 9>>"$S/run/status"
# fd 7: the sandbox's own folder; PID 1 exits when its state.json is gone (a folder deleted
# without `delete_app`). fd 6: the `alive` FIFO, held open while the sandbox lives; helpers
# on the host (the pasta keeper) read it and see end-of-file when the sandbox is gone.
# fd 8: a FIFO nobody writes, for PID 1 to wait on. fd 5: the health server's source.
# (The creator made the FIFOs and the root's skeleton: directories, links, device mount points.)
exec 7<"$S" 6<>"$S/run/alive" 8<>"$S/run/init.fifo" 5<"$S/run/health.py"
fail() { echo "failed $*" >&9; echo "sandbox: $*" >&2; exit 1; }
trap 'fail "setup step failed at line $LINENO (see run.log)"' ERR
read -r hostpid _ < /proc/self/stat
echo "pid $hostpid" >&9

ro_bind() { mount --rbind -o ro,nosuid,nodev "$1" "$2"; }

cd "$R"
mount --bind "$R" "$R"
cd "$R"
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -d "$d" ] && [ ! -L "$d" ]; then ro_bind "/$d" "$d"; fi
done
ro_bind /usr usr
ro_bind /etc etc
for f in passwd group hostname hosts; do
  mount --bind -o ro "$S/run/$f" "etc/$f"
done
for n in null zero full random urandom tty; do
  mount --bind "/dev/$n" "dev/$n"
done
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts dev/pts
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev sandbox-shm dev/shm
mount -t proc -o nosuid,nodev,noexec proc proc
ro_bind /sys sys
mount --bind -o nosuid,nodev "$S/tmp" tmp
mount --bind -o nosuid,nodev "$S/home" home/sandbox
mount -t tmpfs -o mode=0755,size=8m,nosuid,nodev sandbox-run run
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev sandbox-var-tmp var/tmp
# The sandbox's resolv.conf goes where the host's /etc/resolv.conf leads (a link into /run on
# systemd-resolved machines).
if [ -n "$SBX_RESOLV" ]; then
  resolv=${SBX_RESOLV#/}
  if [ ! -e "$resolv" ]; then mkdir -p "${resolv%/*}"; : > "$resolv"; fi
  mount --bind -o ro "$S/run/resolv.conf" "$resolv"
fi
mapfile -d '' -t SANDBOX_ENV < "$S/run/env"
hostname "$SBX_HOSTNAME"
pivot_root . .old-root
cd /
umount -l /.old-root
rmdir /.old-root
mount -o remount,bind,ro,nosuid,nodev /
cd /home/sandbox/app
trap - ERR

if [ "$SBX_USERNS" = 1 ]; then
  AS_SANDBOX=(setpriv --no-new-privs --ambient-caps=-all --inh-caps=-all --bounding-set=-all --)
else
  AS_SANDBOX=(setpriv --reuid="$SBX_UID" --regid="$SBX_GID" --clear-groups --no-new-privs \
    --ambient-caps=-all --inh-caps=-all --bounding-set=-all --)
fi
# Replaces the calling (sub)shell with a program running as user `sandbox`.
exec_as_sandbox() { exec env -i "${SANDBOX_ENV[@]}" "${AS_SANDBOX[@]}" "$@" 5<&- 6>&- 7>&- 8>&- 9>&-; }

case "$SBX_RUNTIME" in
  python) echo "Python: $(python3 --version 2>&1)" ;;
  node) echo "Node.js: $(node --version 2>&1)" ;;
esac
if [ -n "$SBX_HEALTH_PORT" ]; then
  ( exec_as_sandbox python3 - "$SBX_HEALTH_HOST" "$SBX_HEALTH_PORT" <&5 ) &
fi
if [ -n "$SBX_RUN_COMMAND" ]; then
  echo "Running: $SBX_RUN_COMMAND"
  ( ( exec_as_sandbox /bin/bash -c "$SBX_RUN_COMMAND" ); echo "run command exited with status $?" ) &
fi
echo "=========================================="
echo " Sandbox $SBX_HOSTNAME is ready"
echo " Working directory: /home/sandbox/app"
echo "=========================================="
# Stay PID 1 without capabilities (so pasta, which runs with few, may join the network
# namespace): report ready, then wait on a FIFO nobody writes, waking every 10 s to check that
# the sandbox's state.json still exists; bash reaps every orphan the sandbox leaves behind.
exec 5<&-
exec setpriv --ambient-caps=-all --inh-caps=-all --bounding-set=-all -- /bin/bash -c '
  echo ready >&9; exec 9>&-
  while :; do
    read -r -t 10 -u 8 _ || [ -e /proc/self/fd/7/state.json ] || exit 0
  done'
