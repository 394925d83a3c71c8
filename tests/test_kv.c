/*
 * test_kv.c - examples/kv: redis-cli round trips for every command (the
 * expected output is what Debian's redis-server 7.0 prints for the same
 * redis-cli commands), pipelining, malformed RESP (negative lengths,
 * missing CRLF, a bulk string over the limit, a connection cut
 * mid-command), expiry by the sweeper, large values, concurrent INCR, and
 * the binary under SIGTERM.
 *
 * The server runs in this process, as in test_http, and every test ends
 * with goroutines and /proc/self/fd back where they were before it.
 */
#include "servers.h"

#include "../examples/kv/kv.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/socket.h>

struct run {
    struct kv_server s;
    goro_wg done;
    uint64_t base_g;
    int base_fd;
};

static void serve_g(void *arg)
{
    struct run *r = arg;
    kv_serve(&r->s);
    goro_wg_done(&r->done);
}

static struct run *start(void)
{
    struct run *r = calloc(1, sizeof *r);
    r->base_g = alive_now();
    r->base_fd = count_fds();
    CHECK(kv_server_init(&r->s) == 0, "init");
    r->s.port = 0;
    int rc = kv_listen(&r->s);
    CHECK(rc == 0, "listen: %s", strerror(-rc));
    goro_wg_init(&r->done);
    goro_wg_add(&r->done, 1);
    goro_go(serve_g, r);
    return r;
}

/* No connection left: the server holds its goroutines (serve, sweeper)
 * and its listener only. */
static void check_idle(struct run *r)
{
    settle_at(r->base_g + 2, r->base_fd + 1, &r->s.nconns, "idle");
}

static void stop(struct run *r)
{
    kv_shutdown(&r->s);
    goro_wg_wait(&r->done);
    kv_server_free(&r->s);
    settle_at(r->base_g, r->base_fd, NULL, "after stop");
    free(r);
}

/* ---- redis-cli, on a goro_blocking helper -------------------------------- */

struct cli_job {
    char cmd[512];
    char out[4096];
    int status;
};

