#pragma once
// Throwaway certificates for TLS tests, made once per test process by
// scripts/make-certs.sh (see there for what is in the folder).
#include <string>

namespace coronet::test {

// The folder with ca.pem, server.pem/.key, client.pem/.key, ...
const std::string& pki_dir();
inline std::string pki(const std::string& file) { return pki_dir() + "/" + file; }

} // namespace coronet::test
