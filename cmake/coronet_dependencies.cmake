# Every dependency comes from a Debian package; a missing one stops the
# configuration with a message naming the package instead of a wall of errors.
macro(coronet_require package debian_package)
  find_package(${package} CONFIG QUIET ${ARGN})
  if(NOT ${package}_FOUND)
    message(FATAL_ERROR
      "coronet needs ${package}: install the Debian package '${debian_package}' "
      "(scripts/setup.sh installs everything).")
  endif()
endmacro()

find_package(Threads REQUIRED)
coronet_require(fmt libfmt-dev)
coronet_require(spdlog libspdlog-dev)
coronet_require(tomlplusplus libtomlplusplus-dev)
coronet_require(CLI11 libcli11-dev)
coronet_require(nlohmann_json nlohmann-json3-dev)

find_package(OpenSSL 3 QUIET)
if(NOT OpenSSL_FOUND)
  message(FATAL_ERROR "coronet needs OpenSSL 3: install the Debian package 'libssl-dev' (scripts/setup.sh installs everything).")
endif()

include(coronet_asio)

# llhttp: a system library when the distribution has one, else a static
# library built from the node-llhttp package's C sources.
find_package(llhttp CONFIG QUIET)
if(llhttp_FOUND AND TARGET llhttp::llhttp)
  add_library(coronet_llhttp INTERFACE)
  target_link_libraries(coronet_llhttp INTERFACE llhttp::llhttp)
else()
  find_path(CORONET_LLHTTP_SOURCE_DIR llhttp.c api.c http.c PATHS /usr/share/llhttp NO_DEFAULT_PATH)
  find_path(CORONET_LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/share/include/llhttp /usr/include/llhttp /usr/include)
  if(NOT CORONET_LLHTTP_SOURCE_DIR OR NOT CORONET_LLHTTP_INCLUDE_DIR)
    message(FATAL_ERROR
      "coronet needs llhttp: install the Debian package 'node-llhttp' "
      "(C sources in /usr/share/llhttp) or a system libllhttp (scripts/setup.sh).")
  endif()
  add_library(coronet_llhttp STATIC
    ${CORONET_LLHTTP_SOURCE_DIR}/llhttp.c
    ${CORONET_LLHTTP_SOURCE_DIR}/api.c
    ${CORONET_LLHTTP_SOURCE_DIR}/http.c)
  target_include_directories(coronet_llhttp SYSTEM PUBLIC $<BUILD_INTERFACE:${CORONET_LLHTTP_INCLUDE_DIR}>)
  set_target_properties(coronet_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()

# nghttp2: HTTP/2 framing, HPACK and flow control (Debian's libnghttp2-dev,
# found through pkg-config: it installs no CMake package).
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(CORONET_NGHTTP2 QUIET IMPORTED_TARGET libnghttp2>=1.52)
endif()
if(NOT CORONET_NGHTTP2_FOUND)
  message(FATAL_ERROR "coronet needs nghttp2 1.52 or newer: install the Debian package 'libnghttp2-dev' (scripts/setup.sh installs everything).")
endif()

# Compression (http::compress): zlib for gzip and deflate, zstd, brotli.
if(PkgConfig_FOUND)
  pkg_check_modules(CORONET_ZLIB QUIET IMPORTED_TARGET zlib)
  pkg_check_modules(CORONET_ZSTD QUIET IMPORTED_TARGET libzstd)
  pkg_check_modules(CORONET_BROTLI QUIET IMPORTED_TARGET libbrotlienc libbrotlidec)
endif()
foreach(_lib ZLIB:zlib1g-dev ZSTD:libzstd-dev BROTLI:libbrotli-dev)
  string(REPLACE ":" ";" _pair "${_lib}")
  list(GET _pair 0 _name)
  list(GET _pair 1 _package)
  if(NOT CORONET_${_name}_FOUND)
    message(FATAL_ERROR "coronet needs ${_name} for http::compress: install the Debian package '${_package}' (scripts/setup.sh installs everything).")
  endif()
endforeach()

# PostgreSQL (coronet::pg): libpq 14 or newer for pipeline mode (Debian's
# libpq-dev). Optional: without it coronet::pg and its tests are left out.
if(PkgConfig_FOUND)
  pkg_check_modules(CORONET_LIBPQ QUIET IMPORTED_TARGET libpq>=14)
endif()
if(NOT CORONET_LIBPQ_FOUND)
  message(STATUS "coronet::pg is not built: it needs libpq 14 or newer, the Debian package 'libpq-dev' (scripts/setup.sh installs it).")
endif()

# Redis (coronet::redis): hiredis for its reply reader (Debian's
# libhiredis-dev). Optional: without it coronet::redis and its tests are
# left out.
if(PkgConfig_FOUND)
  pkg_check_modules(CORONET_HIREDIS QUIET IMPORTED_TARGET hiredis)
endif()
if(NOT CORONET_HIREDIS_FOUND)
  message(STATUS "coronet::redis is not built: it needs hiredis, the Debian package 'libhiredis-dev' (scripts/setup.sh installs it).")
endif()

# Protocol Buffers, for gRPC services generated from .proto files: protoc,
# libprotobuf for the messages and libprotoc for protoc-gen-coronet
# (Debian's protobuf-compiler, libprotobuf-dev, libprotoc-dev). Optional:
# coronet::grpc itself needs none of them.
find_package(Protobuf QUIET)
if(Protobuf_FOUND AND TARGET protobuf::libprotoc AND TARGET protobuf::protoc)
  set(CORONET_PROTOBUF_FOUND TRUE)
else()
  set(CORONET_PROTOBUF_FOUND FALSE)
endif()
