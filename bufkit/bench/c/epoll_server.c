/*
 * The C contender of ``bufkit bench``: the machine's limit for the bench's
 * echo and fanout protocols, with the control lines every contender speaks.
 *
 * One thread, one level-triggered epoll set, one shared 256 KiB read buffer.
 * Echo sends what each read brought at once; only the bytes the kernel did
 * not take are copied into a buffer of the connection's own, and reading
 * stops until they are gone. Fanout answers every request byte with 3,200
 * bytes (the 32 writes of 100 bytes the Python servers make) in one send.
 * An idle connection holds its descriptor and a 24-byte record, nothing else.
 *
 * Usage: epoll_server [HOST]. It prints READY {"pid","echo","fanout"} and
 * then answers "stats" on stdin with STATS {json}; "quit" or the end of
 * stdin ends it. Build: cc -O2 -o epoll_server epoll_server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)
#define RESPONSE 3200 /* FANOUT_WRITES x FANOUT_CHUNK */
#define BACKLOG 4096
#define EVENTS 256
#define MAX_READS 16

enum kind { ECHO, FANOUT };

struct conn {
    int fd;
    enum kind kind;
    char *pending;     /* echo: bytes the kernel has not taken yet */
    size_t size, sent; /* pending bytes and how many of them left */
};

static char readbuf[READ_SIZE];
static char response[READ_SIZE];
static int listeners[2];
static int epfd;

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_fds(void) {
    int count = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir))
        if (e->d_name[0] != '.')
            count++;
    closedir(dir);
    return count;
}

static long rss_bytes(void) {
    long pages = 0, size = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm == NULL)
        return 0;
    if (fscanf(statm, "%ld %ld", &size, &pages) != 2)
        pages = 0;
    fclose(statm);
    return pages * sysconf(_SC_PAGESIZE);
}

static void say(const char *line) {
    size_t left = strlen(line);
    while (left > 0) {
        ssize_t n = write(1, line, left);
        if (n <= 0)
            exit(1);
        line += n;
        left -= (size_t)n;
    }
}

static void stats(void) {
    char line[256];
    snprintf(line, sizeof line,
             "STATS {\"t\":%.9f,\"cpu\":%.9f,\"rss\":%ld,\"fds\":%d,"
             "\"pool_bytes\":null,\"buffer_bytes\":0}\n",
             now(CLOCK_MONOTONIC), now(CLOCK_PROCESS_CPUTIME_ID), rss_bytes(),
             open_fds());
    say(line);
}

static void control(void) {
    static char line[512];
    static size_t used;
    ssize_t n = read(0, line + used, sizeof line - used - 1);
    if (n <= 0)
        exit(0);
    used += (size_t)n;
    char *start = line, *end;
    while ((end = memchr(start, '\n', used - (size_t)(start - line))) != NULL) {
        *end = '\0';
        if (strcmp(start, "stats") == 0)
            stats();
        else if (strcmp(start, "quit") == 0)
            exit(0);
        start = end + 1;
    }
    used -= (size_t)(start - line);
    memmove(line, start, used);
    if (used == sizeof line - 1)
        used = 0; /* an overlong line is dropped */
}

static void interest(struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(struct conn *c) {
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Send from ``data``; keep what the kernel refused. 0: keep going, -1: gone. */
static int send_or_keep(struct conn *c, const char *data, size_t size) {
    ssize_t n = send(c->fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    size_t sent = n < 0 ? 0 : (size_t)n;
    if (sent == size)
        return 0;
    c->size = size - sent;
    c->sent = 0;
    if (c->kind == ECHO) {
        c->pending = malloc(c->size);
        if (c->pending == NULL)
            return -1;
        memcpy(c->pending, data + sent, c->size);
    }
    interest(c, EPOLLOUT);
    return 1;
}

static int flush(struct conn *c) {
    while (c->sent < c->size) {
        size_t left = c->size - c->sent;
        const char *from = c->kind == ECHO ? c->pending + c->sent : response;
        if (c->kind == FANOUT && left > sizeof response)
            left = sizeof response;
        ssize_t n = send(c->fd, from, left, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        c->sent += (size_t)n;
    }
    free(c->pending);
    c->pending = NULL;
    c->size = c->sent = 0;
    interest(c, EPOLLIN);
    return 0;
}

static int readable(struct conn *c) {
    for (int i = 0; i < MAX_READS; i++) {
        ssize_t n = recv(c->fd, readbuf, sizeof readbuf, 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        int kept;
        if (c->kind == ECHO) {
            kept = send_or_keep(c, readbuf, (size_t)n);
        } else {
            size_t want = (size_t)n * RESPONSE;
            size_t first = want < sizeof response ? want : sizeof response;
            kept = send_or_keep(c, response, first);
            if (kept == 1) {
                c->size += want - first;
            } else if (kept == 0 && want > first) {
                c->size = want - first;
                c->sent = 0;
                interest(c, EPOLLOUT);
                kept = 1;
            }
        }
        if (kept != 0)
            return kept < 0 ? -1 : 0;
        if ((size_t)n < sizeof readbuf)
            return 0;
    }
    return 0;
}

static void accept_all(int listener, enum kind kind) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->kind = kind;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            drop(c);
    }
}

static int listen_on(const char *host, int *port) {
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        return -1;
    *port = ntohs(addr.sin_port);
    return fd;
}

static void raise_nofile(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

static void serve(void) {
    struct epoll_event events[EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, EVENTS, -1);
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == (void *)&listeners[0] || tag == (void *)&listeners[1]) {
                int which = tag == (void *)&listeners[0] ? ECHO : FANOUT;
                accept_all(listeners[which], (enum kind)which);
                continue;
            }
            if (tag == NULL) {
                control();
                continue;
            }
            struct conn *c = tag;
            int status = c->size ? flush(c) : readable(c);
            if (status < 0)
                drop(c); /* EOF, reset or any other error: quietly */
        }
    }
}

int main(int argc, char **argv) {
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int ports[2];
    raise_nofile();
    memset(response, 'x', sizeof response);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < 2; i++) {
        listeners[i] = listen_on(host, &ports[i]);
        if (listeners[i] < 0) {
            printf("SKIP cannot listen on %s: %s\n", host, strerror(errno));
            return 3;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listeners[i]};
        epoll_ctl(epfd, EPOLL_CTL_ADD, listeners[i], &ev);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    char line[128];
    snprintf(line, sizeof line, "READY {\"pid\":%d,\"echo\":%d,\"fanout\":%d}\n",
             (int)getpid(), ports[0], ports[1]);
    say(line);
    serve();
    return 0;
}
