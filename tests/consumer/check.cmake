# Installs the build tree into a scratch prefix, then configures, builds and
# runs tests/consumer against it.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  message(STATUS "${out}")
endfunction()
run(${CMAKE_COMMAND} --install ${CORONET_BUILD_DIR} --prefix ${prefix})
# A sanitized build of the library: the consumer too. Otherwise the consumer
# is built the way a user would make a sanitizer build of their own app,
# with plain flags and the library as installed: every translation unit must
# still agree on Asio's configuration (an allocation by one and its free by
# another is an alloc-dealloc-mismatch).
if(CORONET_SANITIZE)
  set(flags "-fsanitize=${CORONET_SANITIZE}")
else()
  set(flags "-O2 -fsanitize=address")
endif()
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
  "-DCMAKE_CXX_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
