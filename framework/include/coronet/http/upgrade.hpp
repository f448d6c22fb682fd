#pragma once
// What an upgrade handler (response::upgrade) is given: the connection, once
// the 101 response is out. The server no longer applies its HTTP timeouts;
// the handler owns the protocol and its deadlines, and should end when the
// runtime stops (the server shuts the socket down after its drain timeout).
#include <coronet/net/stream.hpp>

#include <string>

namespace coronet {
class runtime;
}

namespace coronet::http {

struct upgraded {
  net::stream& stream;           // owned by the server; no deadlines set
  std::string buffered;          // bytes the client sent after the upgrade request
  runtime& rt;
};

} // namespace coronet::http
