// protoc-gen-coronet: protoc's plugin for coronet's gRPC. For each service
// of a .proto file it writes, into <name>.coronet.hpp beside protoc's own
// <name>.pb.h:
//   - <Service>Server: a base class with one coroutine per method (each
//     answering UNIMPLEMENTED until overridden) and mount(router), which
//     adds a route per method;
//   - <Service>Client: a stub calling the methods through a grpc::channel.
// coronet_grpc_generate() in CMake runs it.
#include <google/protobuf/compiler/code_generator.h>
#include <google/protobuf/compiler/plugin.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>
#include <google/protobuf/io/zero_copy_stream.h>

#include <map>
#include <memory>
#include <string>

namespace {

namespace pb = google::protobuf;

std::string strip_proto(const std::string& file)
{
  auto dot = file.rfind(".proto");
  return dot == std::string::npos ? file : file.substr(0, dot);
}

// "a.b.C" -> "::a::b::C"
std::string cpp_type(const pb::Descriptor* d)
{
  std::string out = "::";
  for (char c : d->full_name()) {
    if (c == '.')
      out += "::";
    else
      out += c;
  }
  return out;
}

std::string cpp_namespace(const std::string& package)
{
  std::string out;
  for (char c : package)
    out += c == '.' ? std::string("::") : std::string(1, c);
  return out;
}

std::map<std::string, std::string> method_vars(const pb::ServiceDescriptor* s, const pb::MethodDescriptor* m)
{
  return {{"method", m->name()}, {"path", "/" + s->full_name() + "/" + m->name()},
    {"req", cpp_type(m->input_type())}, {"resp", cpp_type(m->output_type())}, {"service", s->name()}};
}

void print_server_method(pb::io::Printer& p, const pb::MethodDescriptor* m, std::map<std::string, std::string> v)
{
  if (!m->client_streaming() && !m->server_streaming())
    p.Print(v, "  virtual ::coronet::task<$resp$> $method$([[maybe_unused]] ::coronet::grpc::server_context& ctx, [[maybe_unused]] const $req$& request)\n");
  else if (!m->client_streaming())
    p.Print(v, "  virtual ::coronet::task<void> $method$([[maybe_unused]] ::coronet::grpc::server_context& ctx, [[maybe_unused]] const $req$& request,\n"
               "    [[maybe_unused]] ::coronet::grpc::writer<$resp$>& out)\n");
  else if (!m->server_streaming())
    p.Print(v, "  virtual ::coronet::task<$resp$> $method$([[maybe_unused]] ::coronet::grpc::server_context& ctx,\n"
               "    [[maybe_unused]] ::coronet::grpc::reader<$req$>& in)\n");
  else
    p.Print(v, "  virtual ::coronet::task<void> $method$([[maybe_unused]] ::coronet::grpc::server_context& ctx,\n"
               "    [[maybe_unused]] ::coronet::grpc::reader<$req$>& in, [[maybe_unused]] ::coronet::grpc::writer<$resp$>& out)\n");
  p.Print(v, "  {\n    throw ::coronet::grpc::error(::coronet::grpc::code::unimplemented, \"$path$ is not implemented\");\n");
  p.Print(v, m->server_streaming() ? "    co_return;\n  }\n\n" : "    co_return $resp${};\n  }\n\n");
}

void print_mount(pb::io::Printer& p, const pb::ServiceDescriptor* s)
{
  p.Print("  void mount(::coronet::http::router& r, const ::coronet::grpc::options& o = {}) override\n  {\n");
  for (int i = 0; i < s->method_count(); ++i) {
    const auto* m = s->method(i);
    auto v = method_vars(s, m);
    if (!m->client_streaming() && !m->server_streaming())
      p.Print(v, "    ::coronet::grpc::add_unary<$req$, $resp$>(r, \"$path$\",\n"
                 "      [this](auto& ctx, const $req$& q) { return $method$(ctx, q); }, o);\n");
    else if (!m->client_streaming())
      p.Print(v, "    ::coronet::grpc::add_server_streaming<$req$, $resp$>(r, \"$path$\",\n"
                 "      [this](auto& ctx, const $req$& q, auto& out) { return $method$(ctx, q, out); }, o);\n");
    else if (!m->server_streaming())
      p.Print(v, "    ::coronet::grpc::add_client_streaming<$req$, $resp$>(r, \"$path$\",\n"
                 "      [this](auto& ctx, auto& in) { return $method$(ctx, in); }, o);\n");
    else
      p.Print(v, "    ::coronet::grpc::add_bidi_streaming<$req$, $resp$>(r, \"$path$\",\n"
                 "      [this](auto& ctx, auto& in, auto& out) { return $method$(ctx, in, out); }, o);\n");
  }
  p.Print("  }\n");
}

void print_client_method(pb::io::Printer& p, const pb::MethodDescriptor* m, std::map<std::string, std::string> v)
{
  if (!m->client_streaming() && !m->server_streaming())
    p.Print(v, "  ::coronet::task<$resp$> $method$(const $req$& request, ::coronet::grpc::call_options o = {})\n"
               "  {\n    return channel_.unary<$resp$>(\"$path$\", ::coronet::grpc::serialize(request), std::move(o));\n  }\n");
  else if (!m->client_streaming()) // the request sent, the answers to read()
    p.Print(v, "  ::coronet::task<::coronet::grpc::client_call<$req$, $resp$>> $method$(const $req$& request,\n"
               "    ::coronet::grpc::call_options o = {})\n"
               "  {\n    return channel_.open_with<$req$, $resp$>(\"$path$\", request, std::move(o));\n  }\n");
  else // the requests to write(), then writes_done(); the answer (response()) or answers (read())
    p.Print(v, "  ::coronet::task<::coronet::grpc::client_call<$req$, $resp$>> $method$(::coronet::grpc::call_options o = {})\n"
               "  {\n    return channel_.open<$req$, $resp$>(\"$path$\", std::move(o));\n  }\n");
}

void print_service(pb::io::Printer& p, const pb::ServiceDescriptor* s)
{
  std::map<std::string, std::string> v{{"service", s->name()}, {"full", s->full_name()}};
  p.Print(v, "// $full$, served: override the methods it implements.\n"
             "class $service$Server : public ::coronet::grpc::service {\npublic:\n"
             "  static constexpr std::string_view service_name = \"$full$\";\n\n");
  for (int i = 0; i < s->method_count(); ++i)
    print_server_method(p, s->method(i), method_vars(s, s->method(i)));
  print_mount(p, s);
  p.Print("};\n\n");
  p.Print(v, "// $full$, called. Streams are sent whole, then read whole.\n"
             "class $service$Client {\npublic:\n"
             "  explicit $service$Client(::coronet::grpc::channel& channel) : channel_(channel) {}\n\n");
  for (int i = 0; i < s->method_count(); ++i)
    print_client_method(p, s->method(i), method_vars(s, s->method(i)));
  p.Print("\nprivate:\n  ::coronet::grpc::channel& channel_;\n};\n\n");
}

class generator final : public pb::compiler::CodeGenerator {
public:
  bool Generate(const pb::FileDescriptor* file, const std::string&, pb::compiler::GeneratorContext* context,
    std::string* error) const override
  {
    if (file->service_count() == 0)
      return true; // messages only: protoc's own output is all there is
    auto base = strip_proto(file->name());
    std::unique_ptr<pb::io::ZeroCopyOutputStream> out{context->Open(base + ".coronet.hpp")};
    pb::io::Printer p{out.get(), '$'};
    p.Print({{"file", file->name()}, {"base", base}},
      "// Generated by protoc-gen-coronet from $file$. Do not edit.\n#pragma once\n"
      "#include \"$base$.pb.h\"\n\n#include <coronet/grpc/client.hpp>\n#include <coronet/grpc/server.hpp>\n\n"
      "#include <string_view>\n#include <utility>\n#include <vector>\n\n");
    auto ns = cpp_namespace(file->package());
    if (!ns.empty())
      p.Print({{"ns", ns}}, "namespace $ns$ {\n\n");
    for (int i = 0; i < file->service_count(); ++i)
      print_service(p, file->service(i));
    if (!ns.empty())
      p.Print({{"ns", ns}}, "} // namespace $ns$\n");
    if (p.failed()) {
      *error = "protoc-gen-coronet: could not write " + base + ".coronet.hpp";
      return false;
    }
    return true;
  }
};

} // namespace

int main(int argc, char** argv)
{
  generator g;
  return google::protobuf::compiler::PluginMain(argc, argv, &g);
}
