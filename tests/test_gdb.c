/*
 * test_gdb.c - tools/gdb/goro-gdb.py: `info goroutines` and `goroutine N
 * bt` on tests/gdb/parked.c, whose goroutines are parked on a channel, a
 * socket and a timer when it stops in parked_stop_here(); gdb in batch
 * mode, on the live process and on a core file, with the program linked
 * statically (the extension `source`d) and dynamically (the extension
 * auto-loaded from beside libgoro.so, as `make install` puts it).
 *
 * Cores: the kernel's dump (core_pattern "core", RLIMIT_CORE raised),
 * which reads stacks whatever the guard mechanism; and gdb's own `gcore`,
 * which reads each mapping whole and fails on one holding a madvise or uffd
 * guard page, so that program runs with GORO_GUARD=mprotect (README).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stack.h" /* GORO_ANN_FIBERS, STK_B5 */

#ifndef GORO_SRC_DIR
#define GORO_SRC_DIR "."
#endif
#ifndef GORO_BUILD_DIR
#define GORO_BUILD_DIR "build"
#endif

static char out[65536];

/* May this process's children be traced (gdb runs the program under
 * PTRACE_TRACEME)? Not where a seccomp profile forbids ptrace (Docker's
 * default, without CAP_SYS_PTRACE) or kernel.yama.ptrace_scope is 3. */
static bool ptrace_allowed(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Run gdb in batch mode with the commands in cmds (one per line) on prog
 * (and core, if given); its output in out. */
static void run_gdb(const char *prog, const char *core, bool source, const char *env,
                    const char *cmds)
{
    if (!ptrace_allowed())
        cr_skip_test("ptrace is not permitted here: gdb cannot run the program");
    char script[] = "/tmp/goro-gdb-cmds.XXXXXX";
    int fd = mkstemp(script);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    /* goro grows stacks on SIGSEGV (SIGBUS with uffd guards): not stops */
    fprintf(f, "set confirm off\nset pagination off\nset width 0\n"
               "handle SIGSEGV nostop noprint pass\nhandle SIGBUS nostop noprint pass\n");
    if (source)
        fprintf(f, "source %s/tools/gdb/goro-gdb.py\n", GORO_SRC_DIR);
    fputs(cmds, f);
    fclose(f);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s GORO_PROCS=2 timeout 120 gdb -q -batch -nx "
             "-iex 'add-auto-load-safe-path %s' -x %s %s/%s %s 2>&1",
             GORO_SRC_DIR, env ? env : "", GORO_BUILD_DIR, script, GORO_BUILD_DIR, prog,
             core ? core : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    pclose(p);
    unlink(script);
}

/* The line of out that starts (after blanks and a '*') with "id", or NULL. */
static const char *goroutine_line(int id, char *buf, size_t len)
{
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *s = l;
        while (*s == ' ' || *s == '*')
            s++;
        char *end;
        if (strtol(s, &end, 10) == id && end != s && *end == ' ') {
            size_t k = strcspn(l, "\n");
            if (k >= len)
                k = len - 1;
            memcpy(buf, l, k);
            buf[k] = 0;
            return buf;
        }
    }
    return NULL;
}

#define EXPECT(needle)                                                                 \
    cr_expect(strstr(out, needle) != NULL, "gdb output lacks \"%s\":\n%s", needle, out)

/* What `info goroutines` and `goroutine N bt` must show for parked.c. */
static const char *const CMDS =
    "info goroutines\n"
    "echo ==bt2\\n\ngoroutine 2 bt\n"
    "echo ==bt3\\n\ngoroutine 3 bt\n"
    "echo ==bt4\\n\ngoroutine 4 bt\n"
    "echo ==bt1\\n\ngoroutine 1 bt\n"
    "echo ==regs\\n\ngoroutine 2 regs\n";

