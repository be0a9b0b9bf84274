//! The remote side: POSIX sh scripts run as `sh -c SCRIPT sandbox-fs ARGS...`, so every path
//! travels as its own argv element and is never parsed by a shell.
//!
//! Each script reports the common failures by exit code (see the constants); anything else
//! exits 1 with the tool's message on stderr, which `fs.rs` reads (in the C locale).

/// The path does not exist.
pub(crate) const NOT_FOUND: i32 = 70;
/// The path is a directory where a file was expected.
pub(crate) const IS_DIR: i32 = 71;
/// The path (or a parent) is not a directory.
pub(crate) const NOT_DIR: i32 = 72;
/// The path already exists.
pub(crate) const EXISTS: i32 = 73;
/// The path cannot be read.
pub(crate) const DENIED: i32 = 74;
/// An HTTP transfer got an error status; stderr has `HTTP <code>` and the body.
pub(crate) const HTTP: i32 = 75;
/// The transferred size differs from the expected one; nothing was put in place.
pub(crate) const SIZE: i32 = 76;
/// The temporary file of a write is gone (a previous attempt already committed it).
pub(crate) const GONE: i32 = 77;
/// A compressed chunk was sent but the sandbox has no `gzip`.
pub(crate) const NO_GZIP: i32 = 78;

/// Prepended to every script.
pub(crate) const PRELUDE: &str = "umask 022; unset CDPATH\n";

