"""The sandbox's seccomp filter, compiled once to BPF with libseccomp (through `pyseccomp`).

Denied system calls fail with EPERM: new namespaces (unshare, setns, clone with a CLONE_NEW* flag),
tracing and reading other processes (ptrace, process_vm_*, kcmp), mounting (mount, umount2,
pivot_root, the new mount API), the kernel keyring, bpf, perf_event_open, userfaultfd, io_uring,
module loading, kexec, and host administration (reboot, swapon, settimeofday, ...). clone3 fails with
ENOSYS instead (its flags sit in a struct seccomp cannot read), so the C library falls back to clone,
whose flags are checked. System calls of other ABIs (i386, x32 on x86-64) kill the process.
"""

from __future__ import annotations

import errno
import functools
import tempfile

DENIED_SYSCALLS = (
    "unshare", "setns",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at", "vhangup", "nfsservctl",
)  # fmt: skip
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


class SeccompUnavailable(RuntimeError):
    """libseccomp (Debian: libseccomp2) or its binding cannot be loaded on this host."""


@functools.cache
def seccomp_program() -> str:
    """The filter as hex-encoded BPF (struct sock_filter[]), ready for prctl(PR_SET_SECCOMP)."""
    try:
        import pyseccomp
    except (ImportError, OSError, AttributeError, TypeError) as err:  # pyseccomp loads libseccomp at import
        raise SeccompUnavailable(f"libseccomp cannot be loaded ({err}); install the libseccomp2 package") from err
    deny = pyseccomp.ERRNO(errno.EPERM)
    program = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            program.add_rule(deny, name)
        except OSError:
            continue  # not a system call on this architecture (iopl on arm64, ...)
    for flag in CLONE_NAMESPACE_FLAGS:
        program.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    program.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        program.export_bpf(out)
        out.seek(0)
        return out.read().hex()


def seccomp_available() -> bool:
    try:
        seccomp_program()
    except SeccompUnavailable:
        return False
    return True
