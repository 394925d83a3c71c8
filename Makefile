# goro - an M:N goroutine runtime for C.
#
#   make                 libgoro.a, libgoro.so, tools and examples
#   make test            Criterion suites (installs missing packages first)
#   make stress          the long stress runs
#   make check-all       the suites under ASan, TSan, UBSan, then Valgrind
#   make valgrind        the examples, a growth run and some suites under memcheck
#   make bench           every benchmark in C and in Go, side by side
#   make install PREFIX=/usr/local
#   make DEBUG=1         -O0, assertions on;  make SAN=address|thread|undefined

CC      ?= cc
PREFIX  ?= /usr/local
AR      ?= ar
BUILD   ?= build
VERSION  = 0.1.0

OPT      = -O2
ifeq ($(DEBUG),1)
OPT      = -O0 -DGORO_DEBUG_CHECKS=1
endif
SANFLAGS =
SANINC   =
ifneq ($(SAN),)
SANFLAGS = -fsanitize=$(SAN)
endif
# AddressSanitizer: no use-after-scope poisoning. A frame poisons its
# scoped variables through a shadow address it computed once; after a
# stack move that address names the old stack's shadow, by then another
# goroutine's (runtime/annotate.c says why it is not relocated).
ifeq ($(SAN),address)
SANFLAGS += -fno-sanitize-address-use-after-scope
endif
# ThreadSanitizer cannot see libatomic_ops' assembly: its interface on the
# compiler's builtins instead (runtime/tsan/atomic_ops.h says why)
ifeq ($(SAN),thread)
SANINC   = -Iruntime/tsan
endif

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wundef -Wno-unused-parameter
# Everything that runs on a goroutine is built with stack-clash protection
# (DESIGN.md, Stacks 7): frames larger than a page probe each page in order.
CFLAGS_COMMON = -std=gnu11 $(OPT) -g -fstack-clash-protection -fno-omit-frame-pointer \
           $(WARN) $(SANFLAGS) $(SANINC) -pthread -Iinclude
# -fno-plt: the runtime calls libc through the GOT, bound when the program
# loads, never through a lazily bound PLT slot. Lazy binding resolves a
# function at its first call on the caller's stack (the dynamic linker's
# frames, 1 KiB and more), and when the caller is a goroutine about to
# park, that can grow its stack after it handed out a pointer to a local
# (README rule 5; runtime/sched.c, resume_idle).
LIB_CFLAGS = $(CFLAGS_COMMON) -fPIC -fno-plt -fvisibility=hidden -D_GNU_SOURCE -Iruntime
LDLIBS   = -latomic_ops -pthread
TEST_LDLIBS = -lcriterion $(LDLIBS)
# where the suites that drive tools (install, gdb) find the tree and the build
TEST_DIRS = -DGORO_SRC_DIR='"$(CURDIR)"' -DGORO_BUILD_DIR='"$(BUILD)"' -DGORO_SANFLAGS='"$(SANFLAGS)"'

LIB_SRC  = $(wildcard runtime/*.c) $(wildcard netpoll/*.c)
ASM_SRC  = runtime/asm/switch_x86_64.S
LIB_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(patsubst %.S,$(BUILD)/%.o,$(ASM_SRC))
HDRS     = include/goro.h $(wildcard runtime/*.h) $(wildcard runtime/asm/*.h) $(wildcard netpoll/*.h)

TESTS    = $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
BENCH_C  = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
# The tool and the examples sit in the tree for the default build; another
# BUILD (a sanitizer or clang build) keeps its own under $(BUILD)/, so that
# it never replaces the binaries `make stress` and the README use.
OUTDIR   = $(if $(filter build,$(BUILD)),,$(BUILD)/)
TOOLS    = $(if $(wildcard tools/stackgrow/*.c),$(OUTDIR)tools/stackgrow/stackgrow)
EX_DIRS  = $(patsubst %/main.c,%,$(wildcard examples/*/main.c))
EXAMPLES = $(foreach d,$(EX_DIRS),$(OUTDIR)$(d)/$(notdir $(d)))

.SECONDEXPANSION:
.PHONY: all deps test-deps bench-deps valgrind-deps test stress seccomp check-all tsan-all valgrind bench install clean
all: deps $(BUILD)/libgoro.a $(BUILD)/libgoro.so $(TOOLS) $(EXAMPLES)

deps:
	@tools/deps.sh build
test-deps:
	@tools/deps.sh test
bench-deps:
	@tools/deps.sh bench

# Every runtime object's code goes into section goro_text, so that the
# fault handler knows goro's own code (runtime/stack_lend.c).
OBJCOPY ?= objcopy
TEXT_SECTION = $(foreach s,.text .text.unlikely .text.hot .text.startup .text.exit,\
		--rename-section $(s)=goro_text,alloc,load,readonly,code,contents)
