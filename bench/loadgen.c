/* loadgen.c -- a small HTTPS load generator that presents a client certificate.
 *
 * Each of --connections threads keeps one TLS connection alive (reconnecting
 * when the server closes it) and sends requests for --duration seconds, in
 * one of two modes:
 *
 *   closed loop (default): each connection sends its next request as soon
 *     as the previous answer arrived; latency is send to answer.
 *   open loop (--rate R): requests are due at fixed times, R per second in
 *     all (the k-th at start + k/R), whatever the server does; an idle
 *     connection takes the next due request, waits for its time and sends
 *     it. Latency runs from the time the request was DUE, not from when it
 *     could be sent, so a stall counts in full for every request it delays
 *     (no coordinated omission). Use enough connections that one is free
 *     when a request falls due (rate x expected latency, with room).
 *     Every request due during the run is measured: answers are awaited
 *     up to GRACE_S past its end; a failure counts with its latency, and
 *     a request still unsent then counts as answered at that moment.
 *
 * Latencies go into a log-scale histogram (1% buckets) merged at the end.
 * Prints one summary line per run, in a form bench/run.sh parses:
 *   mode=closed|open offered=R rate=R ok=N non2xx=N errors=E unsent=N
 *   dial_errors=N p50_ms=.. p90_ms=.. p99_ms=.. p999_ms=.. max_ms=..
 * (offered is 0 in closed loop; rate counts 2xx answers per second.)
 *
 * Varying requests: --header "Name: value" (repeatable) adds headers;
 * --unique TOKEN replaces every occurrence of TOKEN in the body and headers
 * with a string of the same length unique to each request (conditional
 * creates of distinct referrals); --paths FILE sends the paths of FILE (one
 * per line) in turn instead of --path (searches over many values).
 *
 * Several servers: --port P1,P2,... spreads the connections over them in
 * turn (connection i talks to port i mod n): two gateway instances on one
 * database, each given half the connections.
 */
#define _GNU_SOURCE /* strcasestr */
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define N_BUCKETS 2400 /* 1.01^2400 us is far beyond any timeout */
#define MAX_RESPONSE (8 * 1024 * 1024)
#define IO_TIMEOUT_S 30 /* a read or write stuck longer fails the request */
#define GRACE_S      10 /* open loop: how long past the run answers are awaited */
#define MAX_HEADERS  8
#define MAX_PORTS    8

struct options {
    const char *host, *port, *path, *method, *body_file, *content_type, *cert, *key, *ca;
    int connections;
    double duration;
    double rate; /* open loop: requests per second in all; 0: closed loop */
    const char *headers[MAX_HEADERS];
    int n_headers;
    const char *unique;     /* placeholder made unique per request, or NULL */
    const char *paths_file; /* paths sent in turn, or NULL */
    char *ports[MAX_PORTS]; /* --port P1,P2,...: connection i uses ports[i % n_ports] */
    int n_ports;
};

/* The open loop's schedule, shared by every connection. */
struct schedule {
    double start;
    atomic_ulong next; /* index of the next request to fall due */
};

struct worker {
    const struct options *opt;
    SSL_CTX *ctx;
    char **requests; /* the requests sent in turn (one unless --paths) */
    size_t *request_lens;
    size_t n_requests, next;
    const char *request;
    size_t request_len;
    char *own; /* --unique: this worker's copy of the request */
    size_t own_cap;
    uint64_t counter;
    int index;
    const char *port; /* this connection's server */
    double deadline;
    double hard_stop;       /* open loop: requests still unsent then count as late */
    struct schedule *sched; /* NULL: closed loop */
    uint64_t ok, errors, non2xx, dial_errors;
    uint64_t hist[N_BUCKETS];
    pthread_t thread;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    struct timespec ts;

    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

/* Open loop: the time the next request this connection takes falls due, or
 * a negative value once the run is over. Closed loop: now. */
static double next_due(struct worker *w)
{
    double due;

    if (!w->sched)
        return now_s();
    due = w->sched->start + (double)atomic_fetch_add(&w->sched->next, 1) / w->opt->rate;
    if (due >= w->deadline)
        return -1;
    sleep_until(due);
    return due;
}

static int bucket_of(double seconds)
{
    double us = seconds * 1e6;
    int b = us < 1 ? 0 : (int)(log(us) / log(1.01));

    return b >= N_BUCKETS ? N_BUCKETS - 1 : b;
}

static double bucket_ms(int b)
{
    return pow(1.01, b + 0.5) / 1000.0;
}

static SSL *dial(struct worker *w)
{
    static const struct timeval io_timeout = {IO_TIMEOUT_S, 0};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    SSL *ssl;
    int fd;

    if (getaddrinfo(w->opt->host, w->port, &hints, &ai) != 0)
        return NULL;
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io_timeout, sizeof io_timeout);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    ssl = SSL_new(w->ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    return ssl;
}

static void hang_up(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);

