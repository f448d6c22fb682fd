#include "codec.hpp"

#include <coronet/http/error.hpp>
#include <coronet/http/headers.hpp>

#include <brotli/decode.h>
#include <fmt/format.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace coronet::http::detail {

std::string_view name_of(coding c) noexcept
{
  switch (c) {
  case coding::gzip: return "gzip";
  case coding::deflate: return "deflate";
  case coding::zstd: return "zstd";
  case coding::br: return "br";
  case coding::identity: break;
  }
  return "identity";
}

std::optional<coding> coding_named(std::string_view name) noexcept
{
  if (iequals(name, "gzip") || iequals(name, "x-gzip"))
    return coding::gzip;
  if (iequals(name, "deflate"))
    return coding::deflate;
  if (iequals(name, "zstd"))
    return coding::zstd;
  if (iequals(name, "br"))
    return coding::br;
  if (iequals(name, "identity"))
    return coding::identity;
  return std::nullopt;
}

std::string decompress(coding c, std::string_view in, std::size_t limit)
{
  auto too_large = [&] {
    return error{status::payload_too_large,
      fmt::format("the decompressed request body is over {} bytes", limit)};
  };
  auto corrupt = [&](std::string_view why) {
    return error{status::bad_request, fmt::format("the request body is not valid {}: {}", name_of(c), why)};
  };
  if (c == coding::identity) {
    if (in.size() > limit)
      throw too_large();
    return std::string(in);
  }
  std::string out;
  std::array<char, 16 * 1024> chunk;
  if (c == coding::gzip || c == coding::deflate) {
    z_stream z{};
    // gzip: the gzip wrapper; deflate: zlib's (RFC 9110 8.4.1.2), either accepted by 32 + 15
    if (inflateInit2(&z, c == coding::gzip ? 16 + 15 : 15) != Z_OK)
      throw std::runtime_error("zlib: inflateInit2 failed");
    std::unique_ptr<z_stream, int (*)(z_stream*)> end{&z, inflateEnd};
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      z.next_out = reinterpret_cast<Bytef*>(chunk.data());
      z.avail_out = chunk.size();
      int r = inflate(&z, Z_NO_FLUSH);
      out.append(chunk.data(), chunk.size() - z.avail_out);
      if (out.size() > limit)
        throw too_large();
      if (r == Z_STREAM_END)
        break;
      if (r != Z_OK)
        throw corrupt(z.msg ? z.msg : r == Z_BUF_ERROR ? "truncated" : "corrupt");
    }
    return out;
  }
  if (c == coding::zstd) {
    std::unique_ptr<ZSTD_DCtx, std::size_t (*)(ZSTD_DCtx*)> z{ZSTD_createDCtx(), ZSTD_freeDCtx};
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    std::size_t left = 1;
    while (input.pos < input.size || left != 0) {
      ZSTD_outBuffer output{chunk.data(), chunk.size(), 0};
      left = ZSTD_decompressStream(z.get(), &output, &input);
      if (ZSTD_isError(left))
        throw corrupt(ZSTD_getErrorName(left));
      out.append(chunk.data(), output.pos);
      if (out.size() > limit)
        throw too_large();
      if (output.pos == 0 && input.pos == input.size && left != 0)
        throw corrupt("truncated");
    }
    return out;
  }
  std::unique_ptr<BrotliDecoderState, void (*)(BrotliDecoderState*)> b{
    BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance};
  std::size_t avail_in = in.size();
  auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
  for (;;) {
    std::size_t avail_out = chunk.size();
    auto* next_out = reinterpret_cast<std::uint8_t*>(chunk.data());
    auto r = BrotliDecoderDecompressStream(b.get(), &avail_in, &next_in, &avail_out, &next_out, nullptr);
    out.append(chunk.data(), chunk.size() - avail_out);
    if (out.size() > limit)
      throw too_large();
    if (r == BROTLI_DECODER_RESULT_SUCCESS)
      return out;
    if (r == BROTLI_DECODER_RESULT_ERROR)
      throw corrupt(BrotliDecoderErrorString(BrotliDecoderGetErrorCode(b.get())));
    if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
      throw corrupt("truncated");
  }
}

} // namespace coronet::http::detail
