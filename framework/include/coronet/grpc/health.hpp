#pragma once
// gRPC's standard health service (grpc.health.v1.Health), tied to the
// runtime's readiness as GET /readyz is: SERVING while the server serves,
// NOT_SERVING once it is stopping, so load balancers and Kubernetes' gRPC
// probes drain it first.
//
//   grpc::health health{rt, {"hello.Greeter"}};   // the services it answers for ("" is the server)
//   health.mount(routes);
//
// Check answers the status, or NOT_FOUND for a service it does not know.
// Watch sends the status at once and again when it changes: at the stop it
// sends NOT_SERVING and ends (for a service it does not know, it sends
// SERVICE_UNKNOWN and ends: the list is fixed). Its messages are two small ones, written and
// read here by hand: no libprotobuf needed.
#include <coronet/grpc/server.hpp>
#include <coronet/runtime.hpp>

#include <string>
#include <vector>

namespace coronet::grpc {

class health final : public service {
public:
  enum class serving_status : int { unknown = 0, serving = 1, not_serving = 2, service_unknown = 3 };

  health(runtime& rt, std::vector<std::string> services);
  void mount(http::router& r, const options& o = {}) override;

  // What Check answers for `service_name` now (std::nullopt: not known).
  std::optional<serving_status> status_of(std::string_view service_name) const;

private:
  runtime& rt_;
  std::vector<std::string> services_;
};

} // namespace coronet::grpc
