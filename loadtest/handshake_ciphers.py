# Handshake CPU with the TLS defaults before #29 (OpenSSL's lists, set through the new keys)
# and after (Mozilla's intermediate), one binary: server on core 0, openssl s_time on core 1,
# 8 s per run, medians of 3. Usage: python3 loadtest/handshake_ciphers.py PKI_DIR
import os, re, socket, statistics, subprocess, sys, time
BIN=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build-release", "bin", "coronet-hello")
PKI=sys.argv[1] if len(sys.argv) > 1 else "/tmp/pki"  # scripts/make-certs.sh PKI
OLD=["--set","tls.ciphers=DEFAULT","--set","tls.ciphersuites=TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"]
def run(extra, port, reuse):
    p=subprocess.Popen(["taskset","-c","0",BIN,"--listen",f"127.0.0.1:{port}","--threads","1","--set","log.access=false",
        "--set",f"tls.cert_file={PKI}/server.pem","--set",f"tls.key_file={PKI}/server.key",*extra],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    for _ in range(200):  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.01)
    def cpu():
        f=open(f"/proc/{p.pid}/stat").read().split(")")[1].split()
        return (int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK")
    c0=cpu()
    out=subprocess.run(["taskset","-c","1","openssl","s_time","-connect",f"127.0.0.1:{port}","-time","8"]+(["-reuse","-tls1_2"] if reuse else ["-new"]),capture_output=True,text=True).stdout
    c1=cpu()
    p.terminate(); p.wait()
    n,secs=map(int,re.findall(r"(\d+) connections in (\d+) real seconds",out)[-1])
    return n/secs, (c1-c0)/n*1e6
res={}
for rep in range(3):
    for name,extra in (("before (OpenSSL defaults)",OLD),("after (intermediate)",[])):
        for reuse in (False,True):
            r=run(extra,48500+rep,reuse)
            res.setdefault((name,reuse),[]).append(r)
for (name,reuse),v in res.items():
    print(f"{name:28} {'resumed 1.2' if reuse else 'full 1.3':12} handshakes/s {statistics.median(x[0] for x in v):7.0f}  CPU us/handshake {statistics.median(x[1] for x in v):6.1f}  runs {[round(x[1]) for x in v]}")
