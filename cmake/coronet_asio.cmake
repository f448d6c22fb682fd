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
  # request it was meant for came from elsewhere (see framework/include/coronet/detail/memory.hpp).
  target_compile_definitions(coronet::asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED
    ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)
  target_link_libraries(coronet::asio INTERFACE Threads::Threads)
  # The reactor Asio runs on, chosen at build time for everything that links
  # coronet (Asio's io_context differs between them, so a library and its
  # users must agree; the installed package records the choice): epoll,
  # Linux's and the default, or select, Asio's portable reactor, which here
  # stands in for the kqueue and IOCP builds of other systems and shows
  # that nothing in coronet depends on epoll's behaviour. select takes no
  # descriptor numbered FD_SETSIZE (1024) or above: a connection past that
  # fails with EINVAL, so it serves a little over a thousand connections.
  #
  # io_uring: Asio's io_uring backend (liburing, Debian liburing-dev) runs
  # every socket operation and the timers through one ring per io_context.
  # The choice is made here, for good: a kernel or a seccomp profile that
  # forbids io_uring is found now (a ring is created) and refused, and a
  # process that cannot create its ring at run time says so and exits (see
  # runtime.cpp), as Asio cannot fall back to epoll in the same build.
  set(CORONET_REACTOR "epoll" CACHE STRING "Asio's reactor: epoll, io_uring or select")
  set_property(CACHE CORONET_REACTOR PROPERTY STRINGS epoll io_uring select)
  if(CORONET_REACTOR STREQUAL "select")
    target_compile_definitions(coronet::asio INTERFACE ASIO_DISABLE_EPOLL)
  elseif(CORONET_REACTOR STREQUAL "io_uring")
    find_path(CORONET_URING_INCLUDE_DIR liburing.h)
    find_library(CORONET_URING_LIBRARY uring)
    if(NOT CORONET_URING_INCLUDE_DIR OR NOT CORONET_URING_LIBRARY)
      message(FATAL_ERROR "CORONET_REACTOR=io_uring needs liburing: install the Debian package 'liburing-dev' "
        "(scripts/setup.sh --io-uring), or configure with -DCORONET_REACTOR=epoll.")
    endif()
    if(NOT CMAKE_CROSSCOMPILING AND NOT DEFINED CORONET_URING_WORKS)
      file(WRITE ${CMAKE_BINARY_DIR}/coronet_uring_probe.cpp [[
#include <liburing.h>
#include <cstdio>
#include <cstring>
int main()
{
  struct io_uring ring;
  int rc = io_uring_queue_init(8, &ring, 0);
  if (rc < 0) {
    printf("%s", strerror(-rc));
    return 1;
  }
  io_uring_queue_exit(&ring);
  return 0;
}
]])
      try_run(_uring_runs _uring_compiles ${CMAKE_BINARY_DIR} ${CMAKE_BINARY_DIR}/coronet_uring_probe.cpp
        CMAKE_FLAGS -DINCLUDE_DIRECTORIES=${CORONET_URING_INCLUDE_DIR}
        LINK_LIBRARIES ${CORONET_URING_LIBRARY}
        RUN_OUTPUT_VARIABLE _uring_why)
      if(NOT _uring_compiles OR NOT _uring_runs EQUAL 0)
        message(FATAL_ERROR "CORONET_REACTOR=io_uring: this machine cannot create an io_uring ring "
          "(${_uring_why}): the kernel is too old, io_uring is disabled (kernel.io_uring_disabled) or a seccomp "
          "profile forbids it. Configure with -DCORONET_REACTOR=epoll.")
      endif()
      set(CORONET_URING_WORKS TRUE CACHE INTERNAL "")
    endif()
    target_include_directories(coronet::asio SYSTEM INTERFACE ${CORONET_URING_INCLUDE_DIR})
    target_compile_definitions(coronet::asio INTERFACE ASIO_HAS_IO_URING ASIO_DISABLE_EPOLL)
    target_link_libraries(coronet::asio INTERFACE ${CORONET_URING_LIBRARY})
  elseif(NOT CORONET_REACTOR STREQUAL "epoll")
    message(FATAL_ERROR "CORONET_REACTOR: '${CORONET_REACTOR}' is not one of epoll, io_uring, select")
  endif()
  # Asio decides between std::aligned_alloc/free and operator new/delete for
  # its handler and frame memory from a libstdc++ macro that only a standard
  # header defines: a translation unit that includes Asio before any standard
  # header chooses new/delete, one that does not chooses aligned_alloc/free,
  # and the linker keeps one copy of each inline function, so memory from one
  # is freed by the other (ASan: alloc-dealloc-mismatch). Every translation
  # unit gets the answer decided here, once, instead.
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_INCLUDES ${CORONET_ASIO_INCLUDE_DIR})
  set(CMAKE_REQUIRED_FLAGS -std=c++20)
  set(CMAKE_REQUIRED_QUIET ON)
  check_cxx_source_compiles([[
#include <cstdlib>
#include <asio/detail/config.hpp>
#if !defined(ASIO_HAS_STD_ALIGNED_ALLOC)
#error "no aligned_alloc"
#endif
int main() { return 0; }
]] CORONET_ASIO_ALIGNED_ALLOC)
  unset(CMAKE_REQUIRED_INCLUDES)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_QUIET)
  if(CORONET_ASIO_ALIGNED_ALLOC)
    target_compile_definitions(coronet::asio INTERFACE ASIO_HAS_STD_ALIGNED_ALLOC=1)
  else()
    target_compile_definitions(coronet::asio INTERFACE ASIO_DISABLE_STD_ALIGNED_ALLOC=1)
  endif()
endif()
