#!/usr/bin/env bash
# Makes a throwaway certificate authority and certificates for trying TLS
# locally and for the tests, with the openssl command (ECDSA P-256, 30 days).
# Nothing here is secret or committed: run it again to get new ones.
#   scripts/make-certs.sh DIR
# In DIR: ca.pem (trust this), server.pem/server.key (localhost, 127.0.0.1),
# server2.pem/server2.key (the same names, another serial: a rotation),
# client.pem/client.key (a client certificate from the same CA),
# wrong-name.pem/.key (for wrong.example only), other-ca.pem and
# untrusted.pem/.key (localhost, from a CA nobody trusts) and
# untrusted-client.pem/.key (a client certificate from that CA).
set -euo pipefail
dir=${1:?usage: scripts/make-certs.sh DIR}
command -v openssl >/dev/null || { echo "make-certs.sh: needs the openssl command (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # NAME CN
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -days 30 -subj "/CN=$2" -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
issue() { # NAME CA CN SAN USAGE
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\n%s\n' "$5" \
    "${4:+subjectAltName=$4}" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 30 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "coronet test CA"
issue server ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth
issue server2 ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth
issue client ca "coronet test client" "" clientAuth
issue wrong-name ca wrong.example "DNS:wrong.example" serverAuth
ca other-ca "an untrusted CA"
issue untrusted other-ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth
issue untrusted-client other-ca "an untrusted client" "" clientAuth
chmod 644 ./*.pem
chmod 600 ./*.key
echo "make-certs: CA and certificates in $dir (trust $dir/ca.pem)"
