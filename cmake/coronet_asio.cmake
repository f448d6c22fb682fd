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
  # Asio keeps freed operation blocks per thread for reuse; with its default
  # of two, a connection's read, its peer watch and a timer wait take turns
  # evicting each other and every request cost a malloc. Eight keep them all.
  target_compile_definitions(coronet::asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED
    ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)
  target_link_libraries(coronet::asio INTERFACE Threads::Threads)
endif()
