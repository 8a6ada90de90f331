"""The sandbox's bootstrap: runs as the caller (`python -I -S _bootstrap.py CONFIG_JSON`), self-contained.

It joins the run's cgroups, unshares namespaces, mounts a size-limited tmpfs as the working directory
and makes every other mount read-only, then forks the program as PID 1 of the new PID namespace. The
child sets rlimits, confines files with Landlock, drops privileges, loads the seccomp filter and execs
the interpreter. A layer the parent asked for (Landlock, seccomp) that cannot be applied stops the run
(exit 125): never a silent fallback. The parent reads which namespace/mount layers held from a status file.
"""

import ctypes
import json
import os
import resource
import signal
import sys

NEWUSER, NEWNET, NEWPID, NEWNS = 0x10000000, 0x40000000, 0x20000000, 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
# Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on every architecture.
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1, 2, 4, 8
LL_REFER, LL_TRUNCATE, LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
LL_NET_BIND_TCP, LL_NET_CONNECT_TCP = 1, 2
LL_SCOPE_ABSTRACT_UNIX_SOCKET, LL_SCOPE_SIGNAL = 1, 2
O_PATH = getattr(os, "O_PATH", 0o10000000)

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def fail(message):
    os.write(2, f"sandbox: could not start the program: {message}\n".encode())
    os._exit(125)


def join_cgroups(procs_files):
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


def unshare_namespaces(root, iso):
    """Network + PID namespaces (through a user namespace when not root); returns the user-ns flag still due."""
    base = 0 if root else NEWUSER
    for flags, keys in (
        (NEWNET | NEWPID, ("network_namespace", "pid_namespace")),
        (NEWNET, ("network_namespace",)),
        (NEWPID, ("pid_namespace",)),
    ):
        if libc.unshare(base | flags) == 0:
            base = 0
            for key in keys:
                iso[key] = True
            break
    return base


def copy_tree(source_fd, target, owner):
    """Copy the regular files under the directory `source_fd` into `target` (the fresh tmpfs)."""
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=source_fd):
        destination = os.path.normpath(os.path.join(target, dirpath))
        for name in dirnames:
            os.mkdir(os.path.join(destination, name), 0o700)
            if owner is not None:
                os.chown(os.path.join(destination, name), owner, owner)
        for name in filenames:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as src, open(os.path.join(destination, name), "wb") as dst:
                dst.write(src.read())
            if owner is not None:
                os.chown(os.path.join(destination, name), owner, owner)


def private_mounts(base, cfg, iso):
    """A private mount namespace: the working directory a size-limited tmpfs (or a bind mount of
    itself), every other mount read-only in it; the host's mounts are untouched."""
    if libc.unshare(base | NEWNS) != 0:
        return
    workdir = cfg["workdir"].encode()
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return
    source_fd = os.open(cfg["workdir"], os.O_RDONLY | os.O_DIRECTORY)
    owner = 65534 if cfg["drop_privileges"] else None
    options = f"size={cfg['disk_kb']}k,mode=0700,nr_inodes={cfg['disk_inodes']}"
    if owner is not None:
        options += f",uid={owner},gid={owner}"
    if libc.mount(b"tmpfs", workdir, b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()) == 0:
        copy_tree(source_fd, cfg["workdir"], owner)
        iso["disk_budget"] = True
    elif libc.mount(workdir, workdir, None, MS_BIND | MS_REC, None) != 0:
        os.close(source_fd)
        return
    os.close(source_fd)
    # keep each mount's own flags: a user namespace may not clear the locked ones (nosuid, nodev, ...)
    known = {b"nosuid": 2, b"nodev": 4, b"noexec": 8, b"noatime": 1024, b"nodiratime": 2048, b"relatime": 1 << 21}
    with open("/proc/self/mountinfo", "rb") as f:
        mounts = [line.split()[4:6] for line in f]
    ok = True
    for point, options in mounts:
        point = point.decode("unicode_escape").encode("latin-1")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(known.get(o, 0) for o in set(options.split(b",")))
        if point != workdir and libc.mount(None, point, None, flags, None) != 0:
            ok = False
    os.chdir(cfg["workdir"])  # the working directory through its new mount
    iso["read_only_filesystem"] = ok


def landlock(cfg):
    """Files: read/execute the system and interpreter trees, read/write a few /dev nodes, anything in the
    working directory, nothing else. From ABI 4 no TCP bind/connect; from ABI 6 no signals or abstract
    unix sockets outside the sandbox."""
    abi = cfg["landlock_abi"]
    handled = (1 << 13) - 1 | (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0)
    handled |= LL_IOCTL_DEV if abi >= 5 else 0
    attr = RulesetAttr(handled, LL_NET_BIND_TCP | LL_NET_CONNECT_TCP if abi >= 4 else 0, 0)
    if abi >= 6:
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        fail("landlock_create_ruleset: " + os.strerror(ctypes.get_errno()))
    read_dir = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
    device = LL_READ_FILE | LL_WRITE_FILE | (LL_IOCTL_DEV if abi >= 5 else 0)
    rules = [(path, read_dir) for path in cfg["read_paths"]] + [(path, device) for path in cfg["device_paths"]]
    rules.append((cfg["workdir"], handled))
    for path, access in rules:
        try:
            fd = os.open(path, O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # a system directory this host does not have
        if not os.path.isdir(path):
            access &= LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV
        rule = PathBeneathAttr(access & handled, fd)
        if libc.syscall(LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
            fail(f"landlock_add_rule {path}: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        fail("landlock_restrict_self: " + os.strerror(ctypes.get_errno()))
    os.close(ruleset)


def load_seccomp(program_hex):
    program = ctypes.create_string_buffer(bytes.fromhex(program_hex))
    fprog = SockFprog(len(program.raw) // 8, ctypes.addressof(program))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("PR_SET_NO_NEW_PRIVS: " + os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        fail("seccomp filter: " + os.strerror(ctypes.get_errno()))


def start_program(cfg, root):
    """In the forked child: limits, confinement, privileges, seccomp, then exec the interpreter."""
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the bootstrap
        for name, value in cfg["rlimits"]:
            resource.setrlimit(getattr(resource, name), (value, value))
        if cfg["landlock_abi"]:
            landlock(cfg)
        if root and cfg["drop_privileges"]:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        if cfg["seccomp_bpf"]:
            load_seccomp(cfg["seccomp_bpf"])
        os.execve(cfg["python"], [cfg["python"], "-I", "-B", cfg["entry"], *cfg["argv"]], cfg["env"])
    except BaseException as err:
        fail(repr(err))


def main():
    cfg = json.loads(sys.argv[1])
    root = os.geteuid() == 0
    iso = {"network_namespace": False, "pid_namespace": False, "read_only_filesystem": False, "disk_budget": False}
    iso["uid"] = 65534 if root and cfg["drop_privileges"] else os.geteuid()
    try:
        join_cgroups(cfg["cgroup_procs"])
    except OSError as err:
        fail(f"joining the cgroup: {err}")
    status = open(cfg["status_path"], "w")  # noqa: SIM115 - opened before the file systems turn read-only
    base = unshare_namespaces(root, iso)
    private_mounts(base, cfg, iso)
    with status:
        json.dump(iso, status)
    pid = os.fork()
    if pid == 0:
        start_program(cfg, root)
    while True:
        try:
            _, wait_status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(128 + os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status))


main()
