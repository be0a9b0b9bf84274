N=$1
T=${TMPDIR:-/tmp}
U=$(umask)
umask 077
mkdir -p "$T/.sandbox-exec.$N" 2>/dev/null || T=${HOME:-/}
D=$T/.sandbox-exec.$N
mkdir -p "$D" || { printf '@%s:0:f:mkdir\n' "$N"; exit 1; }
echo $$ >"$D/agent"
B= E= G=
[ -z "$SANDBOX_EXEC_NO_SETSID" ] && command -v setsid >/dev/null 2>&1 && G=1
H=; [ -z "$SANDBOX_EXEC_NO_HEAD" ] && [ -t 0 ] && case $(stty -a 2>/dev/null) in *[!-]icanon*) H=1;; esac
_f() { printf '@%s:%s:%s:%s\n' "$N" "$1" "$2" "$3"; }
L='
'
_o() { if [ ${#1} -le 900 ]; then printf %s "$1"; else printf %s "$1" | dd ibs=65536 obs=2097152 2>/dev/null; fi; }
_w() { _o "@$N:$1:$2:$3$L"; }
_c() {
  [ -s "$3" ] || return 0
  z=; read -r _ z <"/proc/self/fdinfo/$4" 2>/dev/null
  case $z in ''|*[!0-9]*) ;; *) [ "$z" -le 393216 ] && { c=$(base64 -w0 "$3") && F="$F@$N:$1:$2:$c$L"; return; };; esac
  k=0
  while c=$(dd if="$3" bs=393216 skip=$k count=1 2>/dev/null | base64 -w0); [ -n "$c" ]; do
    _w "$1" "$2" "$c"; [ ${#c} -lt 524288 ] && break; k=$((k+1))
  done
}
_s() { while c=$(dd bs=65536 count=1 2>/dev/null | base64 -w0); [ -n "$c" ]; do _w "$1" "$2" "$c"; done; }
_g() { for f in "$1"/*.p; do [ -f "$f" ] && [ ! -f "${f%.p}.d" ] && read -r p <"$f" && [ -n "$p" ] && kill -9 -"$p" 2>/dev/null; done; }
_z() { _g "$D"; rm -rf "$D" 2>/dev/null; exit 0; }
_a() { B=$B$1; }
_b() { E=$E$1; }
_i() { printf %s "$2" >>"$D/$1.b"; }
_h() {
  if [ -n "$H" ]; then head -n "$1"
  else _n=0; while [ $_n -lt "$1" ] && IFS= read -r _l; do printf '%s\n' "$_l"; _n=$((_n+1)); done; fi
}
_I() { _h "$2" >>"$D/$1.b"; }
_B() { _h "$2" >"$D/$1.s"; }
_k() { [ -f "$D/$1.d" ] && return; : >"$D/$1.k"; p=; [ -f "$D/$1.p" ] && read -r p <"$D/$1.p"; [ -n "$p" ] && { kill -"$2" -"$p" 2>/dev/null || kill -"$2" "$p" 2>/dev/null; }; }
_j() {
  i=$1 o=$D/$1.o e=$D/$1.e n=/dev/null
  if [ -n "$_E" ]; then _S=$(printf %s "$_E" | base64 -d) || { _f "$i" f script; return; }; fi
  if [ -f "$D/$i.s" ]; then _S=$(base64 -d <"$D/$i.s") || { _f "$i" f script; return; }; fi
  if [ -f "$D/$i.b" ]; then base64 -d <"$D/$i.b" >"$D/$i.i" || { _f "$i" f stdin; return; }; n=$D/$i.i; fi
  if [ "$2" = s ]; then
    rm -f "$o" "$e"; mkfifo "$o" "$e" || { _f "$i" f fifo; return; }
    _s "$i" o <"$o" & a=$!
    _s "$i" e <"$e" & b=$!
  fi
  exec 3>"$o" 4>"$e"
  umask "$U"
  if [ -n "$G" ]; then setsid sh -c "$_S" <"$n" >&3 2>&4 3>&- 4>&- & p=$!
  else timeout -s KILL "$3" sh -c "$_S" <"$n" >&3 2>&4 3>&- 4>&- & p=$!; fi
  echo "$p" >"$D/$i.p"
  [ -f "$D/$i.k" ] && { kill -9 -"$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; }
  wait "$p"; r=$?
  F=
  if [ "$2" = s ]; then exec 3>&- 4>&-; wait "$a" "$b"; else _c "$i" o "$o" 3; _c "$i" e "$e" 4; fi
  _o "$F@$N:$i:x:$r$L"
  : >"$D/$i.d"
}
_r() {
  set --
  for f in "$D"/*.d; do [ -f "$f" ] && b=${f%.d} && set -- "$@" "$b.o" "$b.e" "$b.p" "$b.b" "$b.i" "$b.k" "$b.s" "$f"; done
  [ $# -gt 0 ] && rm -f "$@"
}
C=0
_x() {
  B=$B$4; _S=$B _E=$E; B= E=; _j "$1" "$2" "$3" 2>/dev/null &
  C=$((C+1)); [ $((C%64)) -eq 0 ] && { _r 2>/dev/null & }
}
for d in "$T"/.sandbox-exec.*; do
  [ "$d" != "$D" ] && [ -f "$d/agent" ] && read -r q <"$d/agent" && ! kill -0 "$q" 2>/dev/null && { _g "$d"; rm -rf "$d"; }
done
trap _z HUP TERM
_f 0 r 1
while IFS= read -r l; do eval "$l"; done
_z
