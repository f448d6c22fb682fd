# CORONET_SANITIZE applies to every target of the build (sanitizers need the
# whole program instrumented), unlike warnings, which are per target.
if(CORONET_SANITIZE STREQUAL "")
  return()
elseif(CORONET_SANITIZE STREQUAL "address,undefined")
  set(_coronet_san_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined)
elseif(CORONET_SANITIZE STREQUAL "thread")
  set(_coronet_san_flags -fsanitize=thread)
  # TSan does not model the fences of Asio's fenced blocks (-Wtsan); the
  # scheduler's mutex already orders what they guard, so build without them.
  add_compile_definitions(ASIO_DISABLE_FENCED_BLOCK)
  add_compile_options(-Wno-tsan)
else()
  message(FATAL_ERROR
    "CORONET_SANITIZE='${CORONET_SANITIZE}' is not supported; "
    "use 'address,undefined', 'thread' or leave it empty.")
endif()
add_compile_options(${_coronet_san_flags} -fno-omit-frame-pointer)
add_link_options(${_coronet_san_flags})
