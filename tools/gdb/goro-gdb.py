# goro-gdb.py - gdb commands that show goro's goroutines.
#
#   info goroutines          every live goroutine: id, state, wait reason,
#                            where it is parked (the first frame outside the
#                            runtime: function, file, line) and the goro call
#                            it is parked in
#   goroutine N bt [full]    the backtrace of goroutine N: a parked one's from
#                            its saved context, through the switch frame; a
#                            running one's is its worker thread's
#   goroutine N regs         the registers goroutine N's switch saved
#
# Load it with `source tools/gdb/goro-gdb.py`; `make install` puts it next to
# libgoro.so as libgoro.so-gdb.py, which gdb loads with the library once the
# directory is in its auto-load safe-path (gdb says how when it declines).
# Works on a live process and on a core file, for programs linked with
# libgoro.a or libgoro.so; needs the library's debug information (it is
# built with -g).
#
# How a parked goroutine is unwound. Its switch (runtime/asm/
# switch_x86_64.S) saved rsp, which points at the return address into its
# caller, and the callee-saved registers rbx, rbp, r12-r15 in G.ctx. An
# unwinder of ours, active only while one of these commands runs, takes the
# selected thread's innermost frame and says that its caller is a frame in
# goro__ctx_switch, right after the registers were saved, with exactly those
# registers; gdb's own DWARF unwinding takes it from there (the switch has
# CFI, and the bottom of every goroutine stack, goro__g_entry, marks rip
# undefined). Nothing is written to the process, so a core file works the
# same as a live process; the thread's own frame 0 is not printed.

import re

import gdb
import gdb.unwinder

_STATUS_FALLBACK = {0: "idle", 1: "runnable", 2: "running", 3: "waiting", 4: "dead"}
_RUNTIME_FILE = re.compile(r"(^|/)(runtime|netpoll)(/asm)?/[^/]+\.[cSh]$")
_REGS = ("rbx", "rbp", "r12", "r13", "r14", "r15")


def _u64(v):
    return int(v.cast(gdb.lookup_type("unsigned long")))


def _sched():
    try:
        return gdb.parse_and_eval("goro__sched")
    except gdb.error:
        raise gdb.GdbError("goro: no goro__sched here: is the program linked with goro, "
                           "with its debug information?")


def _status_names():
    try:
        t = gdb.lookup_type("enum goro__gstatus")
        return {int(f.enumval): f.name[2:].lower() for f in t.fields()}
    except gdb.error:
        return _STATUS_FALLBACK


def _wait_name(g):
    try:
        r = int(g["wait_reason"])
        n = int(gdb.parse_and_eval("W_NREASONS"))
        if 0 <= r < n:
            return gdb.parse_and_eval("goro__wait_names")[r].string()
    except (gdb.error, gdb.MemoryError):
        pass
    return "?"


