/*
 * no-namespaces COMMAND [ARG...]
 *
 * Run COMMAND where namespaces are denied the way Docker's default seccomp profile denies them
 * to a container without CAP_SYS_ADMIN (and mybinder.org runs in such containers):
 *
 *   unshare(2), setns(2), mount(2)            fail with EPERM, whatever their arguments
 *   clone(2) with any CLONE_NEW* flag         fails with EPERM (Docker masks the flags argument
 *                                             with the same 0x7E020000)
 *   clone3(2)                                 fails with ENOSYS: a filter cannot see the flags
 *                                             inside clone3's struct, so Docker answers ENOSYS
 *                                             and libc falls back to clone(2), whose flags it can
 *   everything else, plain fork() included    allowed
 *
 * How: prctl(PR_SET_NO_NEW_PRIVS) (so that an unprivileged user may install a filter), then a
 * seccomp-BPF filter (seccomp(2) SECCOMP_SET_MODE_FILTER, or prctl(PR_SET_SECCOMP) on kernels
 * before 3.17), then execvp(COMMAND). The filter is inherited by every descendant across fork
 * and execve and cannot be removed: the whole process tree under COMMAND lives with it.
 *
 * Architectures: system call numbers differ per ABI, so the filter checks seccomp_data.arch.
 * It knows x86_64 and aarch64. On x86_64, x32-ABI calls (numbers with bit 30 set) get ENOSYS,
 * so they cannot slip past. Calls of any other ABI (i386 through int 0x80, ...) are ALLOWED:
 * this is a test tool that simulates a policy, not a sandbox; killing unknown ABIs would only
 * break programs the tests never run.
 *
 * Exit status: COMMAND's, or 125 when the filter cannot be installed (the reason on stderr),
 * 126/127 when COMMAND cannot be run / is not found (as env(1) and the shells do).
 *
 * Build: cc -O2 -Wall -o no-namespaces no_namespaces.c (tests/test_degradation.py does this into
 * a temporary directory).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AUDIT_ARCH_AARCH64
#define AUDIT_ARCH_AARCH64 0xC00000B7u
#endif

/* CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: Docker's mask. */
#define NAMESPACE_FLAGS 0x7E020000u
#define X32_SYSCALL_BIT 0x40000000u

struct abi {
    unsigned int arch;
    int unshare_nr, setns_nr, mount_nr, clone_nr, clone3_nr;
    int check_x32;
};

/* arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h */
static const struct abi ABIS[] = {
    {AUDIT_ARCH_X86_64, 272, 308, 165, 56, 435, 1},
    {AUDIT_ARCH_AARCH64, 97, 268, 40, 220, 435, 0},
};

#if defined(__x86_64__)
_Static_assert(SYS_unshare == 272 && SYS_setns == 308 && SYS_mount == 165 && SYS_clone == 56,
               "x86_64 system call numbers");
#elif defined(__aarch64__)
_Static_assert(SYS_unshare == 97 && SYS_setns == 268 && SYS_mount == 40 && SYS_clone == 220,
               "aarch64 system call numbers");
#endif

#define MAX_INSNS 64
static struct sock_filter prog[MAX_INSNS];
static unsigned short len;

static void emit(struct sock_filter insn)
{
    if (len >= MAX_INSNS) {
        fputs("no-namespaces: filter too long\n", stderr);
        _exit(125);
    }
    prog[len++] = insn;
}

#define LOAD(field) emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, \
                                                      offsetof(struct seccomp_data, field)))
#define RET(value) emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (value)))
#define JUMP(op, k, jt, jf) emit((struct sock_filter)BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), \
                                                              (jt), (jf)))
#define DENY(err) (SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))

/* if (nr == number) return action; */
static void refuse(int number, unsigned int action)
{
    JUMP(BPF_JEQ, (unsigned int)number, 0, 1);
    RET(action);
}

static void build(void)
{
    for (size_t i = 0; i < sizeof ABIS / sizeof ABIS[0]; i++) {
        const struct abi *abi = &ABIS[i];
        LOAD(arch);
        unsigned short skip = len;
        JUMP(BPF_JEQ, abi->arch, 0, 0); /* jf patched below: past this ABI's section */
        LOAD(nr);
        if (abi->check_x32) {
            JUMP(BPF_JSET, X32_SYSCALL_BIT, 0, 1);
            RET(DENY(ENOSYS));
        }
        refuse(abi->unshare_nr, DENY(EPERM));
        refuse(abi->setns_nr, DENY(EPERM));
        refuse(abi->mount_nr, DENY(EPERM));
        refuse(abi->clone3_nr, DENY(ENOSYS));
        JUMP(BPF_JEQ, (unsigned int)abi->clone_nr, 0, 3);    /* not clone: allow */
        LOAD(args[0]); /* clone's flags: the first argument (its low 32 bits, little-endian) */
        JUMP(BPF_JSET, NAMESPACE_FLAGS, 0, 1);
        RET(DENY(EPERM));
        RET(SECCOMP_RET_ALLOW);
        prog[skip].jf = (unsigned char)(len - skip - 1);
    }
    RET(SECCOMP_RET_ALLOW); /* an ABI we do not know: see the comment at the top */
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fputs("usage: no-namespaces COMMAND [ARG...]\n"
              "Runs COMMAND under a seccomp filter that denies namespaces as Docker's default\n"
              "profile does: unshare, setns, mount and namespace clone flags fail with EPERM,\n"
              "clone3 with ENOSYS.\n", stderr);
        return 125;
    }
    build();
    struct sock_fprog fprog = {.len = len, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "no-namespaces: prctl(PR_SET_NO_NEW_PRIVS): %s\n", strerror(errno));
        return 125;
    }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        if (errno != ENOSYS
            || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
            fprintf(stderr, "no-namespaces: installing the seccomp filter: %s\n",
                    strerror(errno));
            return 125;
        }
    }
    execvp(argv[1], argv + 1);
    int err = errno;
    fprintf(stderr, "no-namespaces: %s: %s\n", argv[1], strerror(err));
    return err == ENOENT ? 127 : 126;
}
