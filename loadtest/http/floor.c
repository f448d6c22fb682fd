// The floor: the least work an HTTP server on one thread can do. One epoll
// loop, level-triggered, no parsing: every "\r\n\r\n" read answers one fixed
// response (so pipelined requests are answered, batched in one write).
// Nothing a real server needs (limits, timeouts, bodies) is here; the point
// is the system-call and wake-up cost a framework cannot go below.
//   floor PORT
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char response[] =
  "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nServer: floor\r\n"
  "Date: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\nHello, World!";

// Per connection: how many bytes of "\r\n\r\n" matched at the end of the
// last read, so a terminator split across reads still counts.
static unsigned char matched[65536];

int main(int argc, char** argv)
{
  int port = argc > 1 ? atoi(argv[1]) : 8090;
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr*)&at, sizeof at) != 0 || listen(listener, 4096) != 0) {
    perror("floor: listen");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  fprintf(stderr, "listening on 127.0.0.1:%d\n", port);

  static char in[65536];
  static char out[sizeof response * 64];
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int c;
        while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (c >= (int)sizeof matched) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          matched[c] = 0;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, in, sizeof in);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN)
          continue;
        close(fd);
        continue;
      }
      int requests = 0;
      unsigned m = matched[fd];
      for (ssize_t k = 0; k < got; ++k) {
        char want = (m & 1) ? '\n' : '\r';
        if (in[k] == want) {
          if (++m == 4) {
            ++requests;
            m = 0;
          }
        } else {
          m = in[k] == '\r' ? 1 : 0;
        }
      }
      matched[fd] = (unsigned char)m;
      size_t len = 0;
      while (requests > 0) {
        int batch = requests < 64 ? requests : 64;
        for (int r = 0; r < batch; ++r, len += sizeof response - 1)
          memcpy(out + len, response, sizeof response - 1);
        requests -= batch;
        if (write(fd, out, len) != (ssize_t)len) {
          close(fd);
          break;
        }
        len = 0;
      }
    }
  }
}
