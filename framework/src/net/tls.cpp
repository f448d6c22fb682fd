#include <coronet/net/tls.hpp>

#include <coronet/config.hpp>
#include <coronet/metrics.hpp>
#include <coronet/net/stream.hpp>

#include <asio/ssl/error.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <stdexcept>

namespace coronet::net {

namespace {

// The newest OpenSSL error on this thread's queue, or `fallback`; clears the queue.
std::string openssl_error(std::string_view fallback)
{
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error())
    last = e;
  if (last == 0)
    return std::string(fallback);
  char text[256];
  ERR_error_string_n(last, text, sizeof text);
  const char* reason = ERR_reason_error_string(last);
  return reason ? std::string(reason) : std::string(text);
}

// A file named by a key that cannot be used; turned into a config_error
// that names the key, the file and where the key was set.
struct bad_tls_file : std::runtime_error {
  bad_tls_file(const char* k, const std::string& what) : std::runtime_error(what), key(k) {}
  const char* key;
};

[[noreturn]] void bad_file(const char* key, const std::string& file, std::string_view why)
{
  throw bad_tls_file(key, fmt::format("'{}': {}", file, why));
}

template <class F>
auto or_config_error(const config* cfg, F&& make)
{
  try {
    return make();
  } catch (const bad_tls_file& e) {
    if (cfg)
      throw config_error(fmt::format("{}: key '{}' {}", cfg->origin(e.key), e.key, e.what()));
    throw config_error(fmt::format("key '{}' {}", e.key, e.what()));
  }
}

void check_readable(const char* key, const std::string& file)
{
  std::ifstream in{file};
  if (!in)
    bad_file(key, file, std::error_code(errno, std::generic_category()).message());
}

// The private key for the certificate already in `native`.
void use_key(SSL_CTX* native, const char* key, const std::string& file, const std::string& cert_file)
{
  ERR_clear_error();
  if (SSL_CTX_use_PrivateKey_file(native, file.c_str(), SSL_FILETYPE_PEM) != 1) {
    bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    if (mismatch) {
      ERR_clear_error();
      bad_file(key, file, "does not match the certificate in '" + cert_file + "'");
    }
    bad_file(key, file, "not a PEM private key: " + openssl_error("unreadable"));
  }
  if (SSL_CTX_check_private_key(native) != 1)
    bad_file(key, file, "does not match the certificate in '" + cert_file + "'");
}

// A certificate (with its chain) and its key, named by their config keys.
void use_certificate(SSL_CTX* native, const char* cert_key, const std::string& cert_file, const char* key_key,
  const std::string& key_file)
{
  check_readable(cert_key, cert_file);
  check_readable(key_key, key_file);
  if (SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1)
    bad_file(cert_key, cert_file, "not a PEM certificate: " + openssl_error("unreadable"));
  use_key(native, key_key, key_file, cert_file);
}

// What servers and clients share: TLS 1.2 at least, no compression, no
// renegotiation; record buffers released while idle (an idle connection
// keeps none), a record read in one read() (not its 5-byte header and then
// the rest), and the chain sent as the certificate file holds it (without
// SSL_MODE_NO_AUTO_CHAIN OpenSSL rebuilds it from the trust store on every
// handshake; nginx turns that off too).
void common_settings(SSL_CTX* native)
{
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  SSL_CTX_set_read_ahead(native, 1);
}

// The suites a context offers: `ciphers` for TLS 1.2, `suites` for 1.3. A
// list OpenSSL takes none of is a config_error naming the key.
void use_ciphers(SSL_CTX* native, std::string_view prefix, const std::string& ciphers, const std::string& suites)
{
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(native, ciphers.c_str()) != 1)
    throw config_error(fmt::format("{}ciphers: no suite in '{}' is one OpenSSL offers", prefix, ciphers));
  if (SSL_CTX_set_ciphersuites(native, suites.c_str()) != 1)
    throw config_error(fmt::format("{}ciphersuites: '{}' is not a list of TLS 1.3 suites OpenSSL knows "
      "(e.g. TLS_AES_128_GCM_SHA256)", prefix, suites));
  ERR_clear_error();
}

// The same check at config time, to name the file and line.
void check_ciphers(const config& cfg, std::string_view prefix, const std::string& ciphers, const std::string& suites)
{
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> scratch{SSL_CTX_new(TLS_method()), SSL_CTX_free};
  try {
    use_ciphers(scratch.get(), prefix, ciphers, suites);
  } catch (const config_error& e) {
    std::string m = e.what();
    auto colon = m.find(": ");
    cfg.fail(m.substr(0, colon), m.substr(colon + 2));
  }
}

