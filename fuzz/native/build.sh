#!/usr/bin/env bash
# Builds the fuzz target of kdns's C replay: the extension kdns/server/_hotpath.c with AddressSanitizer,
# UBSan and libFuzzer's coverage counters, and the libFuzzer binary (driver.c) that embeds the venv's
# CPython and loads it. Usage: fuzz/native/build.sh [OUT] (default fuzz/native/build; git ignores it).
# Never writes the venv's own extension: the sanitized copy lives in OUT only.
# Needs clang-14 and libclang-rt-14-dev (Debian; `make debs` installs them). Takes ~10 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$root/fuzz/native/build}" && cd "${1:-$root/fuzz/native/build}" && pwd)
python=${KDNS_PYTHON:-$root/.venv/bin/python}
cc=${FUZZ_CC:-clang-14}
read -r include libdir ldversion suffix < <("$python" -c 'import sysconfig as s
print(s.get_paths()["include"], s.get_config_var("LIBDIR"), s.get_config_var("LDVERSION"), s.get_config_var("EXT_SUFFIX"))')

# -fno-sanitize-recover: the first undefined behaviour aborts, so libFuzzer keeps the input.
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1)
warn=(-Wall -Wextra -Wno-missing-field-initializers -Werror)
module="$out/_hotpath$suffix"
"$cc" "${sanitize[@]}" "${warn[@]}" -fsanitize=fuzzer-no-link -fPIC -shared -I"$include" \
  "$root/kdns/server/_hotpath.c" -o "$module"
"$cc" "${sanitize[@]}" "${warn[@]}" -fsanitize=fuzzer -I"$include" \
  -DKDNS_ROOT="\"$root\"" -DKDNS_PYTHON="\"$python\"" -DKDNS_MODULE="\"$module\"" \
  "$root/fuzz/native/driver.c" -L"$libdir" -lpython"$ldversion" -Wl,-rpath,"$libdir" -rdynamic \
  -o "$out/replay-fuzzer"
echo "$out/replay-fuzzer"
