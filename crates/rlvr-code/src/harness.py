# rlvr code harness: loads a solution as a module and runs its tests one by one, reporting each
# result as a line `__RLVR_<nonce>__ {json}` on stdout. The nonce arrives as the first line of
# stdin (not in this file, which the solution could read); the solution's own stdout is
# discarded (or captured per test in the stdin mode) so it can neither fake nor drown a report.
import io
import json
import linecache
import os
import sys
import types

_CFG = json.loads(__RLVR_CFG__)


class _Timeout(BaseException):
    pass


class _OutputLimit(BaseException):
    pass


class _Null(io.RawIOBase):
    def writable(self):
        return True

    def write(self, b):
        return len(b)


class _Capture(io.RawIOBase):
    def __init__(self, cap):
        self.data = bytearray()
        self.cap = cap
        self.over = False

    def writable(self):
        return True

    def write(self, b):
        if len(self.data) + len(b) > self.cap:
            self.over = True
            raise _OutputLimit()
        self.data += b
        return len(b)


def _text_out(raw):
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", errors="replace")


def _rlvr_main(cfg):
    nonce = sys.stdin.readline().strip()
    sys.stdin = io.StringIO("")
    tag = ("\n__RLVR_" + nonce + "__ ").encode()
    real_out = sys.stdout
    null_out = _text_out(_Null())
    sys.stdout = null_out

    def write_all(b):
        try:
            while b:
                n = os.write(1, b)
                b = b[n:]
        except Exception:
            real_out.write(b.decode("utf-8", "replace"))
            real_out.flush()

    def emit_raw(text):
        write_all(tag + text.encode("utf-8", "replace") + b"\n")

    def emit(obj):
        emit_raw(json.dumps(obj))

    emit({"started": True})

    def describe(e):
        try:
            name = type(e).__name__
            try:
                msg = e.msg if isinstance(e, SyntaxError) else str(e)
            except BaseException:
                msg = ""
            out = name + (": " + msg if msg else "")
            import traceback

            frames = [
                f
                for f in traceback.extract_tb(e.__traceback__)
                if f.filename in ("<solution>", "<setup>") or f.filename.startswith("<test ")
            ]
            if frames:
                f = frames[-1]
                out += " [%s line %s: %s]" % (f.filename, f.lineno, (f.line or "").strip())
            elif isinstance(e, SyntaxError) and e.lineno and e.filename:
                out += " [%s line %s: %s]" % (e.filename, e.lineno, (e.text or "").strip())
            return out[:1000]
        except BaseException:
            return "exception"

    limit = cfg.get("per_test_timeout_s")
    timer = None
    if limit:
        try:
            import signal

            if hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM"):

                def _alarm(signum, frame):
                    raise _Timeout()

                signal.signal(signal.SIGALRM, _alarm)
                timer = signal
        except Exception:
            timer = None

    def guarded(fn):
        # (True, value) or (False, reason); the per-test timer where signals exist.
        try:
            try:
                if timer:
                    timer.setitimer(timer.ITIMER_REAL, limit)
                try:
                    return True, fn()
                finally:
                    if timer:
                        timer.setitimer(timer.ITIMER_REAL, 0)
            except _Timeout:
                return False, "timeout"
            except _OutputLimit:
                return False, "output limit exceeded"
            except BaseException as e:
                return False, describe(e)
        except _Timeout:
            return False, "timeout"

    def source(src, name):
        linecache.cache[name] = (len(src), None, src.splitlines(True), name)
        return compile(src, name, "exec", dont_inherit=True)

    mode = cfg["mode"]
    if mode == "stdin":
        _run_stdin(cfg, guarded, source, emit, describe, null_out)
        emit({"done": True})
        return

    mod = types.ModuleType("solution")
    sys.modules["solution"] = mod
    ns = mod.__dict__

    def load():
        exec(source(cfg["solution"], "<solution>"), ns)
        if cfg.get("setup"):
            exec(source(cfg["setup"], "<setup>"), ns)

    ok, why = guarded(load)
    sys.stdout = null_out
    if not ok:
        emit({"setup_error": why})
        emit({"done": True})
        return

    if mode == "tests":
        for i, t in enumerate(cfg["tests"]):
            ok, why = guarded(lambda: exec(source(t, "<test %d>" % i), ns))
            sys.stdout = null_out
            emit({"test": i, "ok": True} if ok else {"test": i, "ok": False, "reason": why})
    elif mode == "call":
        fn = _find(ns, cfg["fn_name"])
        if fn is None:
            emit({"setup_error": "the solution defines no function `%s`" % cfg["fn_name"]})
            emit({"done": True})
            return
        for i, raw in enumerate(cfg["inputs"]):

            def call():
                args = _args_for(fn, raw)
                return json.dumps(_plain(fn(*args), 0), allow_nan=False)

            ok, val = guarded(call)
            sys.stdout = null_out
            if ok:
                emit_raw('{"test": %d, "ok": true, "result": %s}' % (i, val))
            else:
                emit({"test": i, "ok": False, "reason": val})
    emit({"done": True})