def _goroutines():
    """Every G of this run whose goroutine is alive, oldest first."""
    _sched()  # a clear error where goro is not linked in
    gs = []
    recs = gdb.parse_and_eval("goro__grecs")
    n = _u64(recs["n"])
    # records are cut from arenas of GORO_G_ARENA_BYTES (runtime/internal.h)
    per = _u64(gdb.parse_and_eval("%d / sizeof(struct goro__g)" % (1 << 20)))
    for i in range(min(n, 10000000)):
        arena = recs["arena"][i // per]
        gs.append(arena + (i % per))
    names = _status_names()
    out = []
    for g in gs:
        st = names.get(int(g["status"]), str(int(g["status"])))
        if st in ("runnable", "running", "waiting"):
            out.append((g, st))
    out.sort(key=lambda x: int(x[0]["id"]))
    return out


def _find(n):
    for g, st in _goroutines():
        if int(g["id"]) == n:
            return g, st
    raise gdb.GdbError("goro: no live goroutine %d" % n)


def _worker_of(g):
    """(worker index, gdb thread or None) of a running goroutine."""
    s = _sched()
    gp = _u64(g)
    for i in range(int(s["nprocs"])):
        w = s["ws"][i]
        if _u64(w["curg"]) == gp:
            return i, _thread_of(int(w["thread"]))
    return None, None


def _thread_of(pthread):
    for t in gdb.selected_inferior().threads():
        try:
            h = t.handle()
        except (gdb.error, RuntimeError, TypeError):
            continue
        if h is not None and int.from_bytes(bytes(h), "little") == pthread:
            return t
    return None


# ---- the unwinder --------------------------------------------------------

def _switch_resume_pc():
    """An address in goro__ctx_switch just after it saved the registers:
    there the CFA is rsp + 8 and the return address is at rsp, as in the
    saved context."""
    sym = gdb.lookup_global_symbol("goro__ctx_switch") or gdb.lookup_static_symbol("goro__ctx_switch")
    if sym is not None:
        start = int(sym.value().address)
    else:
        ms = gdb.execute("info address goro__ctx_switch", to_string=True)
        m = re.search(r"0x[0-9a-f]+", ms)
        if not m:
            raise gdb.GdbError("goro: goro__ctx_switch not found")
        start = int(m.group(0), 16)
    arch = gdb.selected_inferior().architecture()
    for ins in arch.disassemble(start, count=16):
        if "(%rsi)" in ins["asm"]:
            return ins["addr"]
    raise gdb.GdbError("goro: goro__ctx_switch does not look as expected")


class _FrameId:
    """What create_unwind_info wants (gdb.unwinder.FrameId exists from gdb 14 on)."""

    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _GoroUnwinder(gdb.unwinder.Unwinder):
    def __init__(self):
        super().__init__("goro")
        self.ctx = None   # dict of register -> int while a command runs
        self.thread = None

    def __call__(self, pending_frame):
        if self.ctx is None or pending_frame.level() != 0:
            return None
        if self.thread is not None and gdb.selected_thread().num != self.thread:
            return None
        sp = pending_frame.read_register("rsp")
        pc = pending_frame.read_register("rip")
        info = pending_frame.create_unwind_info(_FrameId(sp, pc))
        for reg, val in self.ctx.items():
            t = pc.type if reg == "rip" else sp.type
            info.add_saved_register(reg, gdb.Value(val).cast(t))
        return info


_unwinder = _GoroUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)


def _saved_ctx(g):
    c = g["ctx"]
    rsp = _u64(c["rsp"])
    if rsp == 0:
        return None
    ctx = {"rsp": rsp, "rip": _switch_resume_pc()}
    for r in _REGS:
        ctx[r] = _u64(c[r])
    return ctx


class _OnGoroutine:
    """Within the block, the selected thread's frame 1 and up are g's."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __enter__(self):
        self.frame = gdb.selected_frame()
        _unwinder.ctx = self.ctx
        _unwinder.thread = gdb.selected_thread().num
        gdb.invalidate_cached_frames()
        return self

    def frames(self):
        f = gdb.newest_frame().older()
        while f is not None:
            yield f
            f = f.older()

    def __exit__(self, *exc):
        _unwinder.ctx = None
        _unwinder.thread = None
        gdb.invalidate_cached_frames()
        return False


def _frame_where(f):
    sal = f.find_sal()
    name = f.name() or "??"
    if sal.symtab is not None:
        return name, sal.symtab.filename, sal.line
    return name, None, 0


def _is_runtime(f):
    name, fname, _ = _frame_where(f)
    if name.startswith("goro_"):
        return True
    return fname is not None and _RUNTIME_FILE.search(fname) is not None


def _frame_line(i, f, full):
    name, fname, line = _frame_where(f)
    args = []
    try:
        for sym in f.block():
            if sym.is_argument:
                try:
                    args.append("%s=%s" % (sym.name, f.read_var(sym)))
                except (gdb.error, gdb.MemoryError):
                    args.append("%s=<unavailable>" % sym.name)
    except RuntimeError:
        pass
    s = "#%-2d 0x%016x in %s (%s)" % (i, int(f.pc()), name, ", ".join(args))
    if fname:
        s += " at %s:%d" % (fname, line)
    if full:
        try:
            b = f.block()
            while b is not None and not b.is_global and not b.is_static:
                for sym in b:
                    if sym.is_variable and not sym.is_argument:
                        try:
                            s += "\n        %s = %s" % (sym.name, f.read_var(sym))
                        except (gdb.error, gdb.MemoryError):
                            s += "\n        %s = <unavailable>" % sym.name
                if b.function is not None:
                    break
                b = b.superblock
        except RuntimeError:
            pass
    return s


def _parked_where(g):
    """(user frame text, goro call) of a parked goroutine, by unwinding."""
    ctx = _saved_ctx(g)
    if ctx is None:
        return None, None
    api = None
    with _OnGoroutine(ctx) as on:
        n = 0
        for f in on.frames():
            n += 1
            if n > 256:
                break
            name, fname, line = _frame_where(f)
            if _is_runtime(f):
                if name.startswith("goro_") and not name.startswith("goro__"):
                    api = name
                continue
            where = "%s at %s:%d" % (name, fname, line) if fname else name
            return where, api
    return None, api


def _fn_name(g):
    try:
        fn = _u64(g["fn"])
        b = gdb.block_for_pc(fn)
        if b is not None and b.function is not None:
            return b.function.name
        return gdb.execute("info symbol 0x%x" % fn, to_string=True).split()[0]
    except (gdb.error, RuntimeError, IndexError):
        return "?"


class InfoGoroutines(gdb.Command):
    """List goro's goroutines: id, state, wait reason, where each is parked.

