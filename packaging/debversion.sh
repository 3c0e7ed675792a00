#!/usr/bin/env bash
# debversion.sh GIT_DESCRIBE: a dpkg-valid upstream version from the output
# of `git describe --tags --always --dirty` (the Makefile's VERSION):
#   v1.2.3                  -> 1.2.3
#   v1.2.3-rc1              -> 1.2.3~rc1          (sorts before 1.2.3)
#   v1.2.3-4-gabc1234       -> 1.2.3+git4.abc1234 (sorts after 1.2.3)
#   abc1234 (no tag yet)    -> 0.0.0~gitabc1234
#   ...-dirty               -> ... with .dirty appended
set -euo pipefail
v=${1:-}
dirty=
case "$v" in *-dirty) v=${v%-dirty} dirty=.dirty ;; esac
v=${v#v}
if [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
  out="0.0.0~git$v"
elif [[ $v =~ ^([0-9][0-9A-Za-z.]*)(-([0-9A-Za-z.]+))?-([0-9]+)-g([0-9a-f]+)$ ]]; then
  out=${BASH_REMATCH[1]}
  [ -n "${BASH_REMATCH[3]}" ] && out+="~${BASH_REMATCH[3]}"
  out+="+git${BASH_REMATCH[4]}.${BASH_REMATCH[5]}"
elif [[ $v =~ ^([0-9][0-9A-Za-z.]*)(-([0-9A-Za-z.]+))?$ ]]; then
  out=${BASH_REMATCH[1]}
  [ -n "${BASH_REMATCH[3]}" ] && out+="~${BASH_REMATCH[3]}"
else
  out="0.0.0~$(printf %s "$v" | tr -c '0-9A-Za-z.+~\n' .)"
fi
echo "$out$dirty"