static void check_output(void)
{
    char l[512];
    cr_expect_not_null(goroutine_line(1, l, sizeof l), "no goroutine 1:\n%s", out);
    cr_expect(strstr(l, "running") && strstr(l, "(main)"), "goroutine 1: %s", l);
    cr_expect_not_null(goroutine_line(2, l, sizeof l), "no goroutine 2:\n%s", out);
    cr_expect(strstr(l, "waiting") && strstr(l, "chan receive") &&
                  strstr(l, "chan_waiter_inner at tests/gdb/parked.c:") &&
                  strstr(l, "[goro_chan_recv]"), "goroutine 2: %s", l);
    cr_expect_not_null(goroutine_line(3, l, sizeof l), "no goroutine 3:\n%s", out);
    cr_expect(strstr(l, "waiting") && strstr(l, "IO wait") &&
                  strstr(l, "sock_reader_inner at tests/gdb/parked.c:") && strstr(l, "[goro_read]"),
              "goroutine 3: %s", l);
    cr_expect_not_null(goroutine_line(4, l, sizeof l), "no goroutine 4:\n%s", out);
    cr_expect(strstr(l, "waiting") && strstr(l, "sleep") &&
                  strstr(l, "sleeper_inner at tests/gdb/parked.c:") && strstr(l, "[goro_sleep]"),
              "goroutine 4: %s", l);

    /* each backtrace: the switch frame, the park, the goro call, the
     * goroutine's own functions, down to the entry, in that order */
    static const char *const bt[][8] = {
        { "==bt2", "#0 ", "goro__ctx_switch", "goro__park", "goro_chan_recv",
          "chan_waiter_inner (", "goro__g_main", "goro__g_entry" },
        { "==bt3", "#0 ", "goro__ctx_switch", "goro__park", "goro_read",
          "sock_reader_inner (", "goro__g_main", "goro__g_entry" },
        { "==bt4", "#0 ", "goro__ctx_switch", "goro__park", "goro_sleep",
          "sleeper_inner (", "goro__g_main", "goro__g_entry" },
        { "==bt1", "running", "parked_stop_here", "main_g", "goro__g_main",
          "goro__g_entry", "goro__g_entry", "goro__g_entry" },
    };
    for (size_t i = 0; i < sizeof bt / sizeof bt[0]; i++) {
        const char *at = strstr(out, bt[i][0]);
        cr_expect_not_null(at, "no %s section:\n%s", bt[i][0], out);
        if (at == NULL)
            continue;
        for (int k = 1; k < 8; k++) {
            const char *next = strstr(at, bt[i][k]);
            const char *end = strstr(at + 1, "==");
            cr_expect(next != NULL && (end == NULL || next < end),
                      "%s: \"%s\" missing or out of order:\n%s", bt[i][0], bt[i][k], at);
            if (next)
                at = next;
        }
    }
    EXPECT("chan_waiter_inner (depth=");
    /* a goroutine's saved rsp lies in the stack region (stack.h: byte 5
     * is 0x7e in ThreadSanitizer builds, 0x1f in the others) */
    char rsp[32];
    snprintf(rsp, sizeof rsp, "rsp 0x0000%02x", STK_B5);
    const char *r = strstr(out, "==regs");
    cr_expect(r && strstr(r, "saved context") && strstr(r, rsp) &&
                  strstr(r, "rbp 0x"), "regs:\n%s", r ? r : out);
    cr_expect(strstr(out, "Python Exception") == NULL, "python error:\n%s", out);
}

/* Stop in parked_stop_here() with goroutines 2, 3 and 4 parked: the
 * program's own wait (its stats, a few ms) can end before a goroutine
 * got to its park on a loaded machine (ASan's test_gdb saw goroutine 3
 * running, in a stack growth inside goro_read, 1 run in 10): until `info
 * goroutines` shows all three waiting, gdb asks for another stop. */
