# Shared by the scripts: configure and build one build tree.
CORONET_JOBS=${CORONET_JOBS:-$(nproc 2>/dev/null || echo 2)}
(( CORONET_JOBS > 2 )) && CORONET_JOBS=2 # the reference machines have 2 cores

# coronet_build DIR [CMAKE_OPTION...] [-- BUILD_OPTION...] (such as --target T)
coronet_build() {
  local dir=$1; shift
  local configure=() build=()
  while (($#)); do
    if [[ $1 == -- ]]; then shift; build=("$@"); break; fi
    configure+=("$1"); shift
  done
  local launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$dir" "${launcher[@]}" "${configure[@]}" >/dev/null
  cmake --build "$dir" -j "$CORONET_JOBS" "${build[@]}"
}
