#include "middleware/codec.hpp"

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

namespace {

// The output so far, held under the limit, and the error for a body that
// is not valid in its coding.
struct inflater {
  coding c;
  std::size_t limit;
  std::string out{};
  std::array<char, 16 * 1024> chunk{};

  // Appends the chunk's first n bytes: a zip bomb is never inflated whole.
  void take(std::size_t n)
  {
    out.append(chunk.data(), n);
    if (out.size() > limit)
      throw too_large();
  }
  error too_large() const
  {
    return error{status::payload_too_large, fmt::format("the decompressed request body is over {} bytes", limit)};
  }
  error corrupt(std::string_view why) const
  {
    return error{status::bad_request, fmt::format("the request body is not valid {}: {}", name_of(c), why)};
  }
};

std::string inflate_zlib(inflater& z, std::string_view in)
{
  z_stream s{};
  // gzip: the gzip wrapper; deflate: zlib's (RFC 9110 8.4.1.2)
  if (inflateInit2(&s, z.c == coding::gzip ? 16 + 15 : 15) != Z_OK)
    throw std::runtime_error("zlib: inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> end{&s, inflateEnd};
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  for (;;) {
    s.next_out = reinterpret_cast<Bytef*>(z.chunk.data());
    s.avail_out = z.chunk.size();
    int r = inflate(&s, Z_NO_FLUSH);
    z.take(z.chunk.size() - s.avail_out);
    if (r == Z_STREAM_END)
      return std::move(z.out);
    if (r != Z_OK)
      throw z.corrupt(s.msg ? s.msg : r == Z_BUF_ERROR ? "truncated" : "corrupt");
  }
}

std::string inflate_zstd(inflater& z, std::string_view in)
{
  std::unique_ptr<ZSTD_DCtx, std::size_t (*)(ZSTD_DCtx*)> d{ZSTD_createDCtx(), ZSTD_freeDCtx};
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  std::size_t left = 1;
  while (input.pos < input.size || left != 0) {
    ZSTD_outBuffer output{z.chunk.data(), z.chunk.size(), 0};
    left = ZSTD_decompressStream(d.get(), &output, &input);
    if (ZSTD_isError(left))
      throw z.corrupt(ZSTD_getErrorName(left));
    z.take(output.pos);
    if (output.pos == 0 && input.pos == input.size && left != 0)
      throw z.corrupt("truncated");
  }
  return std::move(z.out);
}

std::string inflate_brotli(inflater& z, std::string_view in)
{
  std::unique_ptr<BrotliDecoderState, void (*)(BrotliDecoderState*)> b{
    BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance};
  std::size_t avail_in = in.size();
  auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
  for (;;) {
    std::size_t avail_out = z.chunk.size();
    auto* next_out = reinterpret_cast<std::uint8_t*>(z.chunk.data());
    auto r = BrotliDecoderDecompressStream(b.get(), &avail_in, &next_in, &avail_out, &next_out, nullptr);
    z.take(z.chunk.size() - avail_out);
    if (r == BROTLI_DECODER_RESULT_SUCCESS)
      return std::move(z.out);
    if (r == BROTLI_DECODER_RESULT_ERROR)
      throw z.corrupt(BrotliDecoderErrorString(BrotliDecoderGetErrorCode(b.get())));
    if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
      throw z.corrupt("truncated");
  }
}

} // namespace

std::string decompress(coding c, std::string_view in, std::size_t limit)
{
  inflater z{c, limit};
  switch (c) {
  case coding::gzip:
  case coding::deflate: return inflate_zlib(z, in);
  case coding::zstd: return inflate_zstd(z, in);
  case coding::br: return inflate_brotli(z, in);
  case coding::identity: break;
  }
  if (in.size() > limit)
    throw z.too_large();
  return std::string(in);
}

} // namespace coronet::http::detail
