// Linux interfaces the Glibc module does not export to Swift (epoll, eventfd, accept4, getrandom).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

// accept4 is declared only under _GNU_SOURCE; declare it for Swift.
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
#include <sys/random.h>