A parked goroutine's place is the first frame of its stack outside the
runtime (function at file:line) and, in brackets, the goro call it is in.
`goroutine N bt` prints the whole backtrace."""

    def __init__(self):
        super().__init__("info goroutines", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        gs = _goroutines()
        print("  %-6s %-9s %-14s %s" % ("Id", "State", "Wait", "Where"))
        for g, st in gs:
            gid = int(g["id"])
            main = " (main)" if bool(g["is_main"]) else ""
            if st == "running":
                wi, t = _worker_of(g)
                where = "on worker %s" % wi
                if t is not None:
                    where += " (gdb thread %d)" % t.num
                mark = "*"
                wait = "-"
            else:
                mark = " "
                wait = _wait_name(g) if st == "waiting" else "-"
                if _u64(g["ctx"]["rsp"]) == 0:
                    where = "%s, not started yet" % _fn_name(g)
                else:
                    try:
                        w, api = _parked_where(g)
                    except gdb.error as e:
                        w, api = "<%s>" % e, None
                    where = (w or "?") + (" [%s]" % api if api else "")
            print("%s %-6d %-9s %-14s %s%s" % (mark, gid, st, wait, where, main))


class Goroutine(gdb.Command):
    """goroutine N bt [full]: the backtrace of goroutine N.
goroutine N regs: the registers its last switch saved.

A parked goroutine is unwound from the context its switch saved (frame #0
is the switch itself, goro__ctx_switch); a running one's backtrace is its
worker thread's."""

    def __init__(self):
        super().__init__("goroutine", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if len(argv) < 2 or not argv[0].isdigit():
            raise gdb.GdbError("usage: goroutine N bt [full] | goroutine N regs")
        g, st = _find(int(argv[0]))
        cmd, full = argv[1], len(argv) > 2 and argv[2] == "full"
        if cmd == "regs":
            ctx = _saved_ctx(g)
            if st == "running" or ctx is None:
                raise gdb.GdbError("goro: goroutine %s has no saved context (%s)" % (argv[0], st))
            print("goroutine %d saved context (G at 0x%x):" % (int(g["id"]), _u64(g)))
            print("  rsp 0x%016x  return address 0x%016x" % (ctx["rsp"], _u64(
                gdb.parse_and_eval("*(unsigned long *)0x%x" % ctx["rsp"]))))
            for r in _REGS:
                print("  %-3s 0x%016x" % (r, ctx[r]))
            return
        if cmd != "bt":
            raise gdb.GdbError("usage: goroutine N bt [full] | goroutine N regs")
        if st == "running":
            wi, t = _worker_of(g)
            if t is None:
                raise gdb.GdbError("goro: goroutine %s runs on worker %s, whose gdb thread "
                                   "is unknown: use `thread apply all bt`" % (argv[0], wi))
            cur = gdb.selected_thread()
            t.switch()
            try:
                print("goroutine %s [running on worker %d, gdb thread %d]:" % (argv[0], wi, t.num))
                gdb.execute("bt" + (" full" if full else ""))
            finally:
                cur.switch()
            return
        ctx = _saved_ctx(g)
        if ctx is None:
            print("goroutine %s [%s]: not started yet; it will run %s" % (argv[0], st, _fn_name(g)))
            return
        wait = " (%s)" % _wait_name(g) if st == "waiting" else ""
        print("goroutine %s [%s%s]:" % (argv[0], st, wait))
        with _OnGoroutine(ctx) as on:
            for i, f in enumerate(on.frames()):
                if i >= 512:
                    print("(more frames...)")
                    break
                print(_frame_line(i, f, full))


InfoGoroutines()
Goroutine()