/// Resolves `$p` as a write target: follows a symlink, refuses a directory, creates the
/// parents, sets `$d` to the folder that will hold the temporary file.
const RESOLVE: &str = r#"_r() {
  if [ -L "$p" ]; then r=$(readlink -f -- "$p" && echo x) || exit 1; p=${r%?x}; fi
  [ -d "$p" ] && exit 71
  case $p in */*) d=${p%/*}; d=${d:-/};; *) d=.;; esac
  if [ ! -d "$d" ]; then [ -e "$d" ] && exit 72; mkdir -p -- "$d" || exit 1; fi
}
"#;

/// Atomic write in steps. `$1` flags: `b` begin (resolve, create the temporary file; with `a`
/// start from a copy of the current file) and print `target\0temp\0base\0`; `d` write stdin at
/// byte `base + $4` (`z`: stdin is gzip data of `$7` bytes; exit 78 without `gzip`); `c` check
/// the size is `base + $5`, keep the old file's mode, rename into place. `$2` the path (or the
/// resolved target), `$3` a token (or the temporary path), `$6` the base (after `b`).
pub(crate) fn write() -> String {
    format!(
        r#"{RESOLVE}f=$1 p=$2 t=$3 base=${{6:-0}}
case $f in *b*)
  _r
  t=$d/.sandbox-fs.$t.tmp
  base=0
  case $f in
    *a*) if [ -e "$p" ]; then cp -- "$p" "$t" || exit 1; base=$(stat -c %s -- "$t") || exit 1; else : >"$t" || exit 1; fi;;
    *) : >"$t" || exit 1;;
  esac
  printf '%s\0%s\0%s\0' "$p" "$t" "$base"
;; *) [ -e "$t" ] || exit 77;; esac
case $f in
  *z*)
    command -v gzip >/dev/null 2>&1 || exit 78
    gzip -dc >"$t.z" || {{ rm -f -- "$t.z"; exit 1; }}
    [ "$(stat -c %s -- "$t.z")" = "$7" ] || {{ rm -f -- "$t.z"; echo "a chunk decompressed to the wrong size" >&2; exit 76; }}
    dd if="$t.z" of="$t" bs=1048576 seek=$((base + $4)) oflag=seek_bytes conv=notrunc,nocreat status=none; r=$?
    rm -f -- "$t.z"; [ $r = 0 ] || exit 1;;
  *d*) dd of="$t" bs=1048576 seek=$((base + $4)) oflag=seek_bytes conv=notrunc,nocreat status=none || exit 1;;
esac
case $f in *c*)
  s=$(stat -c %s -- "$t") || exit 1
  [ "$s" = $((base + $5)) ] || {{ echo "wrote $s bytes, expected $((base + $5))" >&2; exit 76; }}
  [ -e "$p" ] && chmod --reference="$p" -- "$t" 2>/dev/null
  mv -f -- "$t" "$p" || exit 1
;; esac
exit 0
"#
    )
}

/// Removes a temporary file (`$1`), best effort.
pub(crate) const DISCARD: &str = r#"rm -f -- "$1""#;

/// Reads a file: prints `r <size>\n` and the first `$2` bytes of a regular file, or `o 0\n` and
/// the whole content of anything else that can be read (a device, a fifo, a /proc file).
pub(crate) const READ: &str = r#"p=$1
[ -e "$p" ] || exit 70
[ -d "$p" ] && exit 71
[ -r "$p" ] || { echo "cannot read: Permission denied" >&2; exit 74; }
if [ -f "$p" ]; then
  s=$(stat -L -c %s -- "$p") || exit 1
  printf 'r %s\n' "$s"
  exec head -c "$2" -- "$p"
fi
printf 'o 0\n'
exec cat -- "$p"
"#;

/// Reads `$3` bytes of `$1` from byte `$2`.
pub(crate) const READ_RANGE: &str = r#"[ -e "$1" ] || exit 70
exec dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=1048576 status=none
"#;

/// Emits `name\0mode-hex\0size\0mtime\0` per entry named in `$@` that exists (a glob word
/// that matched nothing does not), then an empty field, then the target of each symlink among
/// them (NUL-terminated, in order). Names are never empty, so the empty field cannot be a name.
/// `stat` exits 1 for glob words that matched nothing; a higher status means it did not run
/// (for example a folder whose names exceed the argument size limit).
const EMIT: &str = r#"_e() {
  stat --printf '%n\0%f\0%s\0%Y\0' -- "$@" 2>/dev/null
  r=$?; [ $r -gt 1 ] && { echo "stat could not run (status $r): too many entries for one command line?" >&2; return 1; }
  printf '\0'
  for f; do if [ -L "$f" ]; then readlink -z -- "$f" || printf '\0'; fi; done
}
"#;

/// Lists the directory `$1` (every entry but `.` and `..`).
pub(crate) fn list() -> String {
    format!(
        r#"{EMIT}d=$1
[ -e "$d" ] || exit 70
[ -d "$d" ] || exit 72
[ -r "$d" ] && [ -x "$d" ] || {{ echo "cannot list: Permission denied" >&2; exit 74; }}
cd -P -- "$d" || exit 1
_e * .[!.]* ..?*
"#
    )
}

/// Describes the path `$1` itself (a symlink is not followed).
pub(crate) fn stat() -> String {
    format!(
        r#"{EMIT}[ -e "$1" ] || [ -L "$1" ] || exit 70
_e "$1"
"#
    )
}

/// `test -$1 "$2"`: exit 0 when true, 1 when false.
pub(crate) const TEST: &str = r#"case $1 in e|f|d) test "-$1" "$2";; *) exit 2;; esac"#;

/// Creates the directory `$1`; with `$2 = p`, with its parents and no error if it exists.
pub(crate) const MKDIR: &str = r#"if [ -e "$1" ] || [ -L "$1" ]; then
  [ "$2" = p ] && [ -d "$1" ] && exit 0
  [ "$2" = p ] && exit 72
  exit 73
fi
if [ "$2" = p ]; then exec mkdir -p -- "$1"; fi
exec mkdir -- "$1"
"#;

/// Removes `$1`; `$2` holds `r` (recursive) and/or `f` (a missing path is not an error).
pub(crate) const RM: &str = r#"p=$1
if [ ! -e "$p" ] && [ ! -L "$p" ]; then case $2 in *f*) exit 0;; esac; exit 70; fi
if [ -d "$p" ] && [ ! -L "$p" ]; then case $2 in *r*) exec rm -rf -- "$p";; esac; exit 71; fi
exec rm -f -- "$p"
"#;

/// Copies `$1` to `$2`; `$3 = r` copies a directory recursively.
pub(crate) const COPY: &str = r#"[ -e "$1" ] || [ -L "$1" ] || exit 70
if [ -d "$1" ] && [ "$3" != r ]; then exit 71; fi
if [ "$3" = r ]; then exec cp -R -- "$1" "$2"; fi
exec cp -- "$1" "$2"
"#;

/// Renames (moves) `$1` to `$2`, as `mv` does.
pub(crate) const RENAME: &str = r#"[ -e "$1" ] || [ -L "$1" ] || exit 70
exec mv -f -- "$1" "$2"
"#;

/// `chmod $1 $2` (the mode is validated by the client and passed as one argument).
pub(crate) const CHMOD: &str = r#"[ -e "$2" ] || exit 70
exec chmod -- "$1" "$2"
"#;

/// The size in bytes of the file `$1` (symlinks followed).
pub(crate) const SIZE_OF: &str = r#"[ -e "$1" ] || exit 70
[ -d "$1" ] && exit 71
exec stat -L -c %s -- "$1"
"#;

/// Archives the directory `$1` into the file `$2`; `$3...` are `--exclude=` options. Prints the
/// archive's size. Tar's status 1 (a file changed while it was read) is passed on for the
/// client to decide.
pub(crate) const TAR_CREATE: &str = r#"s=$1 a=$2; shift 2
[ -e "$s" ] || exit 70
[ -d "$s" ] || exit 72
tar -c -f "$a" -C "$s" "$@" .; r=$?
[ $r -le 1 ] && { stat -c %s -- "$a" || exit 2; }
exit $r
"#;

/// Extracts the archive `$2` into the directory `$1` (modes kept), then removes the archive.
pub(crate) const TAR_EXTRACT: &str = r#"tar -x -p --no-same-owner -f "$2" -C "$1"; r=$?
rm -f -- "$2"
exit $r
"#;

/// Fetches a URL (curl config on stdin) into `$1` atomically: temporary file named with the
/// token `$2`, size checked against `$3`, old file's mode kept, renamed into place.
pub(crate) fn fetch() -> String {
    format!(
        r#"{RESOLVE}p=$1
_r
t=$d/.sandbox-fs.$2.tmp
c=$(curl -sS -g --retry 3 --retry-delay 1 --connect-timeout 30 -o "$t" -w '%{{http_code}}' -K -) || {{ rm -f -- "$t"; exit 1; }}
case $c in 2??) ;; *) echo "HTTP $c" >&2; head -c 2000 -- "$t" >&2; rm -f -- "$t"; exit 75;; esac
s=$(stat -c %s -- "$t") || exit 1
[ "$s" = "$3" ] || {{ rm -f -- "$t"; echo "received $s bytes, expected $3" >&2; exit 76; }}
[ -e "$p" ] && chmod --reference="$p" -- "$t" 2>/dev/null
mv -f -- "$t" "$p" || {{ rm -f -- "$t"; exit 1; }}
exit 0
"#
    )
}

/// Sends the file `$1` with an HTTP PUT (curl config on stdin) and prints its size; `$2` is a
/// token for the file that holds an error response.
pub(crate) const SEND: &str = r#"p=$1
[ -e "$p" ] || exit 70
[ -d "$p" ] && exit 71
[ -r "$p" ] || { echo "cannot read: Permission denied" >&2; exit 74; }
s=$(stat -L -c %s -- "$p") || exit 1
e=${TMPDIR:-/tmp}/.sandbox-fs.$2.err
c=$(curl -sS -g --retry 3 --retry-delay 1 --connect-timeout 30 -T "$p" -o "$e" -w '%{http_code}' -K -) || { rm -f -- "$e"; exit 1; }
case $c in 2??) rm -f -- "$e";; *) echo "HTTP $c" >&2; head -c 2000 -- "$e" >&2; rm -f -- "$e"; exit 75;; esac
echo "$s"
"#;