static const char *const LIVE =
    "break parked_stop_here\nrun\n"
    "python\n"
    "import re\n"
    "for _ in range(2500):\n"
    "    s = gdb.execute('info goroutines', to_string=True)\n"
    "    if all(re.search(r'^[ *]*%d +waiting' % i, s, re.M) for i in (2, 3, 4)):\n"
    "        break\n"
    "    gdb.execute('set var parked_again = 1')\n"
    "    gdb.execute('continue')\n"
    "end\n";

Test(gdb, live_static, .timeout = 120)
{
    char cmds[4096];
    snprintf(cmds, sizeof cmds, "%s%skill\n", LIVE, CMDS);
    run_gdb("tests/gdb/parked_static", NULL, true, NULL, cmds);
    check_output();
}

Test(gdb, live_shared_autoloaded, .timeout = 120)
{
    char cmds[4096];
    snprintf(cmds, sizeof cmds, "%s%skill\n", LIVE, CMDS);
    run_gdb("tests/gdb/parked_shared", NULL, false, NULL, cmds);
    check_output();
}

/* A sanitizer's process reserves terabytes of shadow: gcore reads for
 * minutes, and ASan turns the kernel's core dumps off. Its cores are no
 * use case: the live tests run, the core tests say they do not. */
static void no_sanitizer(void)
{
    if (GORO_ANN_FIBERS)
        cr_skip_test("core files of sanitizer builds: not tested (terabytes of shadow)");
}

/* A core file written by gdb's gcore (GORO_GUARD=mprotect: see above). */
static void gcore_test(const char *prog, bool source)
{
    no_sanitizer();
    char core[] = "/tmp/goro-gdb-core.XXXXXX";
    int fd = mkstemp(core);
    cr_assert(fd >= 0);
    close(fd);
    char cmds[4096];
    snprintf(cmds, sizeof cmds, "%sgcore %s\nkill\n", LIVE, core);
    run_gdb(prog, NULL, source, "GORO_GUARD=mprotect", cmds);
    cr_assert(strstr(out, "Saved corefile"), "gcore failed:\n%s", out);
    run_gdb(prog, core, source, NULL, CMDS);
    unlink(core);
    check_output();
}

Test(gdb, gcore_static, .timeout = 120)
{
    gcore_test("tests/gdb/parked_static", true);
}

Test(gdb, gcore_shared, .timeout = 120)
{
    gcore_test("tests/gdb/parked_shared", false);
}

/* The kernel's core dump of a process stopped there (SIGABRT), with the
 * default guard mechanism. Needs core_pattern to name a file. */
Test(gdb, kernel_core_static, .timeout = 120)
{
    no_sanitizer();
    char pat[256] = "";
    FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
    if (f) {
        if (!fgets(pat, sizeof pat, f))
            pat[0] = 0;
        fclose(f);
    }
    pat[strcspn(pat, "\n")] = 0;
    if (strcmp(pat, "core") != 0)
        cr_skip_test("kernel.core_pattern is \"%s\", not \"core\": the gcore tests cover cores",
                     pat);
    char dir[] = "/tmp/goro-gdb-kcore.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmds[8192];
    snprintf(cmds, sizeof cmds, "cd %s\n%ssignal SIGABRT\n", dir, LIVE);
    struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
    cr_assert_eq(setrlimit(RLIMIT_CORE, &rl), 0, "RLIMIT_CORE: %s", strerror(errno));
    run_gdb("tests/gdb/parked_static", NULL, true, NULL, cmds);
    char core[512] = "";
    DIR *d = opendir(dir); /* "core", or "core.PID" (kernel.core_uses_pid) */
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, "core", 4) == 0)
            snprintf(core, sizeof core, "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
    cr_assert(core[0] && access(core, R_OK) == 0, "no core dumped in %s:\n%s", dir, out);
    run_gdb("tests/gdb/parked_static", core, true, NULL, CMDS);
    unlink(core);
    rmdir(dir);
    check_output();
}
