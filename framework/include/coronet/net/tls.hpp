#pragma once
// TLS contexts for servers and clients (OpenSSL 3 through asio::ssl).
//
//   auto tls = net::tls_server::from(cfg);        // nullptr unless [tls] names a certificate
//   if (tls) rt.on_reload([tls] { tls->reload(); });  // SIGHUP: new certificate for new connections
//
//   auto ctx = net::make_client_tls(net::tls_client_options::from(cfg));
//
// Servers: TLS 1.2 or 1.3 only (tls.min_version), OpenSSL's modern cipher
// list with the server's preference, no compression, no renegotiation,
// session tickets for resumption, ALPN from `alpn`, and client certificates
// required and verified when tls.client_ca_file is set (mTLS). Clients:
// verification against the system CA store (or client.ca_file) by default;
// the host name is checked in net::stream::handshake.
#include <coronet/config.hpp>

#include <asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>


namespace coronet::net {

// [tls]: a server's certificate; the client's TLS keys are tls_client_keys.
inline constexpr config_key tls_keys[] = {
  {"tls.cert_file", "", "PEM certificate (chain); with key_file, the listener speaks TLS"},
  {"tls.key_file", "", "PEM private key; SIGHUP reloads both for new connections"},
  {"tls.client_ca_file", "", "when set, clients must present a certificate this CA signed (mTLS)"},
  {"tls.min_version", "1.2", "\"1.2\" or \"1.3\""},
  {"tls.handshake_timeout_ms", 10000, "a handshake not done in time closes the connection", 1},
  {"tls.ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    "TLS 1.2 suites, in OpenSSL's syntax (the default: Mozilla's intermediate, ECDHE with AEAD only)"},
  {"tls.ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    "TLS 1.3 suites, in OpenSSL's syntax"},
};

inline constexpr config_key tls_client_keys[] = {
  {"client.ca_file", "", "PEM CAs to trust for https://; empty: the system's store"},
  {"client.cert_file", "", "a client certificate to present (mTLS), PEM"},
  {"client.key_file", "", "its private key, PEM"},
  {"client.insecure_skip_verify", false, "trust any server certificate (logged as a warning)"},
  {"client.ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    "TLS 1.2 suites the client offers, in OpenSSL's syntax (Mozilla's intermediate)"},
  {"client.ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    "TLS 1.3 suites the client offers"},
};

struct tls_server_options {
  std::string cert_file;      // PEM, the chain after the leaf
  std::string key_file;       // PEM
  std::string client_ca_file; // PEM; when set, clients must present a certificate it signed
  std::string min_version{config_default<std::string_view>(tls_keys, "tls.min_version")};
  std::chrono::milliseconds handshake_timeout{config_default<std::int64_t>(tls_keys, "tls.handshake_timeout_ms")};
  std::vector<std::string> alpn{"http/1.1"}; // in the server's order of preference
  std::string ciphers{config_default<std::string_view>(tls_keys, "tls.ciphers")};           // TLS 1.2
  std::string ciphersuites{config_default<std::string_view>(tls_keys, "tls.ciphersuites")}; // TLS 1.3

  bool enabled() const noexcept { return !cert_file.empty() || !key_file.empty(); }
  // The [tls] section; a bad value is a config_error naming the key.
  static tls_server_options from(const config& cfg);
};

// A server's TLS context, replaced as a whole by reload(): connections that
// are open keep the context they began with.
class tls_server final {
public:
  // Throws config_error naming the key and the file that cannot be used
  // (and where the key was set, given the config).
  explicit tls_server(tls_server_options options, const config* cfg = nullptr);
  // nullptr when the config names no certificate.
  static std::shared_ptr<tls_server> from(const config& cfg);

  std::shared_ptr<asio::ssl::context> context() const;
  const tls_server_options& options() const noexcept { return options_; }
  // Reads the files again. On failure the old context stays, one error line
  // is logged and false returned; it never throws.
  bool reload() noexcept;

private:
  tls_server_options options_;
  mutable std::mutex mutex_;
  std::shared_ptr<asio::ssl::context> current_;
};

struct tls_client_options {
  std::string ca_file;   // PEM; empty: the system's CA store
  std::string cert_file; // a client certificate to present (mTLS), PEM
  std::string key_file;
  // trust any certificate and name (logged as a warning)
  bool insecure_skip_verify = config_default<bool>(tls_client_keys, "client.insecure_skip_verify");
  std::vector<std::string> alpn{"http/1.1"};
  std::string ciphers{config_default<std::string_view>(tls_client_keys, "client.ciphers")};
  std::string ciphersuites{config_default<std::string_view>(tls_client_keys, "client.ciphersuites")};

  // The client.* TLS keys.
  static tls_client_options from(const config& cfg);
};

// Throws config_error naming the key and the file that cannot be used.
std::shared_ptr<asio::ssl::context> make_client_tls(const tls_client_options& options, const config* cfg = nullptr);

// Why a handshake failed, as a short label for logs and the
// coronet_tls_handshake_failures_total{reason} metric: timeout, closed,
// not_tls, version, cipher, certificate, protocol.
std::string_view handshake_failure_reason(const std::error_code& ec) noexcept;
void count_handshake_failure(std::string_view reason);
// coronet_tls_handshakes_total{resumed}
void count_handshake(bool resumed);
// The reason OpenSSL gives for a TLS error code (verification included).
std::string tls_error_message(const std::error_code& ec, void* native_ssl = nullptr);

} // namespace coronet::net