    SSL_free(ssl);
    close(fd);
}

/* Reads one response; returns the status, or -1 on a broken connection. */
static int read_response(SSL *ssl, char *buf, size_t cap)
{
    size_t have = 0, need = 0;
    char *end = NULL;
    int status = -1;

    for (;;) {
        int n;

        if (end && have >= need)
            return status;
        if (have == cap)
            return -1;
        n = SSL_read(ssl, buf + have, (int)(cap - have));
        if (n <= 0)
            return -1;
        have += (size_t)n;
        if (!end) {
            char *cl;

            buf[have < cap ? have : cap - 1] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (!end)
                continue;
            if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
                return -1;
            cl = strcasestr(buf, "\r\nContent-Length:");
            need = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
    }
}

/* Records one request's outcome; latency runs from t0 (due or sent). */
static void record(struct worker *w, double t0, int status)
{
    w->hist[bucket_of(now_s() - t0)]++;
    if (status < 0)
        w->errors++;
    else if (status >= 200 && status < 300)
        w->ok++;
    else
        w->non2xx++;
}

/* Picks the next request; with --unique, stamps this worker's copy. */
static void next_request(struct worker *w)
{
    const char *token = w->opt->unique;
    size_t tlen = token ? strlen(token) : 0;
    char stamp[64];
    char *p;

    w->request = w->requests[w->next];
    w->request_len = w->request_lens[w->next];
    w->next = (w->next + 1) % w->n_requests;
    if (!token)
        return;
    if (w->own_cap < w->request_len + 1) { /* --paths: requests differ in length */
        char *grown = realloc(w->own, w->request_len + 1);

        if (!grown)
            return;
        w->own = grown;
        w->own_cap = w->request_len + 1;
    }
    memcpy(w->own, w->request, w->request_len);
    snprintf(stamp, sizeof stamp, "%04d%0*llu", w->index % 10000, (int)(tlen - 4),
             (unsigned long long)w->counter++);
    for (p = w->own; (p = memmem(p, w->request_len - (size_t)(p - w->own), token, tlen));
         p += tlen)
        memcpy(p, stamp, tlen);
    w->request = w->own;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    char *buf = malloc(MAX_RESPONSE);
    SSL *ssl = NULL;

    while (buf) {
        double t0;
        int status;

        if (now_s() >= (w->sched ? w->hard_stop : w->deadline))
            break;
        if (!ssl && !(ssl = dial(w))) {
            w->dial_errors++;
            sleep_until(now_s() + 0.01);
            continue;
        }
        t0 = next_due(w);
        if (t0 < 0)
            break;
        next_request(w);
        if (SSL_write(ssl, w->request, (int)w->request_len) != (int)w->request_len ||
            (status = read_response(ssl, buf, MAX_RESPONSE)) < 0) {
            if (w->sched) /* open loop: the failure's latency counts too */
                record(w, t0, -1);
            else
                w->errors++;
            hang_up(ssl);
            ssl = NULL;
            continue;
        }
        record(w, t0, status);
    }
    if (ssl)
        hang_up(ssl);
    free(buf);
    free(w->own);
    return NULL;
}

static char *read_file(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;

    if (!f || fseek(f, 0, SEEK_END) || (*n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
        !(data = malloc((size_t)*n + 1)) || fread(data, 1, (size_t)*n, f) != (size_t)*n) {
        fprintf(stderr, "loadgen: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    data[*n] = '\0';
    return data;
}

static char *build_request(const struct options *o, const char *path, size_t *len)
{
    char *body = NULL, *req;
    long n = 0;
    size_t cap, used;
    int i;

    if (o->body_file)
        body = read_file(o->body_file, &n);
    cap = (size_t)n + 1024 + strlen(path);
    for (i = 0; i < o->n_headers; i++)
        cap += strlen(o->headers[i]) + 2;
    req = malloc(cap);
    if (!req)
        exit(2);
    used = (size_t)snprintf(req, cap,
                            "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: application/fhir+json\r\n"
                            "Content-Type: %s\r\nContent-Length: %ld\r\n",
                            o->method, path, o->host, o->content_type, n);
    for (i = 0; i < o->n_headers; i++)
        used += (size_t)snprintf(req + used, cap - used, "%s\r\n", o->headers[i]);
    used += (size_t)snprintf(req + used, cap - used, "\r\n");
    if (n)
        memcpy(req + used, body, (size_t)n);
    *len = used + (size_t)n;
    free(body);
    return req;
}

/* Every request a worker sends in turn: one, or one per line of --paths. */
static void build_requests(const struct options *o, struct worker *w)
{
    char *paths = NULL, *line, *save = NULL;
    long n = 0;
    size_t cap = 1;

    w->n_requests = 0;
    if (o->paths_file) {
        paths = read_file(o->paths_file, &n);
        for (line = paths; *line; line++)
            cap += *line == '\n';
    }
    w->requests = calloc(cap + 1, sizeof *w->requests);
    w->request_lens = calloc(cap + 1, sizeof *w->request_lens);
    if (!w->requests || !w->request_lens)
        exit(2);
    if (!paths) {
        w->requests[0] = build_request(o, o->path, &w->request_lens[0]);
        w->n_requests = 1;
        return;
    }
    for (line = strtok_r(paths, "\r\n", &save); line && w->n_requests <= cap;
         line = strtok_r(NULL, "\r\n", &save)) {
        w->requests[w->n_requests] = build_request(o, line, &w->request_lens[w->n_requests]);
        w->n_requests++;
    }
    free(paths);
    if (!w->n_requests) {
        fprintf(stderr, "loadgen: %s holds no paths\n", o->paths_file);
        exit(2);
    }
}

static SSL_CTX *tls(const struct options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx || SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1 ||
        (o->cert && (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
                     SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1))) {
        ERR_print_errors_fp(stderr);
        exit(2);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/* --port P1,P2,...: the list, split on commas, each a number. */
static bool parse_ports(struct options *o)
{
    char *list, *save = NULL, *p;

    if (!o->port || !(list = strdup(o->port)))
        return false;
    for (p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (o->n_ports == MAX_PORTS || !*p || strspn(p, "0123456789") != strlen(p))
            return false;
        o->ports[o->n_ports++] = p;
    }
    return o->n_ports > 0;
}

static void parse(int argc, char **argv, struct options *o)
{
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];

        if (!strcmp(k, "--host")) o->host = v;
        else if (!strcmp(k, "--port")) o->port = v;
        else if (!strcmp(k, "--path")) o->path = v;
        else if (!strcmp(k, "--method")) o->method = v;
        else if (!strcmp(k, "--body")) o->body_file = v;
        else if (!strcmp(k, "--content-type")) o->content_type = v;
        else if (!strcmp(k, "--cert")) o->cert = v;
        else if (!strcmp(k, "--key")) o->key = v;
        else if (!strcmp(k, "--ca")) o->ca = v;
        else if (!strcmp(k, "--connections")) o->connections = atoi(v);
        else if (!strcmp(k, "--duration")) o->duration = atof(v);
        else if (!strcmp(k, "--rate")) o->rate = atof(v);
        else if (!strcmp(k, "--unique")) o->unique = v;
        else if (!strcmp(k, "--paths")) o->paths_file = v;
        else if (!strcmp(k, "--header") && o->n_headers < MAX_HEADERS)
            o->headers[o->n_headers++] = v;
        else {
            fprintf(stderr, "loadgen: unknown option %s\n", k);
            exit(2);
        }
    }
    if (!parse_ports(o) || !o->ca || o->connections < 1 || o->duration <= 0 || o->rate < 0 ||
        (o->unique && (strlen(o->unique) < 8 || strlen(o->unique) > 40))) {
        fprintf(stderr, "usage: loadgen --port P[,P2...] --ca CA [--cert C --key K] [--path /x]"
                        " [--method POST --body FILE] [--connections 64] [--duration 10]"
                        " [--rate R (open loop)] [--header 'Name: value']"
                        " [--unique TOKEN(8-40 chars)] [--paths FILE]\n");
        exit(2);
    }
}

/* Open loop: requests that fell due but no connection took before the hard
 * stop; each counts as answered at the hard stop (a lower bound). */
static void count_unsent(const struct options *o, struct schedule *sched, double hard_stop,
                         uint64_t *hist, uint64_t *unsent)
{
    unsigned long k = atomic_load(&sched->next);

    for (;; k++) {
        double due = sched->start + (double)k / o->rate;

        if (due >= sched->start + o->duration)
            break;
        hist[bucket_of(hard_stop - due)]++;
        (*unsent)++;
    }
}

static void report(const struct options *o, struct worker *w, int n, double elapsed,
                   struct schedule *sched)
{
    static uint64_t hist[N_BUCKETS];
    uint64_t ok = 0, errors = 0, non2xx = 0, dial_errors = 0, unsent = 0, total = 0, seen = 0;
    double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
    int i, b;

    for (i = 0; i < n; i++) {
        ok += w[i].ok;
        errors += w[i].errors;
        non2xx += w[i].non2xx;
        dial_errors += w[i].dial_errors;
        for (b = 0; b < N_BUCKETS; b++)
            hist[b] += w[i].hist[b];
    }
    if (sched)
        count_unsent(o, sched, w[0].hard_stop, hist, &unsent);
    for (b = 0; b < N_BUCKETS; b++)
        total += hist[b];
    for (b = 0; b < N_BUCKETS && total; b++) {
        if (!hist[b])
            continue;
        seen += hist[b];
        if (!p50 && seen >= total * 0.50) p50 = bucket_ms(b);
        if (!p90 && seen >= total * 0.90) p90 = bucket_ms(b);
        if (!p99 && seen >= total * 0.99) p99 = bucket_ms(b);
        if (!p999 && seen >= total * 0.999) p999 = bucket_ms(b);
        max = bucket_ms(b);
    }
    printf("mode=%s offered=%.0f rate=%.1f ok=%llu non2xx=%llu errors=%llu unsent=%llu "
           "dial_errors=%llu p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f\n",
           o->rate > 0 ? "open" : "closed", o->rate, (double)ok / elapsed,
           (unsigned long long)ok, (unsigned long long)non2xx, (unsigned long long)errors,
           (unsigned long long)unsent, (unsigned long long)dial_errors, p50, p90, p99, p999, max);
}

int main(int argc, char **argv)
{
    struct options o = {.host = "127.0.0.1", .path = "/", .method = "GET",
                        .content_type = "application/fhir+json", .connections = 64,
                        .duration = 10, .rate = 0};
    struct schedule sched;
    struct worker *w;
    double t0;
    int i;

    parse(argc, argv, &o);
    w = calloc((size_t)o.connections, sizeof *w);
    if (!w)
        return 2;
    w[0].ctx = tls(&o);
    build_requests(&o, &w[0]);
    t0 = now_s();
    sched.start = t0 + 0.5; /* time for the connections' handshakes */
    atomic_init(&sched.next, 0);
    for (i = 0; i < o.connections; i++) {
        w[i].opt = &o;
        w[i].ctx = w[0].ctx;
        w[i].requests = w[0].requests;
        w[i].request_lens = w[0].request_lens;
        w[i].n_requests = w[0].n_requests;
        w[i].next = (size_t)i * 7919 % w[0].n_requests; /* workers start apart */
        w[i].index = i;
        w[i].port = o.ports[i % o.n_ports];
        w[i].deadline = (o.rate > 0 ? sched.start : t0) + o.duration;
        w[i].sched = o.rate > 0 ? &sched : NULL;
        w[i].hard_stop = w[i].deadline + GRACE_S;
        pthread_create(&w[i].thread, NULL, run, &w[i]);
    }
    for (i = 0; i < o.connections; i++)
        pthread_join(w[i].thread, NULL);
    report(&o, w, o.connections, o.rate > 0 ? o.duration : now_s() - t0,
           o.rate > 0 ? &sched : NULL);
    return 0;
}
