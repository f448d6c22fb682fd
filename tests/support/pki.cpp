#include "support/pki.hpp"

#include <cstdlib>
#include <stdexcept>

#include <unistd.h>

namespace coronet::test {

const std::string& pki_dir()
{
  static const std::string dir = [] {
    std::string d = "/tmp/coronet-test-pki-" + std::to_string(::getpid());
    std::string command = std::string(CORONET_SOURCE_DIR) + "/scripts/make-certs.sh " + d + " >/dev/null";
    if (std::system(command.c_str()) != 0)
      throw std::runtime_error("scripts/make-certs.sh failed (is the openssl command installed?)");
    return d;
  }();
  return dir;
}

} // namespace coronet::test