def _run_stdin(cfg, guarded, source, emit, describe, null_out):
    # Every test runs the program afresh as __main__ with its own stdin and captured stdout.
    try:
        code = source(cfg["solution"], "<solution>")
    except BaseException as e:
        emit({"setup_error": describe(e)})
        return
    for i, inp in enumerate(cfg["inputs"]):
        cap = _Capture(cfg.get("output_cap", 1 << 20))
        out = _text_out(cap)
        g = {"__name__": "__main__", "__builtins__": __builtins__}

        def body():
            sys.stdin = io.TextIOWrapper(io.BytesIO(inp.encode("utf-8")), encoding="utf-8")
            sys.stdout = out
            try:
                exec(code, g)
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise
            finally:
                th = sys.modules.get("threading")
                if th is not None:
                    for t in th.enumerate():
                        if t is not th.main_thread() and not t.daemon:
                            t.join()
            out.flush()

        ok, why = guarded(body)
        sys.stdout = null_out
        sys.stdin = io.StringIO("")
        if cap.over:
            emit({"test": i, "ok": False, "reason": "output limit exceeded"})
        elif ok:
            emit({"test": i, "ok": True, "stdout": cap.data.decode("utf-8", "replace")})
        else:
            emit({"test": i, "ok": False, "reason": why})


def _find(ns, name):
    f = ns.get(name)
    if callable(f):
        return f
    classes = [v for v in list(ns.values()) if isinstance(v, type) and hasattr(v, name)]
    classes.sort(key=lambda c: c.__name__ != "Solution")
    for c in classes:
        try:
            return getattr(c(), name)
        except Exception:
            continue
    return None


def _arity(fn):
    # (required, maximum) positional parameters; None when unknown.
    try:
        import inspect

        ps = list(inspect.signature(fn).parameters.values())
    except Exception:
        return None
    pos = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    req = sum(1 for p in pos if p.default is p.empty)
    most = float("inf") if any(p.kind == p.VAR_POSITIONAL for p in ps) else len(pos)
    return req, most


def _args_for(fn, raw):
    # APPS: a JSON list of arguments. LiveCodeBench: one JSON argument per line. One line
    # holding a list: the argument list when the function takes that many arguments, else the
    # single argument.
    if isinstance(raw, list):
        return raw
    lines = [l for l in raw.split("\n") if l.strip()]
    try:
        vals = [json.loads(l) for l in lines]
    except ValueError:
        vals = [json.loads(raw)]
    if len(vals) != 1:
        return vals
    v = vals[0]
    if isinstance(v, list):
        ar = _arity(fn)
        if ar is not None and ar[1] != 1 and ar[0] <= len(v) <= ar[1]:
            return v
    return [v]


def _plain(x, depth):
    # A copy made only of JSON types (so a result cannot lie through a custom __eq__).
    if depth > 200:
        raise ValueError("the result is nested too deeply")
    if x is None or x is True or x is False:
        return x
    if isinstance(x, int):
        return int.__int__(x)
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, list):
        return [_plain(v, depth + 1) for v in list.__iter__(x)]
    if isinstance(x, tuple):
        return [_plain(v, depth + 1) for v in tuple.__iter__(x)]
    if isinstance(x, dict):
        out = {}
        for k, v in dict.items(x):
            k = _plain(k, depth + 1)
            if isinstance(k, list):
                raise TypeError("the result has a non-scalar dict key")
            out[k if isinstance(k, str) else json.dumps(k)] = _plain(v, depth + 1)
        return out
    raise TypeError("the result is a %s, not a JSON value" % type(x).__name__)


_rlvr_main(_CFG)
