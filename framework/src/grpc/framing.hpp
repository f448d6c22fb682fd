#pragma once
// gRPC's length-prefixed messages, both sides: a flag byte (1: compressed
// with the call's grpc-encoding), a 4-byte big-endian length, the bytes.
#include <coronet/grpc/status.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coronet::grpc::detail {

struct message_head {
  bool compressed = false;
  std::size_t length = 0;
};

// The head at the start of `in`, std::nullopt when fewer than 5 bytes are
// there. Throws grpc::error: INTERNAL for a flag but 0 or 1,
// RESOURCE_EXHAUSTED for a length over `limit` (`limit_key` names it).
inline std::optional<message_head> read_head(std::string_view in, std::size_t limit, std::string_view limit_key)
{
  if (in.size() < 5)
    return std::nullopt;
  auto b = [in](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])); };
  if (b(0) > 1)
    throw error(code::internal, fmt::format("message flag {} (0 or 1)", b(0)));
  std::size_t length = b(1) << 24 | b(2) << 16 | b(3) << 8 | b(4);
  if (length > limit)
    throw error(code::resource_exhausted, fmt::format("a message of {} bytes is over {} ({})", length, limit_key, limit));
  return message_head{b(0) == 1, length};
}

// `message` with its prefix, appended to `out`.
inline void append_framed(std::string& out, std::string_view message)
{
  auto n = static_cast<std::uint32_t>(message.size());
  char head[5] = {0, static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
    static_cast<char>(n)};
  out.append(head, 5);
  out.append(message);
}

} // namespace coronet::grpc::detail
