/*
 * test_install.c - the newcomer's path works as written: the README's
 * example installed into a private prefix, built with pkg-config and run
 * (tests/readme_example.sh does the work; this suite puts it in make test).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef GORO_SRC_DIR
#define GORO_SRC_DIR "."
#endif
#ifndef GORO_SANFLAGS
#define GORO_SANFLAGS ""
#endif
#ifndef GORO_BUILD_DIR
#define GORO_BUILD_DIR "build"
#endif

Test(install, readme_example_runs_as_written, .timeout = 120)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "GORO_SANFLAGS='%s' '%s/tests/readme_example.sh' '%s' 2>&1",
             GORO_SANFLAGS, GORO_SRC_DIR, GORO_BUILD_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    cr_assert_eq(st, 0, "tests/readme_example.sh failed:\n%s", out);
}
