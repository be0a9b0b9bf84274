//! The sandbox's side of snapshots: POSIX sh run as `sh -c SCRIPT sandbox-fs ARGS...`, with
//! lists of paths on stdin separated by NUL bytes (any name survives).

/// The archive the sandbox received differs from the one the host checked.
pub(super) const MISMATCH: i32 = 79;

/// Lists the snapshot's folders: `$1` is how many folders follow, then the folders, then the
/// rest of a `find` command line (prune tests and `-printf`). A missing folder exits 70, one
/// that is not a folder 72, with its path on stderr.
pub(super) const LIST: &str = r#"n=$1; shift
i=0
for a; do
  i=$((i + 1)); [ "$i" -gt "$n" ] && break
  [ -e "$a" ] || [ -L "$a" ] || { printf '%s' "$a" >&2; exit 70; }
  [ -d "$a" ] && [ ! -L "$a" ] || { printf '%s' "$a" >&2; exit 72; }
done
exec find "$@"
"#;

/// Prints `SHA256  path\0` for each path on stdin (NUL-separated).
pub(super) const HASH: &str = r#"exec xargs -0 -r sha256sum -z --"#;

/// Archives the members named on stdin (NUL-separated, relative to `/`, never recursing) into
/// the gzip file `$1`, and prints its size. A file that changed while it was read (tar status
/// 1) is left for the host's check of the archive to find.
pub(super) const ARCHIVE: &str = r#"a=$1
umask 077
{ tar -c -f - -C / --no-recursion --null --verbatim-files-from --hard-dereference -T -; echo $? >"$a.rc"; } | gzip -1 >"$a"
g=$?
r=$(cat -- "$a.rc" 2>/dev/null) || r=2
rm -f -- "$a.rc"
if [ "$g" != 0 ] || [ "${r:-2}" -gt 1 ]; then rm -f -- "$a"; echo "tar status $r, gzip status $g" >&2; exit 1; fi
exec stat -c %s -- "$a"
"#;

/// Fetches a URL (curl config on stdin) into the file `$1`, hashing the bytes as they arrive
/// (`$1.sum`, read by [`APPLY`]); checks the size is `$2`. HTTP errors exit 75 with `HTTP
/// <code>` and the body on stderr, a wrong size 76; curl's own failures exit 1 with its
/// message.
pub(super) const FETCH: &str = r#"a=$1 n=$2 f=$1.fifo
rm -f -- "$f" "$a.sum"
mkfifo -m 600 -- "$f" || exit 1
{ tee -- "$a" <"$f" | sha256sum >"$a.sum"; } &
c=$(curl -sS -g --connect-timeout 30 -o "$f" -w '%{http_code}' -K -); r=$?
exec 3<>"$f"; exec 3>&-
wait
rm -f -- "$f"
[ "$r" = 0 ] || { rm -f -- "$a" "$a.sum"; exit 1; }
case $c in 2??) ;; *) echo "HTTP $c" >&2; head -c 2000 -- "$a" >&2; rm -f -- "$a" "$a.sum"; exit 75;; esac
s=$(stat -c %s -- "$a") || exit 1
[ "$s" = "$n" ] || { rm -f -- "$a" "$a.sum"; echo "received $s bytes, expected $n" >&2; exit 76; }
exit 0
"#;

/// Applies one layer: checks that the archive `$1` has SHA-256 `$2` (the sum [`FETCH`] left,
/// else computed now; exit 79 when it differs); for
/// a `full` layer (`$3`) empties each folder given after the count `$4`; removes the `$4`
/// paths on stdin (NUL-separated); extracts with modes kept, never as another owner; clears
/// setuid and setgid bits. The archive is removed in every case.
pub(super) const APPLY: &str = r#"a=$1 h=$2 k=$3 n=$4; shift 4
if [ -f "$a.sum" ]; then g=$(cat -- "$a.sum"); rm -f -- "$a.sum"; else g=$(sha256sum -- "$a") || { rm -f -- "$a"; exit 1; }; fi
[ "${g%% *}" = "$h" ] || { rm -f -- "$a"; echo "the archive's SHA-256 is $g" >&2; exit 79; }
if [ "$k" = full ]; then
  for p; do
    if [ -L "$p" ] || [ ! -d "$p" ]; then
      rm -rf -- "$p" && mkdir -p -- "$p" || { rm -f -- "$a"; exit 1; }
    else
      find "$p" -mindepth 1 -type d ! -perm -u=rwx -exec chmod u+rwx -- {} + 2>/dev/null
      find "$p" -mindepth 1 -delete || { rm -f -- "$a"; exit 1; }
    fi
  done
fi
if [ "$n" -gt 0 ]; then xargs -0 -r rm -rf -- || { rm -f -- "$a"; exit 1; }; fi
tar -x -z -p --no-same-owner -f "$a" -C /; r=$?
rm -f -- "$a"
[ "$r" = 0 ] || exit "$r"
for p; do [ -d "$p" ] && find "$p" ! -type l -perm /6000 -exec chmod ug-s -- {} +; done
exit 0
"#;