// OpenSSL 3.0 fills a certificate's cached extensions (key ids, usages) on
// its first use in a handshake, and when handshakes on two workers use a
// shared certificate (the trusted CA, the context's own chain) for the first
// time at once, both fill it: one frees and rewrites what the other is
// comparing (TSan: a race between ASN1_STRING_set and ASN1_STRING_cmp, seen
// in the gateway calling HTTPS backends on 2 and 4 workers). Filled here,
// while one thread holds the context, they are never written again.
void fill_certificate_caches(SSL_CTX* native)
{
  STACK_OF(X509_OBJECT)* trusted = X509_STORE_get0_objects(SSL_CTX_get_cert_store(native));
  for (int i = 0; i < sk_X509_OBJECT_num(trusted); ++i)
    if (X509* x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(trusted, i)))
      X509_check_purpose(x, -1, 0);
  if (X509* own = SSL_CTX_get0_certificate(native))
    X509_check_purpose(own, -1, 0);
  STACK_OF(X509)* chain = nullptr;
  if (SSL_CTX_get0_chain_certs(native, &chain) == 1 && chain)
    for (int i = 0; i < sk_X509_num(chain); ++i)
      X509_check_purpose(sk_X509_value(chain, i), -1, 0);
}

// Two keys that are set together or not at all.
void require_pair(const config& cfg, const char* a, const std::string& a_value, const char* b,
  const std::string& b_value)
{
  if (a_value.empty() != b_value.empty())
    cfg.fail(a_value.empty() ? a : b, fmt::format("must be set together with {} and {}", a, b));
}

