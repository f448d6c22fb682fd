# Standalone Asio (libasio-dev) is header-only; this INTERFACE target carries
# its include path and the definitions coronet builds with. Shared with the
# installed package config so consumers get the same target.
if(NOT TARGET coronet::asio)
  find_path(CORONET_ASIO_INCLUDE_DIR asio.hpp PATHS /usr/include /usr/local/include)
  if(NOT CORONET_ASIO_INCLUDE_DIR)
    message(FATAL_ERROR
      "coronet needs standalone Asio: install the Debian package 'libasio-dev' "
      "(scripts/setup.sh installs everything).")
  endif()
  add_library(coronet::asio INTERFACE IMPORTED)
  target_include_directories(coronet::asio SYSTEM INTERFACE ${CORONET_ASIO_INCLUDE_DIR})
  # Asio keeps freed coroutine frames and operation blocks per thread for
  # reuse, two of each kind by default; eight leaves room for the frames a
  # request has alive at once. Not shown to matter: the allocation per
  # request it was meant for came from elsewhere (see framework/src/op_memory.hpp).
  target_compile_definitions(coronet::asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED
    ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)
  target_link_libraries(coronet::asio INTERFACE Threads::Threads)
endif()
