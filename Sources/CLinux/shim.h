// Linux interfaces the Glibc module does not export to Swift.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

// accept4 is declared only under _GNU_SOURCE; declare it for Swift.
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
