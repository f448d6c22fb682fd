# coronet_grpc_generate(<target> <file.proto>...): runs protoc with
# protoc-gen-coronet on each file and adds what it writes to <target>: the
# messages (<name>.pb.cc, libprotobuf linked) and <name>.coronet.hpp, the
# services' server bases and client stubs. Each file is found relative to
# its own folder (import paths below it); the output goes to
# ${CMAKE_CURRENT_BINARY_DIR}/<target>_grpc, which <target> includes.
#
#   add_executable(greeter main.cpp)
#   coronet_grpc_generate(greeter proto/hello.proto)
#   target_link_libraries(greeter PRIVATE coronet::framework)
#   // main.cpp: #include "hello.coronet.hpp"
function(coronet_grpc_generate target)
  if(NOT CORONET_PROTOBUF_FOUND)
    message(FATAL_ERROR "coronet_grpc_generate needs protoc and libprotobuf: install the Debian packages "
      "'protobuf-compiler', 'libprotobuf-dev' and 'libprotoc-dev' (scripts/setup.sh installs everything).")
  endif()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}_grpc)
  file(MAKE_DIRECTORY ${out})
  foreach(proto IN LISTS ARGN)
    get_filename_component(path ${proto} ABSOLUTE)
    get_filename_component(dir ${path} DIRECTORY)
    get_filename_component(name ${path} NAME_WE)
    add_custom_command(
      OUTPUT ${out}/${name}.pb.cc ${out}/${name}.pb.h ${out}/${name}.coronet.hpp
      COMMAND protobuf::protoc --cpp_out=${out} --coronet_out=${out}
        --plugin=protoc-gen-coronet=$<TARGET_FILE:coronet::protoc-gen-coronet> -I ${dir} ${path}
      DEPENDS ${path} coronet::protoc-gen-coronet
      COMMENT "protoc ${name}.proto: messages and coronet gRPC services"
      VERBATIM)
    target_sources(${target} PRIVATE ${out}/${name}.pb.cc ${out}/${name}.pb.h ${out}/${name}.coronet.hpp)
  endforeach()
  target_include_directories(${target} PRIVATE ${out})
  target_link_libraries(${target} PRIVATE protobuf::libprotobuf)
endfunction()
