"""Runs inside the sandbox (self-contained: `python -I -B main.py check` and `server.py serve`).

`check` (the checker) reads the nonce and the tests from stdin, makes itself undumpable, starts the
solution's process (`serve`) and runs every test in its own interpreter: names the solution defines are
proxies, so each call crosses a pipe and comes back as plain data (None, bool, int, float, str, bytes,
complex, list, tuple, set, frozenset, dict) rebuilt here, or as an opaque handle that equals only
itself. The solution therefore cannot touch the checker's builtins, assert machinery, `__eq__` or exit
status, cannot read the tests or the nonce, and cannot write to the checker's stdout, where the verdict
is printed as `<nonce>{json}`.
"""

import builtins
import json
import math
import os
import sys

MAX_MESSAGE = 16 * 2**20
ALLOWED_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__"})
_CONTAINERS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
_REBUILD = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def encode(value, handle_of):
    """Plain data as tagged JSON; anything else through `handle_of` (exact types only: no subclasses)."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind in _CONTAINERS:
        return {_CONTAINERS[kind]: [encode(item, handle_of) for item in value]}
    if kind is dict:
        return {"dict": [[encode(k, handle_of), encode(v, handle_of)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    return {"handle": handle_of(value)}


def decode(data, from_handle):
    """The inverse of `encode`, strict about shapes: values are rebuilt from builtin types only."""
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is float:
        return data
    if type(data) is not dict or len(data) != 1:
        raise ValueError("malformed value from the other process")
    ((tag, body),) = data.items()
    if tag in _REBUILD and type(body) is list:
        return _REBUILD[tag](decode(item, from_handle) for item in body)
    if tag == "dict" and type(body) is list:
        return {decode(k, from_handle): decode(v, from_handle) for k, v in body}
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if tag == "handle" and type(body) is int:
        return from_handle(body)
    raise ValueError("malformed value from the other process")


# ----------------------------------------------------------------------------- the solution's process


def serve():
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the solution reads nothing and prints nowhere:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the pipes to the checker are ours alone
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    objects = {}

    def handle_of(value):
        objects[id(value)] = value
        return id(value)

    def reply(message):
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    namespace = {"__name__": "__main__"}
    try:
        with open("setup.py") as setup, open("solution.py") as solution:
            source = setup.read() + "\n" + solution.read()
        exec(compile(source, "solution.py", "exec"), namespace)
        names = {}
        for name, value in namespace.items():
            if not name.startswith("__") and type(value).__name__ != "module":
                names[name] = encode(value, handle_of)
    except BaseException as err:
        reply({"error": f"{type(err).__name__}: {str(err)[:300]}"})
        return
    reply({"names": names})
    operations = {
        "getattr": getattr,
        "setattr": setattr,
        "iter": iter,
        "next": next,
        "len": len,
        "getitem": lambda target, key: target[key],
        "setitem": lambda target, key, value: target.__setitem__(key, value),
        "contains": lambda target, item: item in target,
        "str": str,
        "repr": repr,
        "bool": bool,
    }
    for line in requests:
        request = json.loads(line)
        try:
            target = objects[request["target"]]
            args = [decode(arg, objects.__getitem__) for arg in request["args"]]
            kwargs = {k: decode(v, objects.__getitem__) for k, v in request.get("kwargs", {}).items()}
            op = request["op"]
            result = target(*args, **kwargs) if op == "call" else operations[op](target, *args)
            message = {"value": encode(result, handle_of)}
        except BaseException as err:
            names = [cls.__name__ for cls in type(err).__mro__]
            message = {"raise": names, "message": str(err)[:1000]}
        reply(message)


# ----------------------------------------------------------------------------- the checker's process


class RemoteError(Exception):
    """The solution raised something that is not a builtin exception, or its process ended."""


class Connection:
    def __init__(self, process):
        self.process = process

    def request(self, op, target, *args, **kwargs):
        message = {"op": op, "target": target, "args": [encode(a, _handle_id) for a in args]}
        if op == "call":
            message["kwargs"] = {k: encode(v, _handle_id) for k, v in kwargs.items()}
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            raise RemoteError("the solution's process has ended") from None
        reply = self.receive()
        if "value" in reply:
            return decode(reply["value"], Remote)
        raise _rebuild_exception(reply)

    def receive(self):
        line = self.process.stdout.readline(MAX_MESSAGE + 1)
        if not line.endswith(b"\n"):
            raise RemoteError("the solution's process has ended or sent an oversized reply")
        reply = json.loads(line)
        if type(reply) is not dict:
            raise RemoteError("malformed reply from the solution's process")
        return reply


CONNECTION = None


def _handle_id(value):
    if type(value) is Remote:
        return object.__getattribute__(value, "_id")
    raise TypeError(f"cannot pass a {type(value).__name__} to the solution (plain data only)")


def _rebuild_exception(reply):
    names, message = reply.get("raise"), str(reply.get("message", ""))
    if type(names) is not list:
        return RemoteError("malformed reply from the solution's process")
    for name in names:
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(message)
    return RemoteError(f"{names[0] if names else '?'}: {message}")


class Remote:
    """An object living in the solution's process. Equal only to itself: the solution decides nothing here."""

    __slots__ = ("_id",)

    def __init__(self, handle):
        object.__setattr__(self, "_id", handle)

    def _ask(self, op, *args, **kwargs):
        return CONNECTION.request(op, object.__getattribute__(self, "_id"), *args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._ask("call", *args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name not in ALLOWED_DUNDERS:
            raise AttributeError(name)
        return self._ask("getattr", name)

    def __setattr__(self, name, value):
        self._ask("setattr", name, value)

    def __iter__(self):
        iterator = self._ask("iter")
        return iterator if type(iterator) is Remote else iter(iterator)

    def __next__(self):
        return self._ask("next")

    def __len__(self):
        return self._ask("len")

    def __getitem__(self, key):
        return self._ask("getitem", key)

    def __setitem__(self, key, value):
        self._ask("setitem", key, value)

    def __contains__(self, item):
        return self._ask("contains", item)

    def __bool__(self):
        return self._ask("bool")

    def __str__(self):
        return self._ask("str")

    def __repr__(self):
        try:
            return self._ask("repr")
        except Exception:
            return "<object of the solution>"

    def __eq__(self, other):
        return type(other) is Remote and object.__getattribute__(other, "_id") == object.__getattribute__(self, "_id")

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(object.__getattribute__(self, "_id"))


def check():
    global CONNECTION
    import ctypes
    import subprocess

    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    nonce, tests = job["nonce"], job["tests"]
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/<pid>/{mem,fd} for the solution
    process = subprocess.Popen(
        [sys.executable, "-I", "-B", "server.py", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        close_fds=True,
    )
    CONNECTION = Connection(process)
    try:
        try:
            hello = CONNECTION.receive()
        except (RemoteError, ValueError) as err:
            hello = {"error": f"the solution's process ended before it was ready ({err})"}
        if "error" in hello or type(hello.get("names")) is not dict:
            verdict = {"error": str(hello.get("error", "malformed reply from the solution's process"))}
        else:
            namespace = {"__name__": "__main__"}
            namespace.update({name: decode(value, Remote) for name, value in hello["names"].items()})
            failures = []  # None where the test passed, else the exception's type name
            for test in tests:
                try:
                    exec(compile(test, "test.py", "exec"), namespace)
                    failures.append(None)
                except BaseException as err:
                    failures.append(type(err).__name__)
            verdict = {"failures": failures}
    finally:
        process.kill()
        process.wait()
    print(nonce + json.dumps(verdict), flush=True)


if __name__ == "__main__":
    {"check": check, "serve": serve}[sys.argv[1]]()