static intptr_t cli_fn(void *arg)
{
    struct cli_job *j = arg;
    FILE *p = popen(j->cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = fread(j->out, 1, sizeof j->out - 1, p);
    j->out[n] = 0;
    j->status = pclose(p);
    return 0;
}

/* redis-cli's raw output for args (a shell word list) */
static const char *cli(struct run *r, const char *args, struct cli_job *j)
{
    snprintf(j->cmd, sizeof j->cmd, "redis-cli -p %d %s 2>&1", r->s.port, args);
    goro_blocking(cli_fn, j);
    return j->out;
}

static const struct {
    const char *args, *want;
} transcript[] = {
    { "ping", "PONG\n" },
    { "ping hi", "hi\n" },
    { "echo hi", "hi\n" },
    { "get nope", "\n" },
    { "set a 1", "OK\n" },
    { "get a", "1\n" },
    { "incr a", "2\n" },
    { "incr newcounter", "1\n" },
    { "set s abc", "OK\n" },
    { "incr s", "ERR value is not an integer or out of range\n\n" },
    { "set b x EX 100", "OK\n" },
    { "ttl b", "100\n" },
    { "ttl a", "-1\n" },
    { "ttl zz", "-2\n" },
    { "expire a 5", "1\n" },
    { "ttl a", "5\n" },
    { "expire zz 5", "0\n" },
    { "mset x 1 y 2", "OK\n" },
    { "mget x y nope", "1\n2\n\n" },
    { "exists x y nope x", "3\n" },
    { "del x y nope", "2\n" },
    { "dbsize", "4\n" },
    { "set c 1 PX 0", "ERR invalid expire time in 'set' command\n\n" },
    { "set c 1 EX abc", "ERR value is not an integer or out of range\n\n" },
    { "set c 1 FOO", "ERR syntax error\n\n" },
    { "set c 1 NX", "OK\n" },
    { "set c 2 NX", "\n" },
    { "set c 3 XX", "OK\n" },
    { "get c", "3\n" },
    { "get", "ERR wrong number of arguments for 'get' command\n\n" },
    { "mset a", "ERR wrong number of arguments for 'mset' command\n\n" },
    { "set k 9223372036854775807", "OK\n" },
    { "incr k", "ERR increment or decrement would overflow\n\n" },
    { "expire k -1", "1\n" },
    { "exists k", "0\n" },
    { "flushall", "OK\n" },
    { "dbsize", "0\n" },
    { "quit", "OK\n" },
};

static void cli_main(void *arg)
{
    struct run *r = start();
    struct cli_job *j = malloc(sizeof *j);
    for (size_t i = 0; i < sizeof transcript / sizeof transcript[0]; i++) {
        const char *out = cli(r, transcript[i].args, j);
        CHECK(j->status == 0, "redis-cli %s: status %d (%.200s)", transcript[i].args, j->status, out);
        CHECK(strcmp(out, transcript[i].want) == 0, "redis-cli %s: \"%.200s\", want \"%s\"",
              transcript[i].args, out, transcript[i].want);
    }
    const char *out = cli(r, "foo bar", j);
    CHECK(strncmp(out, "ERR unknown command 'foo', with args beginning with: 'bar'", 58) == 0,
          "unknown: %.200s", out);
    free(j);
    check_idle(r);
    stop(r);
}

Test(kv, redis_cli_every_command, .timeout = 30)
{
    cr_assert_eq(system("command -v redis-cli >/dev/null"), 0,
                 "redis-cli is missing: apt-get install redis-tools (tools/deps.sh test does)");
    run_on(2, cli_main, NULL);
    CHECKS_PASSED();
}

/* ---- raw RESP over a socket ----------------------------------------------- */

#define dial(r) dial_port((r)->s.port)

static void send_bytes(struct client *c, const char *s, size_t n)
{
    CHECK(goro_write(c->fd, s, n) == (ssize_t)n, "write");
}
#define send_str(c, s) send_bytes(c, s, strlen(s))

/* Read until exactly want has arrived (then true), or it cannot; want may
 * be larger than the buffer. */
static bool expect(struct client *c, const char *want)
{
    size_t wl = strlen(want), done = 0;
    while (done < wl) {
        if (c->len == 0) {
            ssize_t n = goro_read(c->fd, c->buf, sizeof c->buf);
            if (n <= 0) {
                CHECK(false, "EOF or error %zd after %zu of \"%.100s\"", n, done, want);
                return false;
            }
            c->len = (size_t)n;
        }
        size_t k = c->len < wl - done ? c->len : wl - done;
        if (memcmp(c->buf, want + done, k) != 0) {
            CHECK(false, "got \"%.*s\" at %zu, want \"%.100s\"", (int)(k < 100 ? k : 100), c->buf,
                  done, want + done);
            return false;
        }
        memmove(c->buf, c->buf + k, c->len - k);
        c->len -= k;
        done += k;
    }
    return true;
}


static const struct {
    const char *in, *reply;
    bool closes;
} bad[] = {
    { "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n", true },
    { "*2\r\n$3\r\nGET\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n", true },
    { "*2\r\n$3\r\nGET\r\n$9000000\r\n", "-ERR Protocol error: invalid bulk length\r\n", true },
    { "*2\r\n$3\r\nGET\r\n$1x\r\n", "-ERR Protocol error: invalid bulk length\r\n", true },
    { "*1\n$4\r\nPING\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true },
    { "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected CRLF after bulk data\r\n", true },
    { "*1\r\n$4\r\nPING\n\n", "-ERR Protocol error: expected CRLF after bulk data\r\n", true },
    { "*1\r\nPING\r\n", "-ERR Protocol error: expected '$', got 'P'\r\n", true },
    { "*99999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true },
    { "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true },
    { "*-1\r\nPING\r\n", "+PONG\r\n", false },  /* skipped, as Redis does */
    { "*0\r\n*1\r\n$4\r\nPING\r\n", "+PONG\r\n", false },
    { "NOSUCH 1\r\nPING\r\n",
      "-ERR unknown command 'NOSUCH', with args beginning with: '1' \r\n+PONG\r\n", false },
    { "*1\r\n$3\r\nGET\r\nPING\r\n",
      "-ERR wrong number of arguments for 'get' command\r\n+PONG\r\n", false },
};

static void malformed_main(void *arg)
{
    struct run *r = start();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct client *c = dial(r);
        send_str(c, bad[i].in);
        CHECK(expect(c, bad[i].reply), "case %zu", i);
        if (bad[i].closes)
            CHECK(at_eof(c), "case %zu: connection kept", i);
        else {
            send_str(c, "PING\r\n");
            CHECK(expect(c, "+PONG\r\n"), "case %zu: not usable after", i);
        }
        hangup(c);
    }
    /* an inline line past 64 KiB with no newline */
    struct client *c = dial(r);
    char *junk = malloc(70000);
    memset(junk, 'a', 70000);
    send_bytes(c, junk, 70000);
    CHECK(expect(c, "-ERR Protocol error: too big inline request\r\n"), "inline flood");
    CHECK(at_eof(c), "inline flood: kept");
    hangup(c);
    free(junk);

    /* cut mid-command, at every byte of it: nothing is set, nothing leaks */
    static const char set[] = "*3\r\n$3\r\nSET\r\n$3\r\ncut\r\n$10\r\n0123456789\r\n";
    for (size_t cutat = 1; cutat < sizeof set - 1; cutat++) {
        c = dial(r);
        send_bytes(c, set, cutat);
        hangup(c);
    }
    c = dial(r);
    send_str(c, "*2\r\n$3\r\nGET\r\n$3\r\ncut\r\n*1\r\n$6\r\nDBSIZE\r\n");
    CHECK(expect(c, "$-1\r\n:0\r\n"), "a cut SET took effect");
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(kv, malformed_resp_and_cuts, .timeout = 30)
{
    run_on(2, malformed_main, NULL);
    CHECKS_PASSED();
}

/* ---- pipelining, large values, concurrent INCR, expiry ------------------ */

#define INCR_G 8
#define INCR_N 2000
static struct run *incr_run;
static goro_wg incr_wg;

static void incrementer(void *arg)
{
    struct client *c = dial(incr_run);
    for (int i = 0; i < INCR_N / 100; i++) {
        char batch[100 * 32];
        size_t n = 0;
        for (int k = 0; k < 100; k++)
            n += (size_t)sprintf(batch + n, "*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n");
        send_bytes(c, batch, n);
        int replies = 0;
        while (replies < 100) { /* count the ":<n>\r\n" lines */
            char *nl;
            while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
                CHECK(c->buf[0] == ':', "INCR reply %.*s", (int)(nl - c->buf), c->buf);
                size_t l = (size_t)(nl - c->buf) + 1;
                memmove(c->buf, c->buf + l, c->len - l);
                c->len -= l;
                replies++;
            }
            if (replies < 100) {
                ssize_t k = goro_read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
                if (k <= 0) {
                    CHECK(false, "read: %zd", k);
                    break;
                }
                c->len += (size_t)k;
            }
        }
    }
    hangup(c);
    goro_wg_done(&incr_wg);
}

static void data_main(void *arg)
{
    struct run *r = start();
    incr_run = r;
    /* 1,000 pipelined commands in one write, answers in order */
    struct client *c = dial(r);
    char *batch = malloc(1000 * 64), *want = malloc(1000 * 32);
    size_t n = 0, w = 0;
    for (int i = 0; i < 1000; i++) {
        char v[16];
        int vl = sprintf(v, "%d", i);
        n += (size_t)sprintf(batch + n, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                             vl, v);
        w += (size_t)sprintf(want + w, "+OK\r\n$%d\r\n%s\r\n", vl, v);
    }
    send_bytes(c, batch, n);
    CHECK(expect(c, want), "1,000 pipelined SET+GET");
    free(batch);
    free(want);

    /* a 4 MiB value, in and out */
    size_t big = 4 << 20;
    char *cmd = malloc(big + 64), *rep = malloc(big + 64);
    n = (size_t)sprintf(cmd, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%zu\r\n", big);
    for (size_t i = 0; i < big; i++)
        cmd[n + i] = (char)('A' + i % 26);
    memcpy(cmd + n + big, "\r\n", 2);
    send_bytes(c, cmd, n + big + 2);
    CHECK(expect(c, "+OK\r\n"), "SET big");
    send_str(c, "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    w = (size_t)sprintf(rep, "$%zu\r\n", big);
    memcpy(rep + w, cmd + n, big);
    memcpy(rep + w + big, "\r\n", 3);
    CHECK(expect(c, rep), "GET big");
    free(cmd);
    free(rep);

    /* 8 connections x 2,000 INCR of one key */
    goro_wg_init(&incr_wg);
    goro_wg_add(&incr_wg, INCR_G);
    for (int i = 0; i < INCR_G; i++)
        goro_go(incrementer, NULL);
    goro_wg_wait(&incr_wg);
    char exp[32];
    sprintf(exp, "$%d\r\n%d\r\n", (int)strlen("16000"), INCR_G * INCR_N);
    send_str(c, "*2\r\n$3\r\nGET\r\n$3\r\nctr\r\n");
    CHECK(expect(c, exp), "concurrent INCR");

    /* expiry: keys nobody touches again go by the sweeper (DBSIZE drops) */
    send_str(c, "FLUSHALL\r\n");
    CHECK(expect(c, "+OK\r\n"), "flush");
    for (int i = 0; i < 200; i++) {
        char s[80];
        sprintf(s, "SET tmp%d v PX %d\r\n", i, 100 + i % 50);
        send_str(c, s);
        CHECK(expect(c, "+OK\r\n"), "SET PX");
    }
    send_str(c, "SET keep v\r\nDBSIZE\r\n");
    CHECK(expect(c, "+OK\r\n:201\r\n"), "dbsize before");
    int64_t until = goro_now() + 5 * SEC;
    bool swept = false;
    while (!swept && goro_now() < until) {
        goro_sleep(100 * MS);
        send_str(c, "DBSIZE\r\n");
        char b[32];
        ssize_t k = goro_read(c->fd, b, sizeof b - 1);
        b[k > 0 ? k : 0] = 0;
        swept = strcmp(b, ":1\r\n") == 0;
    }
    CHECK(swept, "expired keys not swept within 5 s");
    send_str(c, "TTL keep\r\nEXISTS tmp0\r\n");
    CHECK(expect(c, ":-1\r\n:0\r\n"), "after the sweep");
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(kv, pipelining_big_values_incr_expiry, .timeout = 30)
{
    run_on(2, data_main, NULL);
    CHECKS_PASSED();
}

/* ---- SET NX from 8 connections at once: exactly one wins each key ------ */

/* Each repetition: 8 connections send SET NX for the same 2,000 fresh keys
 * in one pipelined batch each and count their OKs: exactly one per key.
 * This checks NX under concurrency, but it is a weak check of the race it
 * was written for: with the check and the write in two lock sections, two
 * connections won the same key once in about 70 repetitions (the window is
 * a few instructions wide). The fix, one lock section, is right by
 * construction (kv_db_set), not by this test. */
#define NX_CONNS 8
#define NX_KEYS 2000
#define NX_REPS 10
static struct run *nx_run;
static goro_wg nx_wg;
static int nx_wins[NX_CONNS], nx_rep;

static void nx_setter(void *arg)
{
    int id = (int)(intptr_t)arg;
    struct client *c = dial(nx_run);
    char *batch = malloc(NX_KEYS * 64);
    size_t n = 0;
    for (int k = 0; k < NX_KEYS; k++)
        n += (size_t)sprintf(batch + n, "SET nx%d.%d %d NX\r\n", nx_rep, k, id);
    send_bytes(c, batch, n);
    free(batch);
    for (int k = 0; k < NX_KEYS; k++) { /* "+OK" or "$-1", a line each */
        char *nl;
        while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
            ssize_t r = goro_read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) {
                CHECK(false, "read: %zd", r);
                goto out;
            }
            c->len += (size_t)r;
        }
        nx_wins[id] += c->buf[0] == '+';
        size_t l = (size_t)(nl - c->buf) + 1;
        memmove(c->buf, c->buf + l, c->len - l);
        c->len -= l;
    }
out:
    hangup(c);
    goro_wg_done(&nx_wg);
}

static void nx_main(void *arg)
{
    struct run *r = start();
    nx_run = r;
    for (nx_rep = 0; nx_rep < NX_REPS; nx_rep++) {
        memset(nx_wins, 0, sizeof nx_wins);
        goro_wg_init(&nx_wg);
        goro_wg_add(&nx_wg, NX_CONNS);
        for (int i = 0; i < NX_CONNS; i++)
            goro_go(nx_setter, (void *)(intptr_t)i);
        goro_wg_wait(&nx_wg);
        int total = 0;
        for (int i = 0; i < NX_CONNS; i++)
            total += nx_wins[i];
        CHECK(total == NX_KEYS, "repetition %d: %d SET NX answered OK for %d keys", nx_rep, total,
              NX_KEYS);
    }
    check_idle(r);
    stop(r);
}

Test(kv, set_nx_races_one_winner, .timeout = 30)
{
    run_on(2, nx_main, NULL);
    CHECKS_PASSED();
}

/* ---- the binary: listening line, redis-cli, SIGTERM, exit 0 ------------ */

Test(kv, binary_sigterm_exits_0, .timeout = 20)
{
    cr_assert_eq(system("command -v redis-cli >/dev/null"), 0, "redis-cli is missing");
    struct binary bin = binary_start(EXAMPLES_DIR "/kv/kv", "kv");
    int port = bin.port;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d set a b | grep -q OK && redis-cli -p %d get a | grep -q b",
             port, port);
    cr_assert_eq(system(cmd), 0, "redis-cli against the binary");
    binary_stop(&bin, "ran 2 commands, 1 keys at the end");
}