// Server ALPN: the first of our protocols that the client offers.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
  void* arg)
{
  auto& wire = *static_cast<const std::string*>(arg);
  unsigned char* chosen = nullptr;
  unsigned char chosen_len = 0;
  if (SSL_select_next_proto(&chosen, &chosen_len, reinterpret_cast<const unsigned char*>(wire.data()),
        static_cast<unsigned>(wire.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; // no protocol in common: go on without ALPN, as nginx does
  *out = chosen;
  *outlen = chosen_len;
  return SSL_TLSEXT_ERR_OK;
}

std::string alpn_wire(const std::vector<std::string>& protocols)
{
  std::string wire;
  for (auto& p : protocols) {
    wire.push_back(static_cast<char>(p.size()));
    wire.append(p);
  }
  return wire;
}

// Keeps the ALPN list alive as long as the context.
struct server_context final : asio::ssl::context {
  server_context() : asio::ssl::context(asio::ssl::context::tls_server) {}
  std::string alpn;
};

std::shared_ptr<asio::ssl::context> make_server_context(const tls_server_options& o)
{
  auto ctx = std::make_shared<server_context>();
  SSL_CTX* native = ctx->native_handle();
  common_settings(native);
  if (o.min_version == "1.3")
    SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE);
  use_ciphers(native, "tls.", o.ciphers, o.ciphersuites);
  use_certificate(native, "tls.cert_file", o.cert_file, "tls.key_file", o.key_file);
  if (!o.client_ca_file.empty()) {
    check_readable("tls.client_ca_file", o.client_ca_file);
    if (SSL_CTX_load_verify_locations(native, o.client_ca_file.c_str(), nullptr) != 1)
      bad_file("tls.client_ca_file", o.client_ca_file, "no PEM certificates: " + openssl_error("unreadable"));
    if (auto* names = SSL_load_client_CA_file(o.client_ca_file.c_str()))
      SSL_CTX_set_client_CA_list(native, names);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: each costs a key
  // derivation, an encryption and a MAC (the second was 6% of a full
  // handshake's instructions under callgrind), and a client resumes one
  // connection from it (Go sends one too).
  SSL_CTX_set_num_tickets(native, 1);
  // Resumed sessions must belong to this service (required with client certificates).
  static const unsigned char id[] = "coronet";
  SSL_CTX_set_session_id_context(native, id, sizeof id - 1);
  ctx->alpn = alpn_wire(o.alpn);
  SSL_CTX_set_alpn_select_cb(native, select_alpn, &ctx->alpn);
  fill_certificate_caches(native);
  return ctx;
}

struct tls_metrics {
  metrics::family<metrics::counter>& failures;
  metrics::counter& full;
  metrics::counter& resumed;
};

tls_metrics& families()
{
  auto& r = metrics::registry::global();
  auto& done = r.counters("coronet_tls_handshakes_total", "TLS handshakes completed, full or resumed.", {"resumed"});
  static tls_metrics m{r.counters("coronet_tls_handshake_failures_total", "TLS handshakes that failed, by reason.",
                         {"reason"}),
    done.with({"false"}), done.with({"true"})};
  return m;
}

} // namespace

tls_server_options tls_server_options::from(const config& cfg)
{
  tls_server_options o;
  o.cert_file = cfg.get_string("tls.cert_file");
  o.key_file = cfg.get_string("tls.key_file");
  o.client_ca_file = cfg.get_string("tls.client_ca_file");
  o.min_version = cfg.get_string("tls.min_version");
  o.handshake_timeout = cfg.get_positive_ms("tls.handshake_timeout_ms");
  if (o.min_version != "1.2" && o.min_version != "1.3")
    cfg.fail("tls.min_version", "must be \"1.2\" or \"1.3\"");
  require_pair(cfg, "tls.cert_file", o.cert_file, "tls.key_file", o.key_file);
  if (!o.enabled() && !o.client_ca_file.empty())
    cfg.fail("tls.client_ca_file", "needs tls.cert_file and tls.key_file");
  o.ciphers = cfg.get_string("tls.ciphers");
  o.ciphersuites = cfg.get_string("tls.ciphersuites");
  check_ciphers(cfg, "tls.", o.ciphers, o.ciphersuites);
  return o;
}

tls_server::tls_server(tls_server_options options, const config* cfg)
  : options_(std::move(options)), current_(or_config_error(cfg, [&] { return make_server_context(options_); }))
{
  families();
}

std::shared_ptr<tls_server> tls_server::from(const config& cfg)
{
  auto o = tls_server_options::from(cfg);
  if (!o.enabled())
    return nullptr;
  return std::make_shared<tls_server>(std::move(o), &cfg);
}

std::shared_ptr<asio::ssl::context> tls_server::context() const
{
  std::lock_guard lock{mutex_};
  return current_;
}

bool tls_server::reload() noexcept
{
  try {
    auto fresh = make_server_context(options_);
    {
      std::lock_guard lock{mutex_};
      current_ = std::move(fresh);
    }
    spdlog::info("tls: reloaded the certificate from {}", options_.cert_file);
    return true;
  } catch (const bad_tls_file& e) {
    spdlog::error("tls: reload failed, keeping the current certificate: key '{}' {}", e.key, e.what());
    return false;
  } catch (const std::exception& e) {
    spdlog::error("tls: reload failed, keeping the current certificate: {}", e.what());
    return false;
  }
}

tls_client_options tls_client_options::from(const config& cfg)
{
  tls_client_options o;
  o.ca_file = cfg.get_string("client.ca_file");
  o.cert_file = cfg.get_string("client.cert_file");
  o.key_file = cfg.get_string("client.key_file");
  o.insecure_skip_verify = cfg.get_bool("client.insecure_skip_verify");
  require_pair(cfg, "client.cert_file", o.cert_file, "client.key_file", o.key_file);
  o.ciphers = cfg.get_string("client.ciphers");
  o.ciphersuites = cfg.get_string("client.ciphersuites");
  check_ciphers(cfg, "client.", o.ciphers, o.ciphersuites);
  return o;
}

namespace {

std::shared_ptr<asio::ssl::context> make_client_context(const tls_client_options& o)
{
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  common_settings(native);
  use_ciphers(native, "client.", o.ciphers, o.ciphersuites);
  // Sessions are kept by the client's pools (SSL_get1_session) for resumption.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  if (o.insecure_skip_verify) {
    spdlog::warn("tls: client.insecure_skip_verify is set: server certificates are NOT checked");
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  } else {
    if (!o.ca_file.empty()) {
      check_readable("client.ca_file", o.ca_file);
      if (SSL_CTX_load_verify_locations(native, o.ca_file.c_str(), nullptr) != 1)
        bad_file("client.ca_file", o.ca_file, "no PEM certificates: " + openssl_error("unreadable"));
    } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
      spdlog::warn("tls: the system CA store cannot be read: {}", openssl_error("unknown error"));
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  }
  if (!o.cert_file.empty())
    use_certificate(native, "client.cert_file", o.cert_file, "client.key_file", o.key_file);
  auto wire = alpn_wire(o.alpn);
  SSL_CTX_set_alpn_protos(native, reinterpret_cast<const unsigned char*>(wire.data()),
    static_cast<unsigned>(wire.size()));
  fill_certificate_caches(native);
  return ctx;
}

} // namespace

std::shared_ptr<asio::ssl::context> make_client_tls(const tls_client_options& o, const config* cfg)
{
  return or_config_error(cfg, [&] { return make_client_context(o); });
}

std::string_view handshake_failure_reason(const std::error_code& ec) noexcept
{
  if (ec == timed_out)
    return "timeout";
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::operation_aborted)
    return "closed";
  if (ec.category() != asio::error::get_ssl_category())
    return "closed";
  switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
  case SSL_R_HTTP_REQUEST:
  case SSL_R_HTTPS_PROXY_REQUEST:
  case SSL_R_WRONG_VERSION_NUMBER:
  case SSL_R_PACKET_LENGTH_TOO_LONG:
  case SSL_R_RECORD_LENGTH_MISMATCH:
    return "not_tls";
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
  case SSL_R_VERSION_TOO_LOW:
    return "version";
  case SSL_R_NO_SHARED_CIPHER:
  case SSL_R_NO_CIPHERS_AVAILABLE:
  case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    return "cipher";
  case SSL_R_CERTIFICATE_VERIFY_FAILED:
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    return "certificate";
  default:
    return "protocol";
  }
}

void count_handshake(bool resumed)
{
  (resumed ? families().resumed : families().full).inc();
}

void count_handshake_failure(std::string_view reason)
{
  families().failures.with({reason}).inc();
}

std::string tls_error_message(const std::error_code& ec, void* native_ssl)
{
  if (native_ssl) {
    long verify = SSL_get_verify_result(static_cast<SSL*>(native_ssl));
    if (verify != X509_V_OK)
      return fmt::format("certificate verify failed: {}", X509_verify_cert_error_string(verify));
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    if (reason)
      return reason;
  }
  return ec.message();
}

} // namespace coronet::net