$(BUILD)/%.o: %.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@
	$(OBJCOPY) $(TEXT_SECTION) $@
$(BUILD)/%.o: %.S runtime/asm/offsets.h
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@
	$(OBJCOPY) $(TEXT_SECTION) $@

$(BUILD)/libgoro.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^
$(BUILD)/libgoro.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-z,now -Wl,-z,start-stop-visibility=hidden $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Under ThreadSanitizer the suites carry tests/tsan_criterion.c, without
# which Criterion cannot start there (that file says why).
TEST_EXTRA = $(if $(filter thread,$(SAN)),tests/tsan_criterion.c)
# test_http and test_kv link their example's files but main.c, and run the
# binaries from EXAMPLES_DIR.
TEST_EX_SRC = $(filter-out %/main.c,$(wildcard examples/$(patsubst test_%,%,$(1))/*.c))
$(BUILD)/tests/%: tests/%.c tests/*.h $(TEST_EXTRA) $$(call TEST_EX_SRC,$$*) \
		$$(wildcard examples/$$(patsubst test_%,%,$$*)/*.h) $(BUILD)/libgoro.a | test-deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(TEST_CFLAGS_$*) -D_GNU_SOURCE -Iruntime $(TEST_DIRS) \
		-DEXAMPLES_DIR='"$(abspath $(OUTDIR)examples)"' \
		$< $(call TEST_EX_SRC,$*) $(TEST_EXTRA) -o $@ $(BUILD)/libgoro.a $(TEST_LDLIBS)
# test_lend calls goro the way -fno-plt code does (Arch builds everything
# so): through the GOT, which the static link relaxes to addr32 call
TEST_CFLAGS_test_lend = -fno-plt

# tests/test_gdb.c drives gdb over tests/gdb/parked.c linked both ways; the
# shared one finds the extension next to libgoro.so, as an install has it.
GDB_PROGS = $(BUILD)/tests/gdb/parked_static $(BUILD)/tests/gdb/parked_shared
$(BUILD)/tests/test_gdb: $(GDB_PROGS) $(BUILD)/libgoro.so-gdb.py
$(BUILD)/tests/gdb/parked_static: tests/gdb/parked.c $(BUILD)/libgoro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $< -o $@ $(BUILD)/libgoro.a $(LDLIBS)
$(BUILD)/tests/gdb/parked_shared: tests/gdb/parked.c $(BUILD)/libgoro.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $< -o $@ -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -lgoro -pthread
$(BUILD)/libgoro.so-gdb.py: tools/gdb/goro-gdb.py
	@mkdir -p $(dir $@)
	cp $< $@
# tests/test_lazy.c runs tests/lazy/lazy.c, linked against libgoro.so with
# lazy binding (its first call of each goro function goes through ld.so)
$(BUILD)/tests/test_lazy: $(BUILD)/tests/lazy/lazy
$(BUILD)/tests/lazy/lazy: tests/lazy/lazy.c $(BUILD)/libgoro.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $< -o $@ -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -Wl,-z,lazy \
		-lgoro -pthread
# tests/test_race.c runs tests/race/race.c (ThreadSanitizer builds only)
$(BUILD)/tests/test_race: $(BUILD)/tests/race/race
$(BUILD)/tests/race/race: tests/race/race.c $(BUILD)/libgoro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $< -o $@ $(BUILD)/libgoro.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c bench/bench.h $(BUILD)/libgoro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -D_GNU_SOURCE -Iruntime $< -o $@ $(BUILD)/libgoro.a $(LDLIBS)

$(OUTDIR)tools/stackgrow/stackgrow: $(wildcard tools/stackgrow/*.c) $(BUILD)/libgoro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -D_GNU_SOURCE $(filter %.c,$^) -o $@ $(BUILD)/libgoro.a $(LDLIBS) -lm

# An example is every .c file in its directory (main.c and the rest).
$(EXAMPLES): $(OUTDIR)%: $$(wildcard $$(dir %)*.c) $$(wildcard $$(dir %)*.h) $(BUILD)/libgoro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -D_GNU_SOURCE $(filter %.c,$^) -o $@ $(BUILD)/libgoro.a $(LDLIBS)

# Each suite is its own binary; Criterion runs every test in its own process.
# GORO_TEST_JOBS limits Criterion's parallel test processes (2 cores here).
# Under a sanitizer the suites run with its options (SAN_ENV): a test that
# asks malloc for too much expects NULL, a test that dies by SIGSEGV must
# not be turned into an ASan report, and Criterion's own leaks are not ours.
SAN_ENV_address = ASAN_OPTIONS=allocator_may_return_null=1:handle_segv=0:detect_leaks=1 \
                  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp
# TSan: a fault that is not a stack's growth ends with goro's message and
# SIGSEGV, as in other builds, not TSan's report (handle_segv=0).
SAN_ENV_thread  = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1:handle_segv=0
# (UBSan reports, as before, without failing the suite: its object-size
# check reports loads from goroutine stacks that moved, in the suites of the
# code before issue 17 too; not looked into)
SAN_ENV_undefined = UBSAN_OPTIONS=print_stacktrace=1
SAN_ENV  = $(SAN_ENV_$(SAN))
# A suite that runs longer is killed and counts as failed (tests/run.sh):
# a hang ends as a failure. Sanitizers slow the suites several times.
SUITE_TIMEOUT ?= $(if $(SAN),2400,900)
test: test-deps all $(TESTS)
	@$(SAN_ENV) GORO_SUITE_TIMEOUT=$(SUITE_TIMEOUT) tests/run.sh $(TESTS)

stress: test-deps all $(TESTS) $(BUILD)/tests/docker_seccomp
	@tests/stress.sh

# Every suite under a seccomp filter like Docker's default profile
# (tests/docker_seccomp.c): the fallbacks for forbidden system calls.
seccomp: test-deps all $(TESTS) $(BUILD)/tests/docker_seccomp
	@GORO_SUITE_TIMEOUT=$(SUITE_TIMEOUT) $(BUILD)/tests/docker_seccomp tests/run.sh $(TESTS)
$(BUILD)/tests/docker_seccomp: tests/docker_seccomp.c tests/seccomp_filter.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -D_GNU_SOURCE $< -o $@

# Everything beyond make test (not in CI: tens of minutes): the suites
# under a Docker-like seccomp filter, then under AddressSanitizer,
# ThreadSanitizer and UBSan, each in a build directory of its own, then
# Valgrind. Each step stops the target on a failure. tsan-all is the TSan
# step alone.
check-all: test
	$(MAKE) seccomp
	$(MAKE) SAN=address BUILD=build-asan test
	$(MAKE) tsan-all
	$(MAKE) SAN=undefined BUILD=build-ubsan test
	$(MAKE) valgrind
tsan-all:
	$(MAKE) SAN=thread BUILD=build-tsan test

# memcheck, no error allowed: the README's example, the example servers,
# tools/stackgrow and a set of suites (tests/valgrind.sh)
valgrind: valgrind-deps all $(TESTS)
	@tests/valgrind.sh $(BUILD)
valgrind-deps:
	@tools/deps.sh valgrind

# The runner builds the library and each bench/*.c itself, one at a time, so
# that a benchmark whose C side does not build yet is a FAIL in the table, not
# a stop; it builds the Go twins too (bench/run.sh says how).
bench: bench-deps
	@MAKE="$(MAKE)" BUILD="$(BUILD)" CC="$(CC)" bench/run.sh

# goro.pc carries an rpath to $(PREFIX)/lib unless that is a directory the
# loader searches by itself, so that the README's commands (make install
# PREFIX=$$HOME/.local, then cc ... $$(pkg-config --libs goro), then ./squares)
# run as written: a private prefix is not in the loader's path, and the
# rpath costs nothing where it is not needed. -z now: the program's calls
# (into goro and libc) are bound when it loads, not at their first call on
# a goroutine's stack, where the dynamic linker's frames (1 KiB and more)
# can grow it (README rule 5). The gdb extension goes under
# share/goro (to `source`) and next to libgoro.so as libgoro.so-gdb.py,
# which gdb loads with the library once the directory is in its auto-load
# safe-path.
SYSLIBDIRS = /lib /usr/lib /lib64 /usr/lib64 /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu
RPATH    = $(if $(filter $(PREFIX)/lib,$(SYSLIBDIRS)),,-Wl,-rpath,$${libdir})
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/goro
	install -m 644 include/goro.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libgoro.a $(BUILD)/libgoro.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 tools/gdb/goro-gdb.py $(DESTDIR)$(PREFIX)/share/goro/
	install -m 644 tools/gdb/goro-gdb.py $(DESTDIR)$(PREFIX)/lib/libgoro.so-gdb.py
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: goro' 'Description: M:N goroutine runtime for C' 'Version: $(VERSION)' \
	  'Requires.private: atomic_ops' \
	  'Cflags: -I$${includedir} -pthread -fstack-clash-protection' \
	  'Libs: -L$${libdir} $(RPATH) -Wl,-z,now -lgoro -pthread' 'Libs.private: -latomic_ops' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/goro.pc

clean:
	rm -rf $(BUILD) tools/stackgrow/stackgrow $(EXAMPLES) bench/out
