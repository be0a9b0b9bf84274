N=$1
T=${TMPDIR:-/tmp}
U=$(umask)
umask 077
mkdir -p "$T/.sandbox-exec.$N" 2>/dev/null || T=${HOME:-/}
D=$T/.sandbox-exec.$N
mkdir -p "$D" || { printf '@%s:0:f:mkdir:5\n' "$N"; exit 1; }
echo $$ >"$D/agent"
B= E= G= W=16
[ -z "$SANDBOX_EXEC_NO_SETSID" ] && command -v setsid >/dev/null 2>&1 && G=1
H=; [ -z "$SANDBOX_EXEC_NO_HEAD" ] && [ -t 0 ] && case $(stty -a 2>/dev/null) in *[!-]icanon*) H=1;; esac
L='
'
_o() { if [ ${#1} -le 900 ]; then printf %s "$1"; else printf %s "$1" | dd ibs=65536 obs=2097152 2>/dev/null; fi; }
_w() { _o "@$N:$1:$2:$3:${#3}$L"; }
_f() { printf '@%s:%s:%s:%s:%s\n' "$N" "$1" "$2" "$3" "${#3}"; }
_q() { _t=${1%=}; _t=${_t%=}; q=$((${#1}/4*3-${#1}+${#_t})); }
_c() {
  z=; read -r _ z <"/proc/self/fdinfo/$4" 2>/dev/null
  case $z in ''|*[!0-9]*) z=$(wc -c <"$3") || z=0;; esac
  eval "Z$2=\$z"
  [ "$z" -gt 0 ] || return 0
  [ "$z" -le 393216 ] && { c=$(base64 -w0 "$3") && F="$F@$N:$1:$2:$c:${#c}$L"; return; }
  k=0
  while [ $((k*393216)) -lt "$z" ]; do
    c=$(dd if="$3" bs=393216 skip=$k count=1 2>/dev/null | base64 -w0); [ -n "$c" ] || break
    _w "$1" "$2" "$c"; k=$((k+1))
  done
}
_s() {
  t=0 n=0 w=$W
  while c=$(dd bs=65536 count=1 2>/dev/null | base64 -w0); [ -n "$c" ]; do
    _w "$1" "$2" "$c"; _q "$c"; t=$((t+q)); n=$((n+1)); [ -f "$D/$1.q" ] && break
    while [ $n -ge $w ]; do read -r g <&5 || break 2; w=$((w+g)); done
  done
  echo "$t" >"$D/$1.$2n"
}
_g() {
  for f in "$1"/*.p; do
    [ -f "$f" ] && [ ! -f "${f%.p}.d" ] && read -r p <"$f" && [ -n "$p" ] && { kill -9 -"$p" || kill -9 "$p"; } 2>/dev/null
    [ -f "${f%.p}.a" ] && [ ! -f "${f%.p}.d" ] && read -r p q _ <"${f%.p}.a" && kill "$p" "$q" 2>/dev/null
  done
}
_l() { for f in "$1"/*.w; do [ -s "$f" ] && read -r w a b <"$f" && kill "$a" "$b" "$w" 2>/dev/null; done; }
_z() {
  trap '' HUP TERM; _g "$D"; l=; read -r l </proc/self/stat 2>/dev/null; set -- ${l##*) }
  [ "$3" = $$ ] && kill -TERM 0
  k=$C f=7
  while [ $k -lt $((C+K)) ]; do eval "exec $f<>\"\$D/$k.J\"" 2>/dev/null && echo >&$f; k=$((k+1)) f=$((f+1)); done
  wait $P
  rm -rf "$D" 2>/dev/null; exit 0
}
_a() { B=$B$1; }
_b() { E=$E$1; }
_i() { printf %s "$2" >>"$D/$1.b"; }
_h() {
  if [ -n "$H" ]; then head -n "$1"
  else _n=0; while [ $_n -lt "$1" ] && IFS= read -r _l; do printf '%s\n' "$_l"; _n=$((_n+1)); done; fi
}
_I() { _h "$2" >>"$D/$1.b"; }
_B() { _h "$2" >"$D/$1.s"; }
_v() { R= W= S=; { read -r _ R; read -r _ W; } <"/proc/$1/io" 2>/dev/null; read -r _ _ S _ <"/proc/$1/stat" 2>/dev/null; }
_u() {
  n=0 l=
  while [ $n -lt 200 ]; do
    _v "$1"; [ -n "$R" ] && [ -n "$2" ] || break
    [ $((W-$2)) -ge 2097152 ] && break
    [ "$S" = S ] && [ "$R" = "$l" ] && break
    l=$R n=$((n+1)); sleep 0.005
  done
  kill "$1" 2>/dev/null
}
_d() {
  [ -f "$D/$1.d" ] || [ ! -f "$D/$1.a" ] && return
  read -r _1 _2 _3 _4 <"$D/$1.a" || return
  if [ -n "$_3" ]; then { _u "$_1" "$_3" & _u "$_2" "$_4"; wait; } &
  elif [ "$2" = 9 ]; then kill "$_1" "$_2" 2>/dev/null
  else : >"$D/$1.q"; { sleep 0.05; kill "$_1" "$_2" 2>/dev/null; } & fi
}
_k() {
  [ -f "$D/$1.d" ] && return; : >"$D/$1.k"; p=; [ -f "$D/$1.p" ] && read -r p <"$D/$1.p"
  [ -n "$p" ] && { kill -"$2" -"$p" 2>/dev/null || kill -"$2" "$p" 2>/dev/null; }
  [ "$2" = 9 ] && _d "$1" 9
}
_n() { [ -p "$D/$1.$2c" ] && printf '%s\n' "$3" 1<>"$D/$1.$2c"; }
_y() { printf '@%s:0:h::0\n' "$N"; }
_W() {
  j=$1 n=/dev/null
  [ -p "$D/$j.F" ] && [ -p "$D/$j.G" ] && [ -p "$D/$j.J" ] || mkfifo "$D/$j.F" "$D/$j.G" "$D/$j.J" 2>/dev/null
  exec 3>"$D/$j.O" 4>"$D/$j.E"
  cat "$D/$j.F" >&3 3>&- 4>&- & a=$!
  cat "$D/$j.G" >&4 3>&- 4>&- & b=$!
  read -r w _ </proc/self/stat && echo "$w $a $b" >"$D/$j.w"
  { read -r i m t _E && [ -n "$i" ] && { _S=; while IFS= read -r l; do _S=$_S$l$L; done; _S=$_S$l; }; } <"$D/$j.J"
  : >"$D/$j.w"
  case $i in ''|*[!0-9]*) kill "$a" "$b" 2>/dev/null; return;; esac
  if [ -n "$_E" ]; then _S=$(printf %s "$_E" | base64 -d) || { _f "$i" f script; kill "$a" "$b"; return; }; fi
  if [ -f "$D/$i.s" ]; then _S=$(base64 -d <"$D/$i.s") || { _f "$i" f script; kill "$a" "$b"; return; }; fi
  if [ -f "$D/$i.b" ]; then base64 -d <"$D/$i.b" >"$D/$i.i" || { _f "$i" f stdin; kill "$a" "$b"; return; }; n=$D/$i.i; fi
  case $m in
  s*)
    kill "$a" "$b" 2>/dev/null
    o=$D/$i.o e=$D/$i.e
    mkfifo "$o" "$e" "$D/$i.oc" "$D/$i.ec" || { _f "$i" f fifo; return; }
    _s "$i" o <"$o" 5<>"$D/$i.oc" 3>&- 4>&- & a=$!
    _s "$i" e <"$e" 5<>"$D/$i.ec" 3>&- 4>&- & b=$!
    ;;
  *) o=$D/$j.F e=$D/$j.G; [ -p "$o" ] && [ -p "$e" ] || { _f "$i" f fifo; kill "$a" "$b" 2>/dev/null; return; };;
  esac
  echo "$a $b" >"$D/$i.a"
  umask "$U"
  if [ -n "$G" ]; then setsid sh -c "$_S" <"$n" >"$o" 2>"$e" 3>&- 4>&- & p=$!
  else timeout -s KILL "$t" sh -c "$_S" <"$n" >"$o" 2>"$e" 3>&- 4>&- & p=$!; fi
  echo "$p" >"$D/$i.p"
  [ -f "$D/$i.k" ] && { kill -9 -"$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; kill "$a" "$b" 2>/dev/null; }
  wait "$p"; r=$?
  case $m in *k) kill -9 -"$p" 2>/dev/null;; esac
  case $m in c*) _v "$a"; w=$W; _v "$b"; echo "$a $b $w $W" >"$D/$i.a";; esac
  _f "$i" q "$r"
  wait "$a" "$b"
  F= Zo=- Ze=-
  case $m in
  s*) [ -f "$D/$i.on" ] && read -r Zo <"$D/$i.on"; [ -f "$D/$i.en" ] && read -r Ze <"$D/$i.en";;
  *) _c "$i" o "$D/$j.O" 3; _c "$i" e "$D/$j.E" 4;;
  esac
  x=$r:$Zo:$Ze
  _o "$F@$N:$i:x:$x:${#x}$L"
  echo "$j" >"$D/$i.d"
}
_r() {
  set --
  for f in "$D"/*.d; do
    [ -f "$f" ] && b=${f%.d} && set -- "$@" "$b".[oepbiksaq] "$b".[oe][cn] "$f" && read -r s <"$f" && [ -n "$s" ] && set -- "$@" "$D/$s".[FGJOEw]
  done
  [ $# -gt 0 ] && rm -f "$@"
}
_m() { k=$1 l=$(($1+64)); set --; while [ $k -lt $l ]; do set -- "$@" "$D/$k.F" "$D/$k.G" "$D/$k.J"; k=$((k+1)); done; mkfifo "$@" 2>/dev/null; }
C=0 K=2
_x() {
  printf '%s %s %s %s\n%s' "$1" "$2" "$3" "$E" "$B$4" >"$D/$C.J"; B= E=
  C=$((C+1)); _W $((C+K-1)) 2>/dev/null & P="${P#* } $!"
  case $((C%64)) in 0) _r 2>/dev/null & ;; 32) _m $((C+32)) & ;; esac
}
for d in "$T"/.sandbox-exec.*; do
  [ "$d" != "$D" ] && [ -f "$d/agent" ] && read -r q <"$d/agent" && ! kill -0 "$q" 2>/dev/null && { _g "$d"; _l "$d"; rm -rf "$d"; }
done
trap _z HUP TERM
_m 0
k=0 P=; while [ $k -lt $K ]; do _W $k 2>/dev/null & P="$P${P:+ }$!" k=$((k+1)); done
_f 0 r 1
while IFS= read -r l; do eval "$l"; done
_z
